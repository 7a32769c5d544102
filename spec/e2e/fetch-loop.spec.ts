/**
 * The fan-out's fetch loop (src/cluster/fetch-loop.ts) on a real Kafka: it reads committed
 * records only, steps over transaction markers, reads from the end when its offset is not in
 * the log, joins no consumer group, and stops within the long poll in flight.
 */
import { Partitioners } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ConsumedRecord,
  type ConsumeOptions,
  createKafkajsClient,
  type KafkaClient,
  type KafkaConsumer,
} from '../../src/cluster/kafka-client.js';
import {
  deleteTopicsAfterTest,
  kafkaBrokers,
  plainAdmin,
  plainKafka,
  skipKafka,
  uniqueName,
} from '../helpers/cluster.js';

if (skipKafka) {
  console.warn('!!! fetch-loop.spec.ts SKIPPED: no Kafka broker (see spec/kafka-global-setup.ts)');
}

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(done: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A client and a topic of one partition, deleted after the test. */
async function setUp(): Promise<{ c: KafkaClient; topic: string }> {
  const topic = uniqueName('stompbus-fetch-loop');
  deleteTopicsAfterTest([topic]);
  const c = await createKafkajsClient({ brokers: kafkaBrokers.split(',') });
  stops.push(() => c.close());
  await c.ensureTopics([{ topic, partitions: 1 }]);
  await c.connectProducer();
  return { c, topic };
}

async function consume(
  c: KafkaClient,
  topic: string,
  options: Partial<ConsumeOptions> = {},
): Promise<{ records: ConsumedRecord[]; crashes: Error[]; consumer: KafkaConsumer }> {
  const records: ConsumedRecord[] = [];
  const crashes: Error[] = [];
  const consumer = await c.consume({
    groupId: uniqueName('fetch-loop'),
    topics: [topic],
    positions: () => new Map(),
    onRecords: (batch) => records.push(...batch),
    onCrash: (error) => crashes.push(error),
    joinTimeoutMs: 30_000,
    fetchMaxWaitMs: 250,
    ...options,
  });
  stops.push(() => consumer.stop());
  return { records, crashes, consumer };
}

const values = (records: ConsumedRecord[]) => records.map((r) => r.value?.toString('utf8'));

describe.skipIf(skipKafka)("the fan-out's fetch loop (a real Kafka)", () => {
  it('hands over committed records only: an aborted transaction and the transaction markers are stepped over', async () => {
    const { c, topic } = await setUp();
    const producer = plainKafka().producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      transactionalId: uniqueName('fetch-loop-tx'),
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    stops.push(() => producer.disconnect());
    const aborted = await producer.transaction();
    await aborted.send({ topic, messages: [{ key: 'k', value: 'aborted' }] });
    await aborted.abort();
    const committed = await producer.transaction();
    await committed.send({ topic, messages: [{ key: 'k', value: 'committed' }] });
    await committed.commit();
    // Offsets 0-3: the aborted record, its marker, the committed record, its marker.
    const { records, crashes } = await consume(c, topic, {
      positions: () => new Map([[topic, new Map([[0, 0n]])]]),
    });
    await until(() => records.length >= 1, 'the committed record');
    await c.produce([{ topic, key: 'k', value: Buffer.from('after'), headers: [] }]);
    await until(() => records.length >= 2, 'the record after the markers');
    await sleep(300);
    expect(values(records)).toEqual(['committed', 'after']);
    expect(records.map((r) => r.offset)).toEqual(['2', '4']);
    expect(crashes).toEqual([]);
  });

  it("reads from the partition's end when its offset is not in the log, and joins no consumer group", async () => {
    const { c, topic } = await setUp();
    await c.produce([{ topic, key: 'k', value: Buffer.from('before'), headers: [] }]);
    const groupId = uniqueName('fetch-loop-no-group');
    const { records, crashes } = await consume(c, topic, {
      groupId,
      // Far past the end (a Kafka that lost its data, say).
      positions: () => new Map([[topic, new Map([[0, 1_000n]])]]),
    });
    // Kafka answers OFFSET_OUT_OF_RANGE; the loop then asks from the end (offset 1).
    await sleep(1_000);
    await c.produce([{ topic, key: 'k', value: Buffer.from('live'), headers: [] }]);
    await until(() => records.length >= 1, 'the live record');
    await sleep(300);
    expect(values(records)).toEqual(['live']);
    expect(crashes).toEqual([]);
    const admin = await plainAdmin();
    const { groups } = await admin.listGroups();
    expect(groups.map((g) => g.groupId)).not.toContain(groupId);
  });

  it('stops within the long poll in flight', async () => {
    const { c, topic } = await setUp();
    const { consumer } = await consume(c, topic, { fetchMaxWaitMs: 3_000 });
    // The first fetch is in Kafka's long poll by now (nothing to read); kafkajs' disconnect
    // waits for the requests in flight.
    await sleep(500);
    const started = performance.now();
    await consumer.stop();
    expect(performance.now() - started).toBeLessThan(3_500);
  });
});
