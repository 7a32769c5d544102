/**
 * Flood benchmark (issue 11, "Browsers and abuse"): does a flooding publisher
 * raise other clients' delivery latency when stompbus runs with
 * `--max-frames-per-second`? A paced fan-out (10 subscribers × 500
 * messages/s, as the load harness's `paced` scenario) is measured alone and
 * with a flooder beside it (one connection sending SENDs as fast as its
 * socket takes them), and, for contrast, with the flooder on a broker without
 * the limit. Each variant gets a fresh broker. "Alone" and "flooder" run at
 * the same time, side by side on two brokers, so that a busy spell of the
 * machine hits both alike; the unlimited contrast runs by itself, before the
 * pair in even rounds and after it in odd ones.
 *
 * Run: `npx tsx bench/load/flood.ts [--rounds 4] [--rate 1000] [--quick] [--control] [--out file]`
 * (`--control`: the flooder of the pair stays idle, an A/A run that shows the noise.)
 * Writes bench/results/flood.md (or --out). The clients are the load
 * harness's worker processes (worker.ts); stompbus is compiled from src/ into
 * bench/load/.build-flood at the start (so the load harness may run at once).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { meters, startBroker } from './flood-broker.js';
import { type FloodResult, machineNow, renderFlood, type Variant } from './flood-report.js';
import { spawnWorkers, type WorkerProcess } from './pool.js';
import type { SubscriberReport } from './protocol.js';
import { mergeHistogram, newHistogram, nowMs, percentile } from './stats.js';
import { children, compileCheckout, REPO } from './targets.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    rate: { type: 'string', default: '1000' },
    quick: { type: 'boolean', default: false },
    // The pair without its flood: how far two identical runs side by side differ.
    control: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results/flood.md' },
  },
});
const rounds = Number(values.rounds);
const rate = Number(values.rate);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds: a whole number ≥ 1');
if (!Number.isInteger(rate) || rate < 1) throw new Error('--rate: frames per second, ≥ 1');

const settings = {
  durationMs: values.quick ? 2000 : 5000,
  warmupMs: values.quick ? 500 : 1000,
  subscribers: 10,
  pacedRate: 500,
  bodySize: 256,
};

const VARIANTS: Variant[] = [
  { key: 'alone', label: `paced alone (limit ${rate}/s)`, limit: rate, flood: false },
  values.control
    ? { key: 'flood', label: `paced alone again (A/A control)`, limit: rate, flood: false }
    : { key: 'flood', label: `paced + flooder (limit ${rate}/s)`, limit: rate, flood: true },
  { key: 'unlimited', label: 'paced + flooder, no limit', limit: 0, flood: true },
];

function log(line: string): void {
  process.stderr.write(`[flood] ${line}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A started broker. */
type Broker = Awaited<ReturnType<typeof startBroker>>;

/** Opens `count` subscribers of `destination` on one worker, counted under `run`. */
async function subscribe(
  w: WorkerProcess,
  broker: Broker,
  count: number,
  dest: string,
  run: string,
) {
  const reply = await w.ask(
    {
      op: 'open',
      endpoint: broker.endpoint,
      count,
      destination: dest,
      firstIndex: 0,
      mode: 'topic',
      run,
      concurrency: 8,
      timeoutMs: 10_000,
      deadlineMs: 20_000,
      giveUpAfter: 8,
    },
    'opened',
    30_000,
  );
  if (reply.ok < count) throw new Error(`${reply.ok}/${count} subscribed: ${reply.errors}`);
}

/** One run of one variant on a fresh broker. */
async function runVariant(build: string, variant: Variant): Promise<FloodResult> {
  const broker = await startBroker(build, variant.limit);
  const subs = spawnWorkers('paced-sub', 2);
  const [pub, flooder, watcher] = spawnWorkers('flood-client', 3) as [
    WorkerProcess,
    WorkerProcess,
    WorkerProcess,
  ];
  try {
    const run = randomBytes(4).toString('hex');
    const floodRun = randomBytes(4).toString('hex');
    const half = settings.subscribers / 2;
    await Promise.all(subs.map((w) => subscribe(w, broker, half, '/topic/bench.paced', run)));
    await subscribe(watcher, broker, 1, '/topic/bench.flood', floodRun);
    for (const w of [pub, flooder]) {
      const r = await w.ask({ op: 'connect', endpoint: broker.endpoint }, 'opened', 30_000);
      if (r.ok !== 1) throw new Error(`publisher: ${r.errors}`);
    }
    const fromMs = nowMs() + 50 + settings.warmupMs;
    const toMs = fromMs + settings.durationMs;
    await Promise.all(
      [...subs, watcher].map((w) => w.ask({ op: 'start', fromMs, toMs }, 'started', 10_000)),
    );
    const meter = meters(
      broker.pid,
      flooder.pid,
      subs.map((w) => w.pid),
    );
    setTimeout(() => meter.start(), Math.max(0, fromMs - nowMs()));
    // The flooder starts first and lasts past the measured part.
    const flooded = variant.flood
      ? flooder.ask(
          {
            op: 'publish',
            destination: '/topic/bench.flood',
            run: floodRun,
            bodySize: settings.bodySize,
            pace: 'flood',
            window: 0,
            rate: 0,
            durationMs: toMs - nowMs() + 200,
            fromMs: nowMs(),
            maxCount: 50_000_000,
          },
          'published',
          settings.warmupMs + settings.durationMs + 30_000,
        )
      : undefined;
    const published = await pub.ask(
      {
        op: 'publish',
        destination: '/topic/bench.paced',
        run,
        bodySize: settings.bodySize,
        pace: 'paced',
        window: 0,
        rate: settings.pacedRate,
        durationMs: settings.durationMs,
        fromMs,
        maxCount: 5_000_000,
      },
      'published',
      settings.warmupMs + settings.durationMs + 30_000,
    );
    const machine = { ...meter.stop(), loopDelayMax: broker.loopDelayMax(fromMs, toMs) };
    const floodSent = (await flooded)?.sent;
    // Stragglers: every paced subscriber has the last message, or 10 s passed.
    const until = Date.now() + 10_000;
    while (subs.some((w) => w.progress < published.sent) && Date.now() < until) await sleep(10);
    const reports = await Promise.all(subs.map((w) => w.ask({ op: 'report' }, 'report', 30_000)));
    const watch = await watcher.ask({ op: 'report' }, 'report', 30_000);
    return summarize(variant, reports, watch, published.sent, floodSent, machine);
  } finally {
    await Promise.all([...subs, pub, flooder, watcher].map((w) => w.close()));
    await broker.stop();
  }
}

function summarize(
  variant: Variant,
  reports: SubscriberReport[],
  watch: SubscriberReport,
  sent: number,
  floodSent: number | undefined,
  machine: Pick<
    FloodResult,
    | 'machineBusy'
    | 'brokerCores'
    | 'flooderCores'
    | 'brokerWaitMsPerS'
    | 'subscribersWaitMsPerS'
    | 'loopDelayMax'
  >,
): FloodResult {
  const hist = newHistogram();
  let unique = 0;
  let troubles = 0;
  for (const r of reports) {
    mergeHistogram(hist, r.hist);
    unique += r.unique;
    troubles += r.troubles;
  }
  const seconds = settings.durationMs / 1000;
  return {
    variant: variant.key,
    p50: percentile(hist, 50),
    p99: percentile(hist, 99),
    p999: percentile(hist, 99.9),
    max: percentile(hist, 100),
    lost: sent * settings.subscribers - unique,
    troubles,
    floodAccepted: variant.flood ? watch.inWindow / seconds : undefined,
    floodSent,
    floodTroubles: watch.troubles,
    ...machine,
  };
}

async function main(): Promise<void> {
  const before = machineNow();
  log('compiling src/ into bench/load/.build-flood');
  const { build, commit } = compileCheckout(REPO, '.build-flood');
  const results: FloodResult[][] = [];
  for (let round = 0; round < rounds; round++) {
    const [alone, flood, unlimited] = VARIANTS as [Variant, Variant, Variant];
    const inRound: FloodResult[] = [];
    const pair = async () => {
      log(`round ${round + 1}/${rounds}: ${alone.label} and ${flood.label}, at the same time`);
      inRound.push(...(await Promise.all([runVariant(build, alone), runVariant(build, flood)])));
    };
    const contrast = async () => {
      log(`round ${round + 1}/${rounds}: ${unlimited.label}`);
      inRound.push(await runVariant(build, unlimited));
    };
    if (round % 2 === 0) {
      await pair();
      await contrast();
    } else {
      await contrast();
      await pair();
    }
    results.push(inRound);
  }
  const command = `npx tsx bench/load/flood.ts ${process.argv.slice(2).join(' ')}`.trim();
  const report = renderFlood({
    results,
    variants: VARIANTS,
    settings,
    rate,
    command,
    commit,
    before,
  });
  process.stdout.write(`${report}\n`);
  const out = resolve(REPO, values.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, report);
  log(`written to ${out}`);
}

// Whatever happens, stop every process this run started.
const watchdog = setTimeout(
  () => {
    log('watchdog: the run took too long, stopping');
    for (const child of children) child.kill('SIGKILL');
    process.exit(1);
  },
  rounds * VARIANTS.length * 90_000,
);
watchdog.unref();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    for (const child of children) child.kill('SIGKILL');
    process.exit(130);
  });
}

main().then(
  () => clearTimeout(watchdog),
  (error: unknown) => {
    log(`failed: ${(error as Error).stack ?? error}`);
    for (const child of children) child.kill('SIGKILL');
    process.exit(1);
  },
);
