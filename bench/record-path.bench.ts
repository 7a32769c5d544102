/**
 * The CPU an instance spends per fetched record in stompbus's own code (issue 12, "CPU per
 * record"), this checkout against another one, side by side in one process: `KafkaFanout`'s
 * handling of a fetched batch (interest check, offsets, the retried-copy check, record →
 * message) with a sink that only counts, and the partitioner the producer calls per record.
 * Neither kafkajs's decoding nor socket writes are in it: what the cluster benchmark's
 * figures cannot isolate on a busy machine, this measures alone.
 *
 * ```sh
 * git worktree add /tmp/stompbus-base <commit> && ln -s "$PWD/node_modules" /tmp/stompbus-base/
 * npx tsx bench/record-path.bench.ts --baseline /tmp/stompbus-base [--rounds 7]
 * ```
 *
 * Records like cluster.bench.ts's: one destination, 256-byte values, the headers a SEND of
 * that benchmark becomes (`content-type`, `x-seq`, `x-sent`, the message id), in batches of
 * 25 (about what one fetch brings at 5,000 messages/s). Each round times 200,000 records on
 * each side in pairs of 20,000 (A B, then B A) and gives the median µs per record of each and
 * the median of the per-pair ratios new ÷ old. The fan-out is built but never started: no
 * Kafka is needed.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { ConsumedRecord } from '../src/cluster/kafka-client.js';
import { median } from './harness.js';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    baseline: { type: 'string' },
    rounds: { type: 'string', default: '7' },
  },
});
if (!values.baseline) throw new Error('--baseline <checkout> is required');
const ROUNDS = Number(values.rounds);
const PAIR = 20_000;
const PAIRS = 10;
const BATCH = 25;
const TOPIC = 'stompbus.topics';

interface Side {
  label: string;
  /** Feeds `records` to the fan-out's batch handler; resolves with the messages delivered. */
  consume(records: ConsumedRecord[]): number;
  /** Calls the producer's partitioner once per record key. */
  partition(records: ConsumedRecord[]): number;
}

function commitOf(root: string): string {
  try {
    return execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD']).toString().trim();
  } catch {
    return root;
  }
}

async function loadSide(root: string): Promise<Side> {
  const fanoutModule = await import(pathToFileURL(join(root, 'src/cluster/kafka-fanout.ts')).href);
  const partitionerModule = await import(
    pathToFileURL(join(root, 'src/cluster/partitioner.ts')).href
  );
  const kafkajs = await import('kafkajs');
  const fanout = new fanoutModule.KafkaFanout({ brokers: '127.0.0.1:1', interest: 'all' });
  let delivered = 0;
  // The sink start() would set; the fan-out is never started (no Kafka).
  (fanout as { sink: unknown }).sink = {
    deliver: () => {
      delivered++;
    },
    consumed: () => {},
    localUsers: () => [],
  };
  const onRecords = (fanout as { onRecords: (r: ConsumedRecord[]) => void }).onRecords.bind(fanout);
  // What kafka-client.ts gives kafkajs: the newer checkout's own partitioner, else kafkajs's.
  const partitioner =
    typeof partitionerModule.keyedPartitioner === 'function'
      ? partitionerModule.keyedPartitioner(kafkajs.Partitioners.DefaultPartitioner())
      : kafkajs.Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: 6 }, (_, partitionId) => ({
    partitionId,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
  return {
    label: `stompbus@${commitOf(root)}`,
    consume(records) {
      delivered = 0;
      for (let i = 0; i < records.length; i += BATCH) onRecords(records.slice(i, i + BATCH));
      return delivered;
    },
    partition(records) {
      let sum = 0;
      for (const r of records) {
        sum += partitioner({
          topic: TOPIC,
          partitionMetadata,
          message: { key: '/topic/bench', value: r.value },
        });
      }
      return sum;
    },
  };
}

/** Records as kafka-client.ts hands them over, offsets going on from `from`. */
function records(from: number, count: number, tag: string): ConsumedRecord[] {
  const value = Buffer.alloc(256, 'x');
  const out: ConsumedRecord[] = [];
  for (let i = 0; i < count; i++) {
    const n = from + i;
    out.push({
      topic: TOPIC,
      partition: 0,
      offset: String(n),
      key: Buffer.from('/topic/bench'),
      value: Buffer.from(value),
      timestamp: Date.now(),
      headers: [
        ['content-type', Buffer.from('text/plain')],
        ['x-seq', Buffer.from(String(n))],
        ['x-sent', Buffer.from((1_764_000_000_000 + n).toFixed(3))],
        ['stompbus-message-id', Buffer.from(`stompbus-host-1234-abcdef-${tag}-${n}`)],
      ],
    });
  }
  return out;
}

function time(fn: () => number, expected: number | undefined): number {
  collectGarbage();
  const t = process.cpuUsage();
  const n = fn();
  const used = process.cpuUsage(t);
  if (expected !== undefined && n !== expected) throw new Error(`delivered ${n} of ${expected}`);
  return used.user + used.system; // µs
}

const sides = [await loadSide(REPO), await loadSide(values.baseline)] as [Side, Side];
const offsets = [0, 0];
const rows: string[] = [];
for (const what of ['consume', 'partition'] as const) {
  const perRound: Array<{ a: number; b: number; ratio: number }> = [];
  for (let round = 0; round <= ROUNDS; round++) {
    const a: number[] = [];
    const b: number[] = [];
    const ratios: number[] = [];
    for (let pair = 0; pair < PAIRS; pair++) {
      const order = pair % 2 === 0 ? [0, 1] : [1, 0];
      const us: number[] = [0, 0];
      for (const s of order) {
        const side = sides[s as 0 | 1];
        const batch = records(offsets[s] ?? 0, PAIR, String(s));
        offsets[s] = (offsets[s] ?? 0) + PAIR;
        us[s] =
          what === 'consume'
            ? time(() => side.consume(batch), PAIR)
            : time(() => side.partition(batch), undefined);
      }
      a.push((us[0] ?? 0) / PAIR);
      b.push((us[1] ?? 0) / PAIR);
      ratios.push((us[0] ?? 0) / (us[1] ?? 1));
    }
    // Round 0 warms both sides up (JIT), unreported.
    if (round > 0) perRound.push({ a: median(a), b: median(b), ratio: median(ratios) });
  }
  const r = perRound.map((p) => p.ratio);
  const label =
    what === 'consume'
      ? 'fetched record → message (onRecords, per record)'
      : 'producer partitioner (per record)';
  rows.push(
    `| ${label} | ${median(perRound.map((p) => p.a)).toFixed(3)} | ${median(perRound.map((p) => p.b)).toFixed(3)} | ` +
      `${median(r).toFixed(2)}× | ${Math.min(...r).toFixed(2)}×–${Math.max(...r).toFixed(2)}× |`,
  );
}
console.log(
  [
    `| CPU µs per record | ${sides[0].label} (new) | ${sides[1].label} (old) | new ÷ old, median of ${ROUNDS} rounds | range |`,
    '|---|---:|---:|---:|---|',
    ...rows,
  ].join('\n'),
);
