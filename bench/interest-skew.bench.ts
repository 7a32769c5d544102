/**
 * Skewed interest (issue 12): one hot destination every instance's subscribers want, plus
 * many cold ones each wanted on one instance only. Compares `--kafka-interest subscribed`
 * with `all`: the records of the topics topic each instance fetched (from its
 * `stompbus_kafka_records_consumed_total` metric) and the CPU it spent, which with
 * interest must come down to, and not go beyond, the cost of reading everything.
 *
 * ```sh
 * npx tsx bench/interest-skew.bench.ts              # ~5 min, writes bench/results/interest-skew.md
 * npx tsx bench/interest-skew.bench.ts --rounds 1 --seconds 5 --out /tmp/skew.md
 * ```
 *
 * 4 instances (child processes of a compiled src/, bench/load/.build-skew), a topic of 24
 * partitions, `/topic/hot` plus 200 cold destinations. On every instance one subscriber to
 * the hot destination and to its quarter of the cold ones, and one publisher; the
 * publishers together send `--rate` messages/s (default 1,000, 256-byte bodies), half of
 * them to the hot destination, half round-robin to the cold ones. Two placements of the
 * cold quarters: `by partition` (instance i takes the cold destinations of the partitions
 * ≡ i mod 4: interest can skip the others) and `by name` (instance i takes cold
 * destinations 50·i … 50·i+49, spread over every partition: interest cannot skip any).
 * Each round runs both placements; for each, the two modes run at the same time, on two
 * fresh clusters of 4 instances with topics of their own, fed the same traffic in the same
 * ticks, so that a busy spell of the (shared) machine hits both alike. Every subscriber must
 * get every message it wants once, in each publisher's order, or the run fails.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type WebSocket from 'ws';
import { KAFKA_VERSION, type RunningKafka, startKafka } from '../scripts/kafka.js';
import { partitionFor } from '../src/cluster/partitioner.js';
import {
  cpuSeconds,
  type Instance,
  loadAverage,
  machineJiffies,
  pace,
  startInstance,
  stompClient,
  stopChild,
  stopChildren,
} from './load/instances.js';
import { type Baseline, compileCheckout } from './load/targets.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '8' },
    rate: { type: 'string', default: '1000' },
    partitions: { type: 'string', default: '24' },
    out: { type: 'string', default: 'bench/results/interest-skew.md' },
  },
});
const INSTANCES = 4;
const COLD = 200;
const ROUNDS = Number(args.rounds);
const SECONDS = Number(args.seconds);
const RATE = Number(args.rate);
const PARTITIONS = Number(args.partitions);
const BODY_SIZE = 256;
const DRAIN_MS = 30_000;
const WATCHDOG_MS = 30 * 60_000;
const HOT = '/topic/hot';
const cold = Array.from({ length: COLD }, (_, i) => `/topic/cold-${i}`);
const log = (msg: string) => console.error(`[interest-skew] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Mode = 'all' | 'subscribed';
type Layout = 'by partition' | 'by name';

/** The instance whose subscriber wants cold destination `i`. */
function ownerOf(layout: Layout, i: number): number {
  if (layout === 'by name') return Math.floor((i * INSTANCES) / COLD);
  return partitionFor(cold[i] as string, PARTITIONS) % INSTANCES;
}

/** Message n (global): even ones to the hot destination, odd ones round-robin to the cold. */
function destinationOf(n: number): string {
  return n % 2 === 0 ? HOT : (cold[(n >> 1) % COLD] as string);
}

interface Outcome {
  round: number;
  mode: Mode;
  layout: Layout;
  total: number;
  /** Per instance: records of the topics topic fetched during the run, messages wanted, CPU. */
  instances: Array<{ fetched: number; wanted: number; cpuS: number }>;
  seconds: number;
  busy: number;
  load: string;
}

/** The `stompbus_kafka_records_consumed_total` of `topic` on an instance. */
async function fetchedOf(instance: Instance, topic: string): Promise<number> {
  if (!instance.admin) throw new Error('no admin port in the ready line');
  const text = await (await fetch(`${instance.admin}/metrics`)).text();
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('stompbus_kafka_records_consumed_total{') && l.includes(`topic="${topic}"`),
    );
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** One cluster of a run: its instances, clients and what its subscribers got. */
interface Cluster {
  mode: Mode;
  topic: string;
  instances: Instance[];
  publishers: WebSocket[];
  wanted: number[];
  received: number[];
  problems: string[];
}

async function startCluster(
  build: Baseline,
  brokers: string,
  mode: Mode,
  layout: Layout,
  total: number,
  sockets: WebSocket[],
  instances: Instance[],
): Promise<Cluster> {
  const topic = `stompbus-skew-${randomBytes(4).toString('hex')}`;
  const own: Instance[] = [];
  for (let i = 0; i < INSTANCES; i++) {
    const instance = await startInstance(build.build, [
      '--kafka-brokers',
      brokers,
      '--kafka-topic',
      topic,
      '--kafka-partitions',
      String(PARTITIONS),
      '--kafka-interest',
      mode,
    ]);
    own.push(instance);
    instances.push(instance);
    log(`${mode} instance ${i + 1}: pid ${instance.child.pid}`);
  }
  const owner = new Map(cold.map((d, i) => [d, ownerOf(layout, i)]));
  const wanted = own.map(() => 0);
  for (let m = 0; m < total; m++) {
    const d = destinationOf(m);
    for (let s = 0; s < INSTANCES; s++) {
      if (d === HOT || owner.get(d) === s) wanted[s] = (wanted[s] ?? 0) + 1;
    }
  }
  const received = own.map(() => 0);
  const problems: string[] = [];
  for (const [s, instance] of own.entries()) {
    const mine = [HOT, ...cold.filter((_, i) => ownerOf(layout, i) === s)];
    // The last seq seen per (destination, publisher).
    const last = new Map<string, number>();
    sockets.push(
      await stompClient(
        instance.url,
        mine,
        (buf, start, end) => {
          const blank = buf.indexOf('\n\n', start);
          const head = buf.toString('latin1', start, blank);
          const destination = /\ndestination:([^\n]*)/.exec(head)?.[1] ?? '';
          const body = buf.toString('latin1', blank + 2, Math.min(end, blank + 24));
          const seq = Number(body.slice(0, body.indexOf(' ')));
          const key = `${destination} ${seq % INSTANCES}`;
          if ((last.get(key) ?? -1) >= seq) {
            problems.push(`${mode} instance ${s + 1}: ${key} ${seq} again or out of order`);
          }
          last.set(key, seq);
          received[s] = (received[s] ?? 0) + 1;
        },
        (text) => problems.push(`${mode} instance ${s + 1}: ${text.slice(0, 120)}`),
      ),
    );
  }
  const publishers = await Promise.all(own.map((i) => stompClient(i.url, [], () => {})));
  sockets.push(...publishers);
  return { mode, topic, instances: own, publishers, wanted, received, problems };
}

/**
 * Both modes at once for one placement: two clusters on topics of their own, the same
 * traffic sent to both in the same ticks, CPU taken over the same window, so that a busy
 * spell of the machine hits both alike.
 */
async function run(
  build: Baseline,
  brokers: string,
  round: number,
  layout: Layout,
  runSeconds = SECONDS,
): Promise<Outcome[]> {
  const instances: Instance[] = [];
  const sockets: WebSocket[] = [];
  const total = Math.round(RATE * runSeconds);
  try {
    const modes: Mode[] = round % 2 ? ['all', 'subscribed'] : ['subscribed', 'all'];
    const clusters: Cluster[] = [];
    for (const mode of modes) {
      clusters.push(await startCluster(build, brokers, mode, layout, total, sockets, instances));
    }
    await sleep(1_000); // pick-ups settle
    const before = await Promise.all(
      clusters.map((c) => Promise.all(c.instances.map((i) => fetchedOf(i, c.topic)))),
    );
    const cpu = () => clusters.map((c) => c.instances.map((i) => cpuSeconds(i.child.pid ?? 0)));
    const cpu0 = cpu();
    const m0 = machineJiffies();
    const t0 = performance.now();
    const pad = 'x'.repeat(BODY_SIZE);
    await pace(total, RATE, (from, to) => {
      const frames: string[] = Array.from({ length: INSTANCES }, () => '');
      for (let n = from; n < to; n++) {
        const head = `${n} `;
        frames[n % INSTANCES] +=
          `SEND\ndestination:${destinationOf(n)}\ncontent-length:${BODY_SIZE}\n\n` +
          `${head}${pad.slice(head.length)}\0`;
      }
      // Alternating which cluster gets a tick's frames first.
      const order = from % 2 ? [...clusters].reverse() : clusters;
      for (const c of order) {
        frames.forEach((f, p) => {
          if (f) c.publishers[p]?.send(f);
        });
      }
    });
    const done = () => clusters.every((c) => c.received.every((r, s) => r >= (c.wanted[s] ?? 0)));
    const deadline = Date.now() + DRAIN_MS;
    while (!done() && Date.now() < deadline) await sleep(50);
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = cpu();
    const m1 = machineJiffies();
    await sleep(300);
    const after = await Promise.all(
      clusters.map((c) => Promise.all(c.instances.map((i) => fetchedOf(i, c.topic)))),
    );
    const busy = (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total);
    return clusters.map((c, k) => {
      c.received.forEach((r, s) => {
        if (r !== c.wanted[s])
          c.problems.push(`${c.mode} instance ${s + 1}: received ${r} of ${c.wanted[s]}`);
      });
      if (c.problems.length && round > 0) {
        throw new Error(`${c.mode}, ${layout}: ${c.problems.slice(0, 5).join('; ')}`);
      }
      return {
        round,
        mode: c.mode,
        layout,
        total,
        instances: c.instances.map((_, s) => ({
          fetched: (after[k]?.[s] ?? 0) - (before[k]?.[s] ?? 0),
          wanted: c.wanted[s] ?? 0,
          cpuS: (cpu1[k]?.[s] ?? 0) - (cpu0[k]?.[s] ?? 0),
        })),
        seconds,
        busy,
        load: loadAverage(),
      };
    });
  } finally {
    for (const s of sockets) s.close();
    await Promise.allSettled(instances.map((i) => stopChild(i.child)));
  }
}

function median(v: number[]): number {
  const s = v.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function report(build: Baseline, outcomes: Outcome[], loadBefore: string): string {
  let nproc = String(cpus().length);
  try {
    nproc = execFileSync('nproc').toString().trim();
  } catch {}
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)}%`;
  const us = (o: Outcome, i: { cpuS: number }) => ((i.cpuS / o.total) * 1e6).toFixed(0);
  const meanUs = (o: Outcome) =>
    (o.instances.reduce((a, i) => a + i.cpuS, 0) / o.instances.length / o.total) * 1e6;
  const lines = [
    '# Cluster interest: skewed interest',
    '',
    `Date: ${new Date().toISOString()} · machine: ${nproc} CPU (\`nproc\`), ${cpus()[0]?.model.trim() ?? '?'} · ` +
      `Node ${process.version} · Kafka ${KAFKA_VERSION} (one KRaft node, loopback) · load average before: ${loadBefore}, after: ${loadAverage()}`,
    '',
    `Code: \`${build.label}\`. ${INSTANCES} instances (child processes), a topic of ${PARTITIONS} partitions; ` +
      `\`${HOT}\` wanted on every instance, ${COLD} cold destinations each wanted on one; ${RATE} messages/s for ` +
      `${SECONDS} s from one publisher per instance, half to the hot destination; ${BODY_SIZE}-byte bodies. ` +
      'Every subscriber got every message it wanted once, in each publisher’s order (checked). Fetched = records ' +
      'of the topics topic the instance fetched during the run (its metric); CPU = its CPU seconds over the run ' +
      'and the drain ÷ messages published.',
    '',
    '| round | cold quarters | --kafka-interest | fetched per instance (of all) | wanted per instance | CPU µs per message, per instance | mean µs | machine busy | load average |',
    '|---:|---|---|---|---|---|---:|---:|---|',
    ...outcomes.map(
      (o) =>
        `| ${o.round} | ${o.layout} | ${o.mode} | ${o.instances.map((i) => pct(i.fetched, o.total)).join(', ')} | ` +
        `${o.instances.map((i) => pct(i.wanted, o.total)).join(', ')} | ${o.instances.map((i) => us(o, i)).join(', ')} | ` +
        `${meanUs(o).toFixed(0)} | ${(o.busy * 100).toFixed(0)}% | ${o.load} |`,
    ),
    '',
    'Per placement, subscribed ÷ all of the same round (mean CPU per instance; records fetched, all instances):',
    '',
    '| cold quarters | CPU subscribed ÷ all, median | range | fetched subscribed ÷ all, median | range |',
    '|---|---:|---|---:|---|',
  ];
  for (const layout of ['by partition', 'by name'] as Layout[]) {
    const cpu: number[] = [];
    const fetched: number[] = [];
    for (const round of new Set(outcomes.map((o) => o.round))) {
      const of = (mode: Mode) =>
        outcomes.find((o) => o.round === round && o.layout === layout && o.mode === mode);
      const a = of('all');
      const s = of('subscribed');
      if (!a || !s) continue;
      cpu.push(meanUs(s) / meanUs(a));
      const sum = (o: Outcome) => o.instances.reduce((n, i) => n + i.fetched, 0);
      fetched.push(sum(s) / sum(a));
    }
    const x = (v: number[]) => `${Math.min(...v).toFixed(2)}–${Math.max(...v).toFixed(2)}`;
    lines.push(
      `| ${layout} | ${median(cpu).toFixed(2)} | ${x(cpu)} | ${median(fetched).toFixed(2)} | ${x(fetched)} |`,
    );
  }
  lines.push(
    '',
    `Command: \`npx tsx bench/interest-skew.bench.ts${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\``,
    '',
  );
  return lines.join('\n');
}

let kafka: RunningKafka | undefined;

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  const build = compileCheckout(ROOT, '.build-skew');
  log(`compiled ${build.label}; starting Kafka`);
  kafka = await startKafka();
  const outcomes: Outcome[] = [];
  // Round 0: a Kafka JVM started seconds ago is slow; one short run, not reported, not checked.
  log('warm-up run');
  await run(build, kafka.brokers, 0, 'by partition', 3);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const layout of ['by partition', 'by name'] as Layout[]) {
      for (const o of await run(build, kafka.brokers, round, layout)) {
        log(
          `round ${round}, ${layout}, ${o.mode}: fetched ${o.instances.map((i) => ((100 * i.fetched) / o.total).toFixed(0)).join('/')}%, ` +
            `CPU ${o.instances.map((i) => ((i.cpuS / o.total) * 1e6).toFixed(0)).join('/')} µs per message`,
        );
        outcomes.push(o);
      }
    }
  }
  const md = report(build, outcomes, loadBefore);
  const file = args.out ?? 'bench/results/interest-skew.md';
  const out = isAbsolute(file) ? file : join(ROOT, file);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, md);
  console.log(md);
}

const watchdog = setTimeout(() => {
  log('watchdog: stopping');
  void stopChildren()
    .then(() => kafka?.stop())
    .finally(() => process.exit(1));
}, WATCHDOG_MS);

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await stopChildren();
  await kafka?.stop().catch(() => {});
  clearTimeout(watchdog);
}
process.exit();
