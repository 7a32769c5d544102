/**
 * Throughput ceiling through Kafka (issue 12): the highest rate a cluster of 3 stompbus
 * instances sustains from a publisher on instance 1 to a subscriber on instance 2, next to
 * the highest rate plain kafkajs sustains producing in one process and consuming in another
 * through the same Kafka with the same batching (the floor), in one run.
 *
 * ```sh
 * npx tsx bench/ceiling.bench.ts            # ~5 min, writes bench/results/ceiling.md
 * npx tsx bench/ceiling.bench.ts --quick    # 1 round, 3 s steps
 * ```
 *
 * A round climbs a ladder of paced rates (×`--factor` from `--start`) on both sides in turn
 * (cluster first in odd rounds, floor first in even ones), `--step-s` seconds a step, until a
 * side fails a step, then tries twice between its last good rate and the failed one. A step
 * passes when every message arrived once, in order per destination, and the p99 latency
 * stayed under `--limit-ms` (a backlog growing through the step pushes p99 past that). A
 * side's ceiling in the round is the highest rate it passed; the ratio is cluster ÷ floor of
 * the same round.
 *
 * Compiles src/ into bench/load/.build-ceiling, starts a real Kafka (scripts/kafka.ts), the
 * three instances (`node bench/load/run-cli.mjs …`) and the floor's two processes
 * (bench/load/ceiling-floor.mjs), all on 127.0.0.1, and stops every process it started by PID.
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { KAFKA_VERSION, type RunningKafka, startKafka } from '../scripts/kafka.js';
import { Tracker } from './load/ceiling-track.mjs';
import {
  children,
  cpuSeconds,
  type Instance,
  loadAverage as load,
  machineJiffies as machineBusy,
  pace,
  startInstance as start,
  stompClient,
  stopChildren,
} from './load/instances.js';
import { type Baseline, compileCheckout } from './load/targets.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string' },
    'step-s': { type: 'string' },
    start: { type: 'string', default: '2000' },
    factor: { type: 'string', default: '1.4' },
    'max-rate': { type: 'string', default: '200000' },
    'limit-ms': { type: 'string', default: '500' },
    keys: { type: 'string', default: '6' },
    partitions: { type: 'string', default: '6' },
    headers: { type: 'string', default: 'packed' },
    publishers: { type: 'string', default: '1' },
    quick: { type: 'boolean', default: false },
    'publisher-nice': { type: 'string' },
    'floor-encoding': { type: 'string', default: 'kafkajs' },
    out: { type: 'string', default: 'bench/results/ceiling.md' },
  },
});
const QUICK = args.quick === true;
const ROUNDS = Number(args.rounds ?? (QUICK ? 1 : 2));
const STEP_S = Number(args['step-s'] ?? (QUICK ? 3 : 5));
const START = Number(args.start);
const FACTOR = Number(args.factor);
const MAX_RATE = Number(args['max-rate']);
const LIMIT_MS = Number(args['limit-ms']);
const PARTITIONS = Number(args.partitions);
/**
 * The record format on both sides (`--headers packed|each`): the instances run with
 * `--kafka-headers <it>`, and the floor's records carry the same headers as theirs.
 */
const HEADERS = args.headers === 'each' ? 'each' : 'packed';
/**
 * STOMP connections publishing on instance 1 (`--publishers`): destination d is published
 * by connection d mod n, so each destination keeps one order.
 */
const PUBLISHERS = Math.max(1, Number(args.publishers));
/**
 * `--publisher-nice=-10`: instance 1 and the floor's producer at that nice value (a diagnostic
 * of what the shared cores cost the publishing process; root only for negative values).
 */
/**
 * How the floor's processes encode Produce requests and read fetched records
 * (`--floor-encoding`): `kafkajs`, its own (the default: plain kafkajs, as the issue's floor
 * is), or `stompbus`, as the instances do (src/cluster/produce-encoding.ts and
 * record-decoding.ts), for the stricter comparison.
 */
const FLOOR_ENCODING = args['floor-encoding'] === 'stompbus' ? 'stompbus' : 'kafkajs';
const PUBLISHER_NICE =
  args['publisher-nice'] === undefined ? undefined : Number(args['publisher-nice']);
const KEYS = Array.from({ length: Number(args.keys) }, (_, i) => `/topic/ceiling-${i}`);
const BODY_SIZE = 256;
const DRAIN_MS = 5_000;
const INSTANCES = 3;
/** Bounds the whole run: at most this long, then everything started is stopped. */
const WATCHDOG_MS = 30 * 60_000;

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => console.error(`[ceiling.bench] ${msg}`);

interface Report {
  expected: number;
  received: number;
  duplicates: number;
  outOfOrder: number;
  p50: number;
  p99: number;
  max: number;
}

let kafka: RunningKafka | undefined;

async function cleanup(): Promise<void> {
  await stopChildren();
  if (kafka) {
    const k = kafka;
    kafka = undefined;
    await k.stop().catch((e: unknown) => log(`stopping Kafka: ${String(e)}`));
  }
}

// ---- the two sides ----

/** One side under test: sends `count` messages from `base` paced at `rate`, reports what arrived. */
interface Side {
  name: string;
  step(base: number, count: number, rate: number): Promise<Report>;
  close(): Promise<void>;
}

async function waitFor(done: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await sleep(50);
}

function sendFrame(seq: number, sentMs: number): string {
  const head = `${seq} ${sentMs.toFixed(3)} `;
  return (
    `SEND\ndestination:${KEYS[seq % KEYS.length]}\ncontent-type:text/plain\n` +
    `content-length:${BODY_SIZE}\n\n${head}${'x'.repeat(BODY_SIZE - head.length)}\0`
  );
}

async function clusterSide(pubUrl: string, subUrl: string): Promise<Side> {
  let tracker: Tracker | undefined;
  const errors: string[] = [];
  const onError = (text: string) => {
    // The code and what the body says of the cause.
    const code = text.split('\n').find((l) => l.startsWith('message:')) ?? text.slice(0, 80);
    const body = text.slice(text.indexOf('\n\n') + 2).replace(/\0[\s\S]*$/, '');
    errors.push(`${code} ${body.replace(/\s+/g, ' ').slice(0, 300)}`);
  };
  // Set when the subscriber got an ERROR: the broker closes it right after.
  let subFailed = false;
  const subscribe = () => {
    subFailed = false;
    return stompClient(
      subUrl,
      KEYS,
      (buf, start, end) => {
        const blank = buf.indexOf('\n\n', start);
        if (blank >= 0 && blank < end) tracker?.body(buf, blank + 2, undefined, now());
      },
      (text) => {
        subFailed = true;
        onError(text);
      },
    );
  };
  let sub = await subscribe();
  const pubs: Array<Awaited<ReturnType<typeof stompClient>>> = [];
  for (let p = 0; p < PUBLISHERS; p++) pubs.push(await stompClient(pubUrl, [], () => {}, onError));
  return {
    name: 'cluster',
    async step(base, count, rate) {
      for (let p = 0; p < pubs.length; p++) {
        if (pubs[p]?.readyState !== WebSocket.OPEN) {
          pubs[p] = await stompClient(pubUrl, [], () => {}, onError);
        }
      }
      // A failed step's backlog first drains (up to 20 s), so it does not count against this one.
      const before = tracker;
      if (subFailed || sub.readyState !== WebSocket.OPEN) {
        // The broker refused or closed it (STOMP_ERR_SLOW_CONSUMER when the harness fell
        // behind): what it had not sent is gone, and the next steps go to a new subscriber,
        // once the instances had a moment to work off the failed step.
        log('cluster: the subscriber got an ERROR or was closed; subscribing again');
        sub.close();
        sub = await subscribe();
        await sleep(2_000);
      } else if (before) await waitFor(() => before.received >= before.count, 20_000);
      const t = new Tracker(base, count, KEYS.length);
      tracker = t;
      await pace(count, rate, (from, to) => {
        const frames = pubs.map(() => '');
        for (let i = from; i < to; i++) {
          const p = ((base + i) % KEYS.length) % pubs.length;
          frames[p] += sendFrame(base + i, now());
        }
        for (let p = 0; p < pubs.length; p++) if (frames[p]) pubs[p]?.send(frames[p] as string);
      });
      await waitFor(() => t.received >= count, DRAIN_MS);
      const report = t.report();
      if (errors.length) log(`cluster: ${errors.splice(0).join('; ')}`);
      return report;
    },
    async close() {
      sub.close();
      for (const pub of pubs) pub.close();
    },
  };
}

/** The compiled src/cluster/kafkajs-fixes.js the floor's processes apply. */
let kafkajsFixes = '';
/**
 * The compiled src/cluster/produce-encoding.js and record-decoding.js, given to the floor with
 * `--floor-encoding stompbus`.
 */
let produceEncoding = '';
let recordDecoding = '';

/** Forks bench/load/ceiling-floor.mjs in `role` and waits for it to be ready. */
async function floorProcess(role: string, brokers: string, topic: string): Promise<ChildProcess> {
  const floorArgs = [role, brokers, topic, HEADERS, kafkajsFixes, produceEncoding, recordDecoding];
  const child = fork(join(ROOT, 'bench', 'load', 'ceiling-floor.mjs'), floorArgs, {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // BENCH_FLOOR_NODE_FLAGS profiles the floor as BENCH_NODE_FLAGS does the instances.
    execArgv: (process.env.BENCH_FLOOR_NODE_FLAGS ?? '').split(' ').filter(Boolean),
  });
  children.add(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`floor ${role} not ready in 30 s`)), 30_000);
    child.once('exit', (code) => reject(new Error(`floor ${role} exited (${code})`)));
    child.on('message', (m: { type: string }) => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return child;
}

function ask<T>(child: ChildProcess, message: object, answer: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string } & T) => {
      if (m.type !== answer) return;
      child.off('message', on);
      resolve(m);
    };
    child.on('message', on);
    child.send(message);
  });
}

async function floorSide(producer: ChildProcess, consumer: ChildProcess): Promise<Side> {
  let behind = false;
  return {
    name: 'floor',
    async step(base, count, rate) {
      // A failed step's backlog first drains (up to 20 s), so it does not count against this one.
      const drained = Date.now() + 20_000;
      while (behind && Date.now() < drained) {
        const r = (await ask<{ report: Report }>(consumer, { type: 'report' }, 'report')).report;
        behind = r.received < r.expected;
        if (behind) await sleep(100);
      }
      consumer.send({ type: 'start', base, count, keys: KEYS });
      await sleep(20);
      const done = await ask<{ failed: number }>(
        producer,
        { type: 'run', base, count, rate, keys: KEYS },
        'done',
      );
      if (done.failed) log(`floor: ${done.failed} records failed`);
      const deadline = Date.now() + DRAIN_MS;
      let report: Report;
      for (;;) {
        report = (await ask<{ report: Report }>(consumer, { type: 'report' }, 'report')).report;
        if (report.received >= count || Date.now() > deadline) break;
        await sleep(100);
      }
      behind = report.received < count;
      return report;
    },
    async close() {},
  };
}

// ---- the run ----

interface Step {
  round: number;
  side: string;
  rate: number;
  report: Report;
  pass: boolean;
  cores: Record<string, number>;
  busy: number;
}

function passes(r: Report): boolean {
  return r.received === r.expected && r.duplicates === 0 && r.outOfOrder === 0 && r.p99 <= LIMIT_MS;
}

async function main(): Promise<void> {
  const loadBefore = load();
  const build = compileCheckout(ROOT, '.build-ceiling');
  // The floor's kafkajs with 2.2.4's two fixes, as the instances run it.
  kafkajsFixes = join(build.build, 'cluster', 'kafkajs-fixes.js');
  if (FLOOR_ENCODING === 'stompbus') {
    produceEncoding = join(build.build, 'cluster', 'produce-encoding.js');
    recordDecoding = join(build.build, 'cluster', 'record-decoding.js');
  }
  log(`compiled ${build.label}; starting Kafka`);
  kafka = await startKafka();
  const topic = `stompbus-ceiling-${randomBytes(4).toString('hex')}`;
  const instances: Instance[] = [];
  for (let i = 0; i < INSTANCES; i++) {
    instances.push(
      await start(build.build, [
        '--kafka-brokers',
        kafka.brokers,
        '--kafka-topic',
        topic,
        '--kafka-partitions',
        String(PARTITIONS),
        '--kafka-headers',
        HEADERS,
      ]),
    );
  }
  const floorTopic = `${topic}-floor`;
  // The floor's topic: as many partitions, created ahead like the instances create theirs.
  const { Kafka, logLevel } = await import('kafkajs');
  const admin = new Kafka({ brokers: [kafka.brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({
    topics: [{ topic: floorTopic, numPartitions: PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  await admin.disconnect();
  const floorConsumer = await floorProcess('consume', kafka.brokers, floorTopic);
  const floorProducer = await floorProcess('produce', kafka.brokers, floorTopic);
  if (PUBLISHER_NICE !== undefined) {
    // A diagnostic: the publishing process of each side (instance 1, the floor's producer)
    // gets the CPU first when both cores are wanted, as if it had a core of its own.
    const pids = [instances[0]?.child.pid, floorProducer.pid].filter((p) => p !== undefined);
    execFileSync('renice', ['-n', String(PUBLISHER_NICE), '-p', ...pids.map(String)]);
    log(`reniced the publishing processes ${pids.join(', ')} to ${PUBLISHER_NICE}`);
  }
  const [i1, i2] = instances as unknown as [{ url: string }, { url: string }];
  const cluster = await clusterSide(i1.url, i2.url);
  const floor = await floorSide(floorProducer, floorConsumer);
  const pids: Record<string, number> = {
    'instance 1': instances[0]?.child.pid ?? 0,
    'instance 2': instances[1]?.child.pid ?? 0,
    'instance 3': instances[2]?.child.pid ?? 0,
    'floor producer': floorProducer.pid ?? 0,
    'floor consumer': floorConsumer.pid ?? 0,
    Kafka: kafka.pid,
    harness: process.pid,
  };
  let seq = 0;
  const steps: Step[] = [];
  const runStep = async (
    round: number,
    side: Side,
    rate: number,
    record = true,
  ): Promise<boolean> => {
    const count = Math.round(rate * STEP_S);
    const base = seq;
    seq += count;
    const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)]));
    const m0 = machineBusy();
    const t0 = performance.now();
    const report = await side.step(base, count, rate);
    const seconds = (performance.now() - t0) / 1000;
    const m1 = machineBusy();
    const cores = Object.fromEntries(
      Object.entries(pids).map(([k, p]) => [k, (cpuSeconds(p) - (before[k] ?? 0)) / seconds]),
    );
    const pass = passes(report);
    const busy = (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total);
    log(
      `round ${round} ${side.name} ${rate}/s: ${pass ? 'pass' : 'FAIL'} received ${report.received}/${report.expected} ` +
        `dup ${report.duplicates} ooo ${report.outOfOrder} p50 ${report.p50.toFixed(1)} p99 ${report.p99.toFixed(1)} ms, busy ${(busy * 100).toFixed(0)}%`,
    );
    if (record) steps.push({ round, side: side.name, rate, report, pass, cores, busy });
    if (!pass) await sleep(2_000); // let a backlog clear before the next step
    return pass;
  };
  try {
    log('warm-up: 5 s at the start rate through each side');
    await runStep(0, cluster, START, false);
    await runStep(0, floor, START, false);
    for (let round = 1; round <= ROUNDS; round++) {
      const sides = round % 2 ? [cluster, floor] : [floor, cluster];
      const best = new Map<Side, number>();
      const failedAt = new Map<Side, number>();
      for (
        let rate = START;
        rate <= MAX_RATE && failedAt.size < 2;
        rate = Math.round(rate * FACTOR)
      ) {
        for (const side of sides) {
          if (failedAt.has(side)) continue;
          if (await runStep(round, side, rate)) best.set(side, rate);
          else failedAt.set(side, rate);
        }
      }
      // Twice between the last good rate and the failed one (halving the gap each time).
      for (let refine = 0; refine < 2; refine++) {
        for (const side of sides) {
          const good = best.get(side);
          const bad = failedAt.get(side);
          if (good === undefined || bad === undefined) continue;
          const rate = Math.round(Math.sqrt(good * bad));
          if (await runStep(round, side, rate)) best.set(side, rate);
          else failedAt.set(side, rate);
        }
      }
    }
  } finally {
    await cluster.close();
    await floor.close();
    for (const child of [floorProducer, floorConsumer]) child.send({ type: 'stop' });
    await sleep(500);
  }
  await cleanup();
  const md = report(build, steps, loadBefore, load());
  const file = args.out ?? 'bench/results/ceiling.md';
  const out = isAbsolute(file) ? file : join(ROOT, file);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, md);
  console.log(md);
}

function median(v: number[]): number {
  const s = v.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function report(build: Baseline, steps: Step[], loadBefore: string, loadAfter: string): string {
  let nproc = String(cpus().length);
  try {
    nproc = execFileSync('nproc').toString().trim();
  } catch {}
  const rounds = [...new Set(steps.map((s) => s.round))];
  const ceiling = (round: number, side: string) =>
    Math.max(
      0,
      ...steps.filter((s) => s.round === round && s.side === side && s.pass).map((s) => s.rate),
    );
  const ratios = rounds.map((r) => ceiling(r, 'cluster') / ceiling(r, 'floor'));
  const finite = ratios.filter(Number.isFinite);
  const us = (cores: number, rate: number) => ((cores / rate) * 1e6).toFixed(0);
  const lines = [
    '# Throughput ceiling through Kafka',
    '',
    `Date: ${new Date().toISOString()} · machine: ${nproc} CPU (\`nproc\`), ${cpus()[0]?.model.trim() ?? '?'} · ` +
      `Node ${process.version} · Kafka ${KAFKA_VERSION} (one KRaft node, loopback) · load average before: ${loadBefore}, after: ${loadAfter}`,
    '',
    `Code: \`${build.label}\`. ${INSTANCES} instances on one topic of ${PARTITIONS} partitions; \`--publishers ${PUBLISHERS}\` publishing STOMP ` +
      `connection(s) over WebSocket on instance 1 (destination d on connection d mod ${PUBLISHERS}), a subscriber to all ${KEYS.length} destinations on instance 2; ` +
      `${BODY_SIZE}-byte bodies. Floor: plain kafkajs, producer and consumer each in a process of its own, same ` +
      `Kafka, a topic of as many partitions, the fan-out's batching and consumer settings, the same ${KEYS.length} keys ` +
      `and record headers (\`--kafka-headers ${HEADERS}\` on the instances, the same headers on the floor's records), and ` +
      `kafkajs with the request-queue timer and the grouping of records fixed as in the instances, ` +
      (FLOOR_ENCODING === 'stompbus'
        ? 'its Produce requests written and its records read as the instances do (`--floor-encoding stompbus`). '
        : 'its Produce requests written and its records read by kafkajs (the instances do both their own way). ') +
      `Steps of ${STEP_S} s from ${START}/s, ×${FACTOR} a step, then twice between the last good and the ` +
      `failed rate; a step passes with every message once, in order per destination, and p99 ≤ ${LIMIT_MS} ms.` +
      (PUBLISHER_NICE === undefined
        ? ''
        : ` Diagnostic: instance 1 and the floor's producer at nice ${PUBLISHER_NICE} (\`--publisher-nice\`), the other processes at 0.`),
    '',
    '| round | cluster ceiling, msg/s | floor ceiling, msg/s | cluster ÷ floor |',
    '|---:|---:|---:|---:|',
    ...rounds.map(
      (r, i) =>
        `| ${r} | ${ceiling(r, 'cluster')} | ${ceiling(r, 'floor')} | ${(ratios[i] ?? NaN).toFixed(2)} |`,
    ),
    '',
    `Ratio cluster ÷ floor: median ${median(ratios).toFixed(2)}, range ${Math.min(...finite).toFixed(2)}–${Math.max(...finite).toFixed(2)} (goal ≥ 0.80).`,
    '',
    'Every step (cores from `/proc/<pid>/stat` over the step and its drain; µs/msg = cores ÷ rate):',
    '',
    '| round | side | rate/s | result | received | dup | out of order | p50 ms | p99 ms | instance 1 cores (µs/msg) | instance 2 | instance 3 | floor producer | floor consumer | Kafka | harness | machine busy |',
    '|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...steps.map((s) => {
      const c = (k: string) =>
        `${(s.cores[k] ?? NaN).toFixed(2)} (${us(s.cores[k] ?? NaN, s.rate)})`;
      const on = s.side === 'cluster';
      return (
        `| ${s.round} | ${s.side} | ${s.rate} | ${s.pass ? 'pass' : '**fail**'} | ${s.report.received}/${s.report.expected} | ` +
        `${s.report.duplicates} | ${s.report.outOfOrder} | ${s.report.p50.toFixed(1)} | ${s.report.p99.toFixed(1)} | ` +
        `${on ? c('instance 1') : '–'} | ${on ? c('instance 2') : '–'} | ${on ? c('instance 3') : '–'} | ` +
        `${on ? '–' : c('floor producer')} | ${on ? '–' : c('floor consumer')} | ${c('Kafka')} | ${c('harness')} | ${(s.busy * 100).toFixed(0)}% |`
      );
    }),
    '',
    `Command: \`npx tsx bench/ceiling.bench.ts${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\``,
    '',
  ];
  return lines.join('\n');
}

const watchdog = setTimeout(() => {
  log('watchdog: stopping');
  void cleanup().finally(() => process.exit(1));
}, WATCHDOG_MS);

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await cleanup();
  clearTimeout(watchdog);
}
process.exit();
