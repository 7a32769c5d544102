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
import { countingConnection, turn } from './inproc.js';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    baseline: { type: 'string' },
    rounds: { type: 'string', default: '7' },
    /** Only these cases, comma-separated (consume, deliver, publish, partition): for a profile. */
    cases: { type: 'string', default: 'consume,deliver,publish,partition' },
  },
});
if (!values.baseline) throw new Error('--baseline <checkout> is required');
const ROUNDS = Number(values.rounds);
const PAIR = 20_000;
const PAIRS = 10;
const BATCH = 25;
/** SEND frames per chunk of bytes a session reads (ceiling.bench.ts writes a 1 ms tick's). */
const TICK = 40;
/** Records per fetched batch (one partition) in the delivery case. */
const DELIVER_BATCH = 100;
const BODY = 'x'.repeat(256);
const TOPIC = 'stompbus.topics';

interface Side {
  label: string;
  /** Feeds `records` to the fan-out's batch handler; resolves with the messages delivered. */
  consume(records: ConsumedRecord[]): number;
  /** Calls the producer's partitioner once per record key. */
  partition(records: ConsumedRecord[]): number;
  /**
   * Feeds `count` SEND frames to a connected session, `TICK` frames at a time, and resolves
   * once the fan-out's produce queue has handed every record to its (instant) request.
   */
  publish(from: number, count: number): Promise<number>;
  /**
   * Feeds `records` (packed, 6 destinations) to the batch handler of a fan-out under a broker
   * with one subscriber to all 6; resolves with `records.length` when the bytes written to
   * it hold a MESSAGE (its body at least) per record.
   */
  deliver(records: ConsumedRecord[]): Promise<number>;
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
  // The publishing side: a broker whose bus is a second fan-out, never started either; its
  // produce queue's request is answered at once, so that only stompbus's code is timed.
  const brokerModule = await import(pathToFileURL(join(root, 'src/stomp-broker.ts')).href);
  const connectionModule = await import(
    pathToFileURL(join(root, 'src/transport/connection.ts')).href
  );
  const publisher = new fanoutModule.KafkaFanout({ brokers: '127.0.0.1:1', interest: 'all' });
  let produced = 0;
  const queue = (publisher as { queue: { options: object; pending: number } }).queue;
  queue.options = {
    ...queue.options,
    send: (batch: readonly unknown[]) => {
      produced += batch.length;
      return Promise.resolve();
    },
  };
  const broker = brokerModule.createBroker({ fanout: publisher });
  const connection = countingConnection(connectionModule.Connection);
  broker.accept(connection);
  connection.receive('CONNECT\naccept-version:1.2\nhost:localhost\n\n\0');
  await turn();
  // The delivering side: a broker over a third fan-out (never started), one subscriber.
  const delivering = new fanoutModule.KafkaFanout({ brokers: '127.0.0.1:1', interest: 'all' });
  const deliveringBroker = brokerModule.createBroker({ fanout: delivering });
  const subscriber = countingConnection(connectionModule.Connection);
  deliveringBroker.accept(subscriber);
  let subscribe = 'CONNECT\naccept-version:1.2\nhost:localhost\n\n\0';
  for (let d = 0; d < 6; d++)
    subscribe += `SUBSCRIBE\nid:s${d}\ndestination:/topic/bench-${d}\n\n\0`;
  subscriber.receive(subscribe);
  await turn();
  const deliverRecords = (
    delivering as { onRecords: (r: ConsumedRecord[]) => void }
  ).onRecords.bind(delivering);
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
    async deliver(records) {
      const before = subscriber.bytes;
      for (let i = 0; i < records.length; i += DELIVER_BATCH) {
        deliverRecords(records.slice(i, i + DELIVER_BATCH));
        if (i % (DELIVER_BATCH * 6) === 0) await turn();
      }
      await turn();
      // Every record's MESSAGE carries its 256-byte body: fewer bytes, fewer frames.
      const bytes = subscriber.bytes - before;
      return bytes >= records.length * 256 ? records.length : Math.floor(bytes / 256);
    },
    async publish(from, count) {
      produced = 0;
      for (let i = 0; i < count; i += TICK) {
        let frames = '';
        for (let n = from + i; n < from + Math.min(count, i + TICK); n++) frames += sendFrame(n);
        connection.receive(frames);
        await turn();
      }
      while (queue.pending > 0) await turn();
      return produced;
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

/** A SEND as cluster.bench.ts's publishers write it: its headers, a 256-byte body. */
function sendFrame(n: number): string {
  const sent = (1_764_000_000_000 + n).toFixed(3);
  return (
    `SEND\ndestination:/topic/bench-${n % 6}\ncontent-type:text/plain\nx-seq:${n}\n` +
    `x-sent:${sent}\ncontent-length:256\n\n${BODY}\0`
  );
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

/**
 * Packed records of 6 destinations (one per partition), in batches of `DELIVER_BATCH` per
 * partition as a fetch at a high rate brings them: the content-type and a message id.
 */
function packedRecords(from: number, count: number, tag: string): ConsumedRecord[] {
  const out: ConsumedRecord[] = [];
  for (let i = 0; i < count; i++) {
    const n = from + i;
    const partition = Math.floor(n / DELIVER_BATCH) % 6;
    // Each partition's offsets go on without a gap from batch to batch.
    const offset = Math.floor(n / (DELIVER_BATCH * 6)) * DELIVER_BATCH + (n % DELIVER_BATCH);
    out.push({
      topic: TOPIC,
      partition,
      offset: String(offset),
      key: Buffer.from(`/topic/bench-${partition}`),
      value: Buffer.alloc(256, 'x'),
      timestamp: Date.now(),
      headers: [
        ['stompbus-headers', Buffer.from(`host-1234-abcdef-${tag}-${n}\ncontent-type:text/plain`)],
      ],
    });
  }
  return out;
}

async function time(
  fn: () => number | Promise<number>,
  expected: number | undefined,
): Promise<number> {
  collectGarbage();
  const t = process.cpuUsage();
  const n = await fn();
  const used = process.cpuUsage(t);
  if (expected !== undefined && n !== expected) throw new Error(`handled ${n} of ${expected}`);
  return used.user + used.system; // µs
}

const sides = [await loadSide(REPO), await loadSide(values.baseline)] as [Side, Side];
const offsets = [0, 0];
const rows: string[] = [];
const CASES = ['consume', 'deliver', 'publish', 'partition'] as const;
for (const what of CASES.filter((c) => (values.cases ?? '').split(',').includes(c))) {
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
        const packed = what === 'deliver' ? packedRecords(offsets[s] ?? 0, PAIR, String(s)) : [];
        offsets[s] = (offsets[s] ?? 0) + PAIR;
        us[s] =
          what === 'consume'
            ? await time(() => side.consume(batch), PAIR)
            : what === 'deliver'
              ? await time(() => side.deliver(packed), PAIR)
              : what === 'publish'
                ? await time(() => side.publish(offsets[s] ?? 0, PAIR), PAIR)
                : await time(() => side.partition(batch), undefined);
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
      : what === 'deliver'
        ? 'fetched packed record → MESSAGE written to a subscriber (per record)'
        : what === 'publish'
          ? 'SEND frame → record handed to the producer (per message)'
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
