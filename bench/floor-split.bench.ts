/**
 * Where plain kafkajs' produce-to-consume time goes (issue 12), and what kafkajs' default
 * offset commits cost it: the question behind the Kafka floor of `bench/cluster.bench.ts`.
 *
 * ```sh
 * npx tsx bench/floor-split.bench.ts     # ~1 min, writes bench/results/floor-split.md
 * ```
 *
 * One kafkajs producer in this process sends 5,000 records/s (256-byte values, one key, so one
 * partition of a 6-partition topic) batched as the cluster benchmark's floor and stompbus'
 * produce queue do (one event-loop turn a request, one request in flight, `acks: -1`). Two
 * kafkajs consumers in this process, in groups of their own, read the same records at the same
 * time with the fan-out's consumer settings: one commits no offsets (as the fan-out), the other
 * commits after every batch (kafkajs' default). The topic stamps every record with Kafka's
 * own append time (`message.timestamp.type=LogAppendTime`), which splits each record's latency
 * into send → append (the producer's side, shared) and append → received (each consumer's).
 * Both clocks are this machine's, in milliseconds. Starts a real Kafka (scripts/kafka.ts) and
 * stops it.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Consumer, Kafka, logLevel, Partitioners } from 'kafkajs';
import { KAFKA_VERSION, type RunningKafka, startKafka } from '../scripts/kafka.js';
import { fixKafkajs } from '../src/cluster/kafkajs-fixes.js';
import { floorQueue, LOG_APPEND_TIME, startFloorConsumer } from './load/floor-client.mjs';
import { loadAverage } from './load/instances.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const RATE = 5_000;
const VALUE = 'x'.repeat(256);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARMUP_S = 3;
const ROUND_S = Number(process.env.BENCH_MEASURE_S ?? 10);
const PARTITIONS = 6;
const MAX_BATCH_RECORDS = 1_000;

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => console.error(`[floor-split.bench] ${msg}`);

/** Latencies of one kind in one round, ms. */
type Samples = number[];
interface Round {
  toAppend: Samples;
  received: Record<'none' | 'commits', { fromAppend: Samples; total: Samples }>;
}

function quantile(values: Samples, p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN;
}

const fmt = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');

let kafka: RunningKafka | undefined;

async function main(): Promise<void> {
  // kafkajs as stompbus runs it and as the cluster benchmark's floor runs it.
  fixKafkajs();
  const loadBefore = loadAverage();
  log('starting Kafka');
  kafka = await startKafka();
  const topic = `stompbus-floor-split-${randomBytes(4).toString('hex')}`;
  const client = new Kafka({
    clientId: 'stompbus-floor-split',
    brokers: kafka.brokers.split(','),
    logLevel: logLevel.NOTHING,
  });
  const admin = client.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      {
        topic,
        numPartitions: PARTITIONS,
        replicationFactor: 1,
        configEntries: [LOG_APPEND_TIME],
      },
    ],
    waitForLeaders: true,
  });
  const producer = client.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();

  let round: Round | undefined;
  const consumers: Consumer[] = [];
  for (const kind of ['none', 'commits'] as const) {
    const consumer = await startFloorConsumer(client, {
      groupId: `${topic}-${kind}`,
      topic,
      autoCommit: kind === 'commits',
      eachBatch: async ({ batch }) => {
        const at = now();
        const into = round?.received[kind];
        if (!into) return;
        for (const m of batch.messages) {
          const sent = Number(m.headers?.['x-sent']?.toString());
          const appended = Number(m.timestamp);
          into.fromAppend.push(at - appended);
          into.total.push(at - sent);
          if (kind === 'none') round?.toAppend.push(appended - sent);
        }
      },
    });
    consumers.push(consumer);
  }
  await sleep(500);

  // One event-loop turn of records a request, one request in flight (as the fan-out).
  const queue = floorQueue(producer, topic, MAX_BATCH_RECORDS, (count, e) =>
    log(`${count} records failed: ${String(e)}`),
  );
  /** Paced sends for `seconds` (ticks of about 1 ms, catching up on what is due). */
  const paced = (seconds: number) =>
    new Promise<void>((resolve) => {
      const count = RATE * seconds;
      const start = performance.now();
      let i = 0;
      const timer = setInterval(() => {
        const due = Math.min(count, Math.floor(((performance.now() - start) * RATE) / 1000));
        for (; i < due; i++) {
          queue.offer({
            key: '/topic/bench',
            value: VALUE,
            headers: { 'x-sent': now().toFixed(3) },
          });
        }
        if (i >= count) {
          clearInterval(timer);
          resolve();
        }
      }, 1);
    });

  const rounds: Round[] = [];
  log(`warm-up: ${WARMUP_S} s`);
  await paced(WARMUP_S);
  await sleep(1_000);
  for (let r = 1; r <= ROUNDS; r++) {
    log(`round ${r}: ${ROUND_S} s`);
    const current: Round = {
      toAppend: [],
      received: { none: { fromAppend: [], total: [] }, commits: { fromAppend: [], total: [] } },
    };
    round = current;
    await paced(ROUND_S);
    await queue.settled();
    await sleep(1_000);
    round = undefined;
    rounds.push(current);
  }
  for (const c of consumers) await c.disconnect().catch(() => {});
  await producer.disconnect().catch(() => {});
  await admin.deleteTopics({ topics: [topic] }).catch(() => {});
  await admin.disconnect().catch(() => {});
  const loadAfter = loadAverage();

  const row = (label: string, pick: (r: Round) => Samples) => {
    const all = rounds.flatMap(pick);
    return (
      `| ${label} | ${all.length} | ${fmt(quantile(all, 0.5))} | ${fmt(quantile(all, 0.9))} | ` +
      `${fmt(quantile(all, 0.99))} | ${fmt(quantile(all, 1))} | ` +
      `${rounds.map((r) => fmt(quantile(pick(r), 0.99))).join(' / ')} |`
    );
  };
  const md = [
    "# Where the Kafka floor's time goes",
    '',
    `Date: ${new Date().toISOString()} · machine: ${cpus().length} CPU, ${cpus()[0]?.model.trim()} · ` +
      `Node ${process.version} · Kafka ${KAFKA_VERSION} (single node, KRaft, loopback) · load ` +
      `average before: ${loadBefore}, after: ${loadAfter}`,
    '',
    `${RATE.toLocaleString('en-US')} records/s, 256-byte values, one key; one kafkajs producer ` +
      '(one request in flight, `acks: -1`) and two kafkajs consumers reading the same records at ' +
      "the same time, one committing no offsets, one committing after every batch (kafkajs' " +
      `default). ${WARMUP_S} s warm-up, then ${ROUNDS} rounds of ${ROUND_S} s. Kafka stamps each ` +
      'record with its append time, which splits the latency at Kafka.',
    '',
    '| what | records | p50 ms | p90 ms | p99 ms | max ms | p99 ms per round |',
    '|---|---:|---:|---:|---:|---:|---|',
    row("send → append (the producer's side, shared)", (r) => r.toAppend),
    row('append → received, no commits', (r) => r.received.none.fromAppend),
    row('append → received, commits after every batch', (r) => r.received.commits.fromAppend),
    row('send → received, no commits', (r) => r.received.none.total),
    row('send → received, commits after every batch', (r) => r.received.commits.total),
    '',
    'Command: `npx tsx bench/floor-split.bench.ts`',
    '',
  ].join('\n');
  const out = join(ROOT, 'bench/results/floor-split.md');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, md);
  console.log(md);
}

const watchdog = setTimeout(() => {
  log('watchdog: still running after 5 minutes, stopping');
  void kafka?.stop().finally(() => process.exit(1));
}, 300_000);

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await kafka?.stop().catch((e: unknown) => log(`stopping Kafka: ${String(e)}`));
  clearTimeout(watchdog);
}
process.exit();
