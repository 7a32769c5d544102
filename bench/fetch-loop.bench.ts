/**
 * The fan-out's own fetch loop (src/cluster/fetch-loop.ts) against kafkajs' consumer as the
 * fan-out ran it before (bench/load/consume-child.ts), side by side on the same records: CPU
 * per record of consuming one topic at a steady rate.
 *
 * ```sh
 * npx tsx bench/fetch-loop.bench.ts     # ~2 min, writes bench/results/fetch-loop.md
 * ```
 *
 * Starts a real Kafka (scripts/kafka.ts) and three consumer processes on one topic of 6
 * partitions: kafkajs' consumer and the fetch loop, both fetching again as soon as a fetch is
 * handed over (the same machinery compared), and the fetch loop with the fan-out's default
 * interval (5 ms). The harness produces `BENCH_RATE` records a second (default 5,000; 256-byte
 * values, one key, one packed header as stompbus writes it) in requests of 15, every 3 ms.
 * After a warm-up, each of `--rounds` rounds (default 5) measures every consumer's CPU and
 * records over the same `BENCH_MEASURE_S` seconds (default 8). Options: `--out <file>`;
 * `BENCH_PROFILE_DIR=<dir>` writes a CPU profile of each consumer process there (read one
 * with `npx tsx bench/load/profile-summary.ts <file>`; profiling slows them: its figures are
 * not the comparison's).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { KAFKA_VERSION, startKafka } from '../scripts/kafka.js';
import { markdownTable, median } from './harness.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    out: { type: 'string', default: 'bench/results/fetch-loop.md' },
  },
});
const ROUNDS = Number(args.rounds);
const RATE = Number(process.env.BENCH_RATE ?? 5_000);
const MEASURE_S = Number(process.env.BENCH_MEASURE_S ?? 8);
const WARMUP_S = 8;
const PER_REQUEST = 15;
const TOPIC = 'stompbus.fetch-loop-bench';
const VALUE = Buffer.alloc(256, 'x');
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;

interface Side {
  readonly name: string;
  readonly mode: 'loop' | 'runner';
  readonly intervalMs: number;
}
const SIDES: readonly Side[] = [
  { name: "kafkajs' consumer (runner, no interval)", mode: 'runner', intervalMs: 0 },
  { name: 'fetch loop, no interval', mode: 'loop', intervalMs: 0 },
  { name: 'fetch loop, 5 ms interval (the default)', mode: 'loop', intervalMs: 5 },
];

interface Window {
  records: number;
  cpuMicros: number;
  seconds: number;
}

function ask<T>(child: ChildProcess, message: string): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as T));
    child.send(message);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line: string) => console.error(`[fetch-loop.bench] ${line}`);

async function main(): Promise<void> {
  const kafka = await startKafka();
  const children: ChildProcess[] = [];
  try {
    const client = new Kafka({ brokers: [kafka.brokers], logLevel: logLevel.NOTHING });
    const admin = client.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [{ topic: TOPIC, numPartitions: 6 }],
      waitForLeaders: true,
    });
    await admin.disconnect();
    const producer = client.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    for (const side of SIDES) {
      const child = fork(
        'bench/load/consume-child.ts',
        [side.mode, kafka.brokers, TOPIC, String(side.intervalMs)],
        {
          execArgv: [
            '--import',
            'tsx',
            ...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []),
          ],
        },
      );
      children.push(child);
      await new Promise((resolve) => child.once('message', resolve));
    }
    let producing = true;
    let produced = 0;
    const everyMs = (1000 * PER_REQUEST) / RATE;
    const pump = (async () => {
      const started = performance.now();
      for (let i = 0; producing; i++) {
        await producer.send({
          topic: TOPIC,
          acks: -1,
          messages: Array.from({ length: PER_REQUEST }, (_, j) => ({
            key: '/topic/fetch-loop-bench',
            value: VALUE,
            headers: { 'stompbus-h': `message-id:bench-${i}-${j}\ncontent-type:text/plain` },
          })),
        });
        produced += PER_REQUEST;
        const wait = started + (i + 1) * everyMs - performance.now();
        if (wait > 0) await sleep(wait);
      }
    })();
    log(`warm-up ${WARMUP_S} s`);
    await sleep(WARMUP_S * 1000);
    const rounds: Window[][] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      const before = produced;
      await Promise.all(children.map((c) => c.send('start')));
      await sleep(MEASURE_S * 1000);
      const windows = await Promise.all(children.map((c) => ask<Window>(c, 'stop')));
      rounds.push(windows);
      log(
        `round ${r}: produced ${produced - before}; ` +
          windows
            .map((w, i) => `${SIDES[i]?.mode}: ${(w.cpuMicros / w.records).toFixed(1)} µs/record`)
            .join(', '),
      );
    }
    producing = false;
    await pump;
    await producer.disconnect();
    writeReport(rounds);
  } finally {
    for (const child of children) child.send('exit');
    // A profiled process writes its profile as it exits.
    await sleep(PROFILE_DIR ? 3_000 : 500);
    for (const child of children) if (child.exitCode === null) child.kill();
    await kafka.stop();
  }
}

function writeReport(rounds: Window[][]): void {
  const perRecord = (w: Window) => w.cpuMicros / w.records;
  const rows = SIDES.map((side, i) => {
    const micros = rounds.map((windows) => perRecord(windows[i] as Window));
    const cores = rounds.map(
      (windows) => (windows[i] as Window).cpuMicros / 1e6 / (windows[i] as Window).seconds,
    );
    const ratios = rounds.map(
      (windows) => perRecord(windows[i] as Window) / perRecord(windows[0] as Window),
    );
    const records = rounds.reduce((sum, windows) => sum + (windows[i] as Window).records, 0);
    return [
      side.name,
      String(records),
      median(micros).toFixed(1),
      micros.map((m) => m.toFixed(1)).join(' / '),
      median(cores).toFixed(3),
      i === 0
        ? '1'
        : `${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}×-${Math.max(...ratios).toFixed(2)}×)`,
    ];
  });
  const report = [
    "# The fan-out's fetch loop against kafkajs' consumer",
    '',
    `Date: ${new Date().toISOString()} · machine: ${cpus().length} CPU (\`nproc\`), ${cpus()[0]?.model.trim()} · Node ${process.version} · Kafka ${KAFKA_VERSION} (single node, KRaft, loopback)`,
    '',
    `${RATE.toLocaleString('en-US')} records/s (requests of ${PER_REQUEST}, 256-byte values, one key) to one topic of 6 partitions; three consumer processes read every record at the same time; ${ROUNDS} rounds of ${MEASURE_S} s after ${WARMUP_S} s of warm-up. CPU is each process's user + system time over the round.`,
    '',
    markdownTable(
      [
        'consumer',
        'records',
        'CPU µs per record (median)',
        'per round',
        'cores (median)',
        "CPU per record ÷ kafkajs' consumer, median (range over rounds)",
      ],
      rows,
    ),
    '',
    'Command: `npx tsx bench/fetch-loop.bench.ts`',
    '',
  ].join('\n');
  writeFileSync(args.out as string, report);
  console.log(report);
}

const watchdog = setTimeout(() => {
  console.error('[fetch-loop.bench] took longer than 10 minutes: giving up');
  process.exit(1);
}, 600_000);
watchdog.unref();
main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
