/**
 * Load benchmark: stompbus against a bare `ws` broadcast server (the
 * transport ceiling) and RabbitMQ Web-STOMP, with client processes of its own
 * on real sockets to 127.0.0.1. Scenarios: fan-out at max rate to 100 and 1000
 * subscribers, paced fan-out (5,000 deliveries/s), competing consumers on a
 * queue, and 10,000 idle connections.
 *
 * Run: `npx tsx bench/load/run.ts [--quick] [--only stompbus,baseline,ws,rabbitmq]
 *       [--scenarios fanout,paced,queue,idle] [--baseline dir] [--rounds n]
 *       [--profile dir] [--node-flags '...'] [--out file]`
 *
 * `--baseline <dir>` adds a second stompbus build as the target `baseline`
 * (reported as `stompbus@<commit>`): another checkout, e.g. a `git worktree`
 * of the commit before a change, compiled from its src/ like ours. It runs
 * wherever stompbus runs: next to it, and at the same time in the paced
 * scenarios. `--rounds <n>` repeats every scenario n times, the order of the
 * targets reversed every other round (A B C, C B A, ...), and the report gives
 * the per-round ratios with their range.
 *
 * `--profile` runs stompbus with `--cpu-prof` (profiles in `dir/<scenario>/`); `--node-flags` passes more Node flags to stompbus (e.g. `--trace-gc`);
 * `--verbose` shows what the brokers print.
 *
 * Prints a markdown report and writes it to bench/results/load.md (or --out).
 * Every run is bounded: each scenario has deadlines, and a watchdog stops
 * everything the harness started if the whole run overstays.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  loadAverage,
  machine,
  type Outcome,
  type Results,
  type RoundResults,
  renderReport,
} from './report.js';
import { type DeliveryPlan, type DeliveryResult, runDelivery, runIdle } from './scenarios.js';
import {
  buildBaseline,
  buildTargets,
  children,
  fdLimitOf,
  REPO,
  setVerbose,
  startTarget,
  stompbusCommand,
  TARGET_NAMES,
  type Target,
  type TargetName,
} from './targets.js';

const SCENARIOS = ['fanout', 'paced', 'queue', 'idle'] as const;

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string', default: TARGET_NAMES.join(',') },
    scenarios: { type: 'string', default: SCENARIOS.join(',') },
    profile: { type: 'string' },
    'node-flags': { type: 'string', default: '' },
    verbose: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results/load.md' },
    baseline: { type: 'string' },
    rounds: { type: 'string', default: '1' },
  },
});

function pick<T extends string>(list: string, allowed: readonly T[], flag: string): T[] {
  const names = list.split(',').filter(Boolean);
  for (const n of names) {
    if (!allowed.includes(n as T))
      throw new Error(`${flag}: unknown "${n}" (one of ${allowed.join(', ')})`);
  }
  return allowed.filter((a) => names.includes(a));
}

const targets = pick(
  values.baseline && !process.argv.some((a) => a.startsWith('--only'))
    ? `${values.only},baseline`
    : values.only,
  TARGET_NAMES,
  '--only',
);
if (targets.includes('baseline') && !values.baseline)
  throw new Error('--only baseline needs --baseline <dir> (another stompbus checkout)');
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds: a whole number ≥ 1');
setVerbose(values.verbose);
const scenarios = pick(values.scenarios, SCENARIOS, '--scenarios');
const quick = values.quick;

/** Durations and sizes: the full run takes about 5 minutes, --quick under one. */
const settings = {
  durationMs: quick ? 1500 : 5000,
  warmupMs: quick ? 500 : 1000,
  /** Most time stragglers get after the publisher stops (less if nothing arrives for 3 s). */
  drainMs: quick ? 5000 : 20_000,
  fanout: quick ? [100] : [100, 1000],
  /** Max-rate window in deliveries: messages in flight = this ÷ subscribers. */
  windowDeliveries: 50_000,
  idleConnections: quick ? 1000 : 10_000,
  idleDeadlineMs: quick ? 20_000 : 60_000,
  bodySize: 256,
  /** Sized for three targets and one round. */
  watchdogMs: (quick ? 4 : 12) * 60_000 * rounds * Math.max(1, targets.length / 3),
};

const plans = {
  fanout: (n: number): DeliveryPlan => ({
    mode: 'topic',
    destination: '/topic/bench.fanout',
    subscribers: n,
    processes: n >= 1000 ? 4 : 2,
    pace: 'max',
    window: Math.max(4, Math.round(settings.windowDeliveries / n)),
    rate: 0,
    durationMs: settings.durationMs,
    warmupMs: settings.warmupMs,
    drainMs: settings.drainMs,
    bodySize: settings.bodySize,
  }),
  /** `n` subscribers, `rate` messages/s: n × rate deliveries/s. */
  paced: (n: number, rate: number): DeliveryPlan => ({
    mode: 'topic',
    destination: '/topic/bench.paced',
    subscribers: n,
    processes: 2,
    pace: 'paced',
    window: 0,
    rate,
    durationMs: quick ? 2000 : 5000,
    warmupMs: settings.warmupMs,
    drainMs: settings.drainMs,
    bodySize: settings.bodySize,
  }),
  queue: (): DeliveryPlan => ({
    mode: 'queue',
    destination: '/queue/bench',
    subscribers: 4,
    processes: 2,
    pace: 'max',
    window: 1000,
    rate: 0,
    durationMs: settings.durationMs,
    warmupMs: settings.warmupMs,
    drainMs: settings.drainMs,
    bodySize: settings.bodySize,
  }),
};

function log(line: string): void {
  process.stderr.write(`[load] ${line}\n`);
}

/** Starts the target (fresh for the ones we own), runs `body`, stops it. */
async function withTarget<T>(
  name: TargetName,
  scenario: string,
  body: (target: Target) => Promise<T>,
  round = 0,
): Promise<Outcome<T>> {
  const flags = values['node-flags'].split(' ').filter(Boolean);
  if (values.profile) {
    // One directory per scenario: with tsx, Node writes a profile per thread
    // (the loader's too), so fixed file names would overwrite each other.
    const dir = rounds > 1 ? `${scenario}-r${round + 1}` : scenario;
    flags.push('--cpu-prof', '--cpu-prof-dir', resolve(values.profile, dir, name));
  }
  let target: Target | undefined;
  try {
    target = await startTarget(name, flags);
    return { ok: true, value: await body(target) };
  } catch (error) {
    log(`${scenario} ${name}: ${(error as Error).message}`);
    return { ok: false, error: (error as Error).message.split('\n')[0] as string };
  } finally {
    await target?.stop();
  }
}

async function main(): Promise<void> {
  const results: Results = { rounds: [] };
  const header = [...machine()];
  if (targets.includes('stompbus') || targets.includes('ws')) {
    log('compiling src/ and the ws server into bench/load/.build');
    const complaint = buildTargets();
    if (complaint) header.push(`- note: ${complaint}`);
  }
  header.push(
    `- command: \`npx tsx bench/load/run.ts${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\``,
    `- stompbus: \`node ${stompbusCommand([]).slice(1).join(' ').replaceAll(REPO, '')}\``,
    '  (src/ compiled with tsconfig.build.json into bench/load/.build/dist at the start of the run)',
  );
  if (targets.includes('baseline') && values.baseline) {
    log(`compiling the baseline ${values.baseline}`);
    const base = buildBaseline(values.baseline);
    header.push(
      `- ${base.label}: \`node ${stompbusCommand([], base.build).slice(1).join(' ').replaceAll(REPO, '')}\``,
      `  (${base.checkout}/src at ${base.commit}, compiled with its tsconfig.build.json and its own`,
      '  node_modules at the start of the run; started like stompbus, through the main() of its src/cli.ts)',
    );
  }
  if (rounds > 1) {
    header.push(
      `- rounds: ${rounds}; every scenario runs once per round, the targets in table order in`,
      '  odd rounds and in reverse order in even ones (paced: all Node brokers at the same time)',
    );
  }
  const deliveries: [string, DeliveryPlan][] = [];
  if (scenarios.includes('fanout'))
    for (const n of settings.fanout) deliveries.push([`fan-out ${n}`, plans.fanout(n)]);
  if (scenarios.includes('paced')) {
    // Both 5,000 deliveries/s. With 100 × 50/s every message gives 100 correlated
    // samples, so p99 rests on the 2 or 3 slowest messages of the run; 10 × 500/s
    // spreads the same rate over ten times as many messages.
    deliveries.push(['paced 100 × 50/s', plans.paced(100, 50)]);
    deliveries.push(['paced 10 × 500/s', plans.paced(10, 500)]);
  }
  if (scenarios.includes('queue')) deliveries.push(['queue 4 consumers', plans.queue()]);
  for (let round = 0; round < rounds; round++) {
    const results1: RoundResults = { delivery: new Map(), idle: new Map() };
    results.rounds.push(results1);
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    const tag = rounds > 1 ? ` (round ${round + 1}/${rounds})` : '';
    for (const [label, plan] of deliveries) {
      const byTarget = new Map<TargetName, Outcome<DeliveryResult>>();
      results1.delivery.set(label, byTarget);
      const slug = label.replace(/[^a-z0-9]+/gi, '-');
      // Paced: the Node brokers (stompbus, the baseline, bare ws) run at the same
      // time (together they use a fraction of a core), so a busy spell on the
      // machine hits all alike.
      const together: TargetName[] =
        plan.pace === 'paced' ? order.filter((n) => n !== 'rabbitmq') : [];
      if (together.length > 1) {
        log(`${label}${tag}: ${together.join(' + ')}, at the same time`);
        const outcomes = await Promise.all(
          together.map((name) => withTarget(name, slug, (t) => runDelivery(t, plan), round)),
        );
        together.forEach((name, i) => {
          byTarget.set(name, outcomes[i] as Outcome<DeliveryResult>);
        });
      }
      for (const name of order) {
        if (plan.mode === 'queue' && name === 'ws') continue;
        if (together.length > 1 && together.includes(name)) continue;
        log(`${label}${tag}: ${name}`);
        byTarget.set(name, await withTarget(name, slug, (t) => runDelivery(t, plan), round));
      }
    }
    if (scenarios.includes('idle')) {
      for (const name of order) {
        log(`idle ${settings.idleConnections}${tag}: ${name}`);
        results1.idle.set(
          name,
          await withTarget(
            name,
            'idle',
            async (t) => {
              const r = await runIdle(t, settings.idleConnections, 4, settings.idleDeadlineMs);
              const limit = fdLimitOf(t.pid);
              if (limit !== undefined && limit < settings.idleConnections)
                r.notes.push(`broker fd limit ${limit}`);
              return r;
            },
            round,
          ),
        );
      }
    }
  }
  header.push(`- load average at end: ${loadAverage()}`);
  const report = renderReport(results, header, method());
  process.stdout.write(`${report}\n`);
  const out = resolve(REPO, values.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, report);
  log(`written to ${out}`);
}

function method(): string[] {
  const window = settings.windowDeliveries.toLocaleString('en');
  return [
    '- Clients are separate Node processes (bench/load/worker.ts) using `ws`; every connection',
    '  CONNECTs (heart-beats off), SUBSCRIBEs with a receipt and waits for the RECEIPT before the',
    '  run starts. stompbus and the bare ws server are started fresh for every scenario.',
    `- Bodies are ${settings.bodySize} bytes and begin with run id, sequence number and send time`,
    '  (`performance.timeOrigin + performance.now()`, comparable across processes). Latency is',
    '  send time to the moment the subscriber process reads the frame, over the frames read after',
    `  the ${settings.warmupMs / 1000} s warm-up.`,
    `- deliveries/s = frames read during the ${settings.durationMs / 1000} s after the warm-up ÷`,
    '  that time. Max rate is a closed loop: the publisher keeps at most',
    `  ${window} ÷ subscribers messages in flight beyond the slowest subscriber (queue: 1000`,
    '  beyond all consumers together), so max-rate latency is about window ÷ throughput; the',
    '  paced scenario is the latency measurement. In it stompbus and bare ws run at the same',
    '  time, so that whatever else the machine does hits both alike.',
    '- lost = messages sent × subscribers − distinct messages read by the time all arrived, or',
    `  nothing arrived for 3 s, or ${settings.drainMs / 1000} s after the publisher stopped; dup =`,
    '  a sequence number read again by the same subscriber (queue: by any consumer).',
    '- broker / clients CPU: cores in use during the measured part (/proc/<pid>/stat).',
    '  Broker RSS is VmRSS (RabbitMQ: beam.smp), sampled every 100 ms. Idle: RSS 3 s after the',
    '  last connection subscribed minus RSS before, ÷ connections; each connection subscribes to',
    '  a topic of its own.',
    '- Broker and clients share the machine; with 2 cores the clients take CPU the broker could',
    '  use, for every target alike (RabbitMQ can use both cores for itself). Compare',
    '  deliveries / broker CPU-s when the machine is busy.',
  ];
}

// The watchdog: whatever happens, stop everything we started and leave.
const watchdog = setTimeout(() => {
  log(`watchdog: run exceeded ${settings.watchdogMs / 1000} s, stopping`);
  emergencyStop(1);
}, settings.watchdogMs);
watchdog.unref();

function emergencyStop(code: number): void {
  for (const child of children) child.kill('SIGKILL');
  process.exit(code);
}
process.on('SIGINT', () => emergencyStop(130));
process.on('SIGTERM', () => emergencyStop(143));

main().then(
  () => {
    clearTimeout(watchdog);
  },
  (error: unknown) => {
    log(`failed: ${(error as Error).stack ?? error}`);
    emergencyStop(1);
  },
);
