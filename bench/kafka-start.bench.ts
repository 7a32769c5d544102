/**
 * How long a cluster instance takes from its start to reading Kafka (its `connected to … in
 * <n> ms` log line), this checkout against `--baseline <checkout>`, on a Kafka with its own
 * default `group.initial.rebalance.delay.ms` (3 s: the test broker sets 0). An instance that
 * joins a consumer group of its own waits that delay at its start; the fan-out's fetch loop
 * (src/cluster/fetch-loop.ts) joins none.
 *
 * ```sh
 * git worktree add /tmp/stompbus-base <commit> && ln -s "$PWD/node_modules" /tmp/stompbus-base/
 * npx tsx bench/kafka-start.bench.ts --baseline /tmp/stompbus-base   # ~1.5 min, writes bench/results/kafka-start.md
 * ```
 *
 * Each build's first start creates its topics and is not counted; then `--rounds` (default 4)
 * starts of each, alternating which goes first, each instance stopped (SIGTERM) before the
 * next starts. Options: `--out <file>`.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KAFKA_VERSION, startKafka } from '../scripts/kafka.js';
import { markdownTable, median } from './harness.js';
import { startInstance, stopChild, stopChildren } from './load/instances.js';
import { compileCheckout, REPO } from './load/targets.js';

const { values: args } = parseArgs({
  options: {
    baseline: { type: 'string' },
    rounds: { type: 'string', default: '4' },
    out: { type: 'string', default: 'bench/results/kafka-start.md' },
  },
});
if (!args.baseline) throw new Error('usage: kafka-start.bench.ts --baseline <checkout>');
const ROUNDS = Number(args.rounds);
const log = (line: string) => console.error(`[kafka-start.bench] ${line}`);

/** Starts an instance of `build` on `topic` and resolves with the ms its log line gives. */
async function connectMs(build: string, brokers: string, topic: string): Promise<number> {
  const logDir = mkdtempSync(join(tmpdir(), 'stompbus-kafka-start-'));
  const instance = await startInstance(
    build,
    ['--kafka-brokers', brokers, '--kafka-topic', topic, '--log-format', 'json'],
    { logDir },
  );
  try {
    const file = join(logDir, `${instance.child.pid}.log`);
    const deadline = Date.now() + 60_000;
    for (;;) {
      let text = '';
      try {
        text = readFileSync(file, 'utf8');
      } catch {}
      const line = text.split('\n').find((l) => l.includes('"kafka":"connected"'));
      const ms = line && /"durationMs":(\d+)/.exec(line)?.[1];
      if (ms) return Number(ms);
      if (Date.now() > deadline) throw new Error(`no "connected" line in 60 s:\n${text}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await stopChild(instance.child);
  }
}

async function main(): Promise<void> {
  const ours = compileCheckout(REPO, '.build-kafka-start');
  const base = compileCheckout(args.baseline as string, '.build-kafka-start');
  const builds = [
    { name: ours.label, build: ours.build, topic: 'stompbus.start-new', ms: [] as number[] },
    { name: base.label, build: base.build, topic: 'stompbus.start-old', ms: [] as number[] },
  ];
  // Kafka's own default: a new group's first join waits this long for more members.
  const kafka = await startKafka({ properties: { 'group.initial.rebalance.delay.ms': '3000' } });
  try {
    for (const b of builds) {
      const ms = await connectMs(b.build, kafka.brokers, b.topic);
      log(`${b.name}: first start (topics created, not counted) ${ms} ms`);
    }
    for (let r = 1; r <= ROUNDS; r++) {
      const order = r % 2 === 1 ? builds : [...builds].reverse();
      for (const b of order) {
        const ms = await connectMs(b.build, kafka.brokers, b.topic);
        b.ms.push(ms);
        log(`round ${r}: ${b.name} connected in ${ms} ms`);
      }
    }
  } finally {
    await stopChildren();
    await kafka.stop();
  }
  const report = [
    '# Cluster instance start: reading Kafka',
    '',
    `Date: ${new Date().toISOString()} · machine: ${cpus().length} CPU (\`nproc\`), ${cpus()[0]?.model.trim()} · Node ${process.version} · Kafka ${KAFKA_VERSION} (single node, KRaft, loopback, \`group.initial.rebalance.delay.ms=3000\`, Kafka's default)`,
    '',
    `From the instance's start to its \`connected to … in <n> ms\` log line (topics there already, producer connected, the consumer reading, the history read back); ${ROUNDS} starts of each build, alternating.`,
    '',
    markdownTable(
      ['build', 'median ms', 'per start ms'],
      builds.map((b) => [b.name, String(median(b.ms)), b.ms.join(' / ')]),
    ),
    '',
    `Command: \`npx tsx bench/kafka-start.bench.ts --baseline ${args.baseline}\``,
    '',
  ].join('\n');
  writeFileSync(args.out as string, report);
  console.log(report);
}

main().then(
  () => process.exit(0),
  async (error: unknown) => {
    console.error(error);
    await stopChildren();
    process.exit(1);
  },
);
