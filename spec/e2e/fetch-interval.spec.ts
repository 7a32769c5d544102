import { afterEach, describe, expect, it } from 'vitest';
import { MAX_FETCH_INTERVAL_MS } from '../../src/cluster/fetch-loop.js';
import {
  type ConsumedRecord,
  createKafkajsClient,
  type KafkaClient,
  type KafkaConsumer,
} from '../../src/cluster/kafka-client.js';
import { partitionFor } from '../../src/cluster/partitioner.js';
import { deleteTopicsAfterTest, kafkaBrokers, skipKafka, uniqueName } from '../helpers/cluster.js';

if (skipKafka) {
  console.warn(
    '!!! fetch-interval.spec.ts SKIPPED: no Kafka broker (see spec/kafka-global-setup.ts)',
  );
}

/** The longest allowed: long against a fetch on loopback, whatever the machine's load. */
const INTERVAL_MS = MAX_FETCH_INTERVAL_MS;
/** An idle long poll, much shorter than the interval. */
const MAX_WAIT_MS = 50;
/** Generous for a loopback produce and fetch on a busy machine; far below the interval. */
const PROMPT_MS = 250;
const RECORDS = 120;
/** The steady traffic goes to one partition; a fetch can bring batches of all of them. */
const PARTITIONS = 3;
/** One record every 10 ms: 1.2 s of steady traffic, three intervals. */
const EVERY_MS = 10;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const stops: Array<() => Promise<void>> = [];
const crashes: Error[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

async function client(): Promise<KafkaClient> {
  const c = await createKafkajsClient({ brokers: kafkaBrokers.split(',') });
  stops.push(() => c.close());
  return c;
}

/** A consumer of `topic` in a group of its own; `batches` gets every batch it is handed. */
async function consumer(
  c: KafkaClient,
  topic: string,
  fetchIntervalMs: number,
): Promise<{ batches: ConsumedRecord[][]; at: number[]; consumer: KafkaConsumer }> {
  const batches: ConsumedRecord[][] = [];
  /** When each batch was handed over (`performance.now()`). */
  const at: number[] = [];
  const consumer = await c.consume({
    groupId: uniqueName('fetch-interval'),
    topics: [topic],
    positions: () => new Map(),
    onRecords: (records) => {
      batches.push(records);
      at.push(performance.now());
    },
    onCrash: (error) => {
      crashes.push(error);
    },
    joinTimeoutMs: 30_000,
    fetchMaxWaitMs: MAX_WAIT_MS,
    fetchIntervalMs,
  });
  stops.push(() => consumer.stop());
  return { batches, at, consumer };
}

async function until(done: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const values = (batches: ConsumedRecord[][]) =>
  batches.flat().map((r) => r.value?.toString('utf8'));

describe.skipIf(skipKafka)('--kafka-fetch-interval (a real Kafka)', () => {
  it('spaces fetches under steady traffic, delivering every record once and in order, and answers the first record after a quiet spell at once', async () => {
    const topic = uniqueName('stompbus-fetch-interval');
    deleteTopicsAfterTest([topic]);
    const c = await client();
    await c.ensureTopics([{ topic, partitions: PARTITIONS }]);
    await c.connectProducer();
    // Side by side on the same records: paced, and fetching again at once.
    const paced = await consumer(c, topic, INTERVAL_MS);
    const eager = await consumer(c, topic, 0);
    // Both fetch from the live end: let their first fetches start before producing.
    await sleep(300);

    const started = Date.now();
    for (let i = 0; i < RECORDS; i++) {
      await c.produce([{ topic, key: 'k', value: Buffer.from(String(i)), headers: [] }]);
      const next = started + (i + 1) * EVERY_MS;
      if (next > Date.now()) await sleep(next - Date.now());
    }
    const elapsed = Date.now() - started;
    const expected = Array.from({ length: RECORDS }, (_, i) => String(i));
    await until(() => values(paced.batches).length >= RECORDS, 'the paced consumer');
    await until(() => values(eager.batches).length >= RECORDS, 'the eager consumer');
    expect(values(paced.batches)).toEqual(expected);
    expect(values(eager.batches)).toEqual(expected);

    // At most one fetch with records per interval while the records came, and the rest after.
    expect(paced.batches.length).toBeLessThanOrEqual(Math.ceil(elapsed / INTERVAL_MS) + 2);
    // Without an interval every record, or nearly, comes in a fetch of its own.
    expect(eager.batches.length).toBeGreaterThan(3 * paced.batches.length);

    // Quiet for longer than the interval: after a fetch that brought nothing the next starts
    // at once, so the consumer waits in a long poll and answers a record as soon as Kafka has
    // it, not an interval later. Three times, to leave no room for luck.
    for (const probe of ['after-1', 'after-2', 'after-3']) {
      await sleep(INTERVAL_MS + 300);
      const before = paced.batches.length;
      const sent = performance.now();
      await c.produce([{ topic, key: 'k', value: Buffer.from(probe), headers: [] }]);
      await until(() => paced.batches.length > before, `the record ${probe}`);
      expect((paced.at[before] ?? Number.POSITIVE_INFINITY) - sent).toBeLessThan(PROMPT_MS);
      expect(values(paced.batches.slice(before))).toEqual([probe]);
    }

    // Right after that fetch, one record for every partition in one produce request: the
    // next fetch waits for the interval, then brings them all, and every partition's batch is
    // handed over at once (a pause between the batches of one fetch would hold the later
    // partitions back by an interval each).
    const keys = Array.from({ length: PARTITIONS }, (_, p) => {
      for (let i = 0; ; i++) if (partitionFor(`key-${i}`, PARTITIONS) === p) return `key-${i}`;
    });
    const first = paced.batches.length;
    await c.produce(keys.map((key) => ({ topic, key, value: Buffer.from(key), headers: [] })));
    await until(
      () => values(paced.batches.slice(first)).length >= PARTITIONS,
      'a record of every partition',
    );
    expect(new Set(paced.batches.slice(first).map((b) => b[0]?.partition)).size).toBe(PARTITIONS);
    const handed = paced.at.slice(first);
    expect(Math.max(...handed) - Math.min(...handed)).toBeLessThan(INTERVAL_MS / 2);
    expect(crashes).toEqual([]);
  });
});
