import { afterEach, describe, expect, it } from 'vitest';
import {
  type ConsumedRecord,
  createKafkajsClient,
  type KafkaClient,
  type ProducedRecord,
} from '../../src/cluster/kafka-client.js';
import { ProduceQueue } from '../../src/cluster/produce-queue.js';
import { parseArgs } from '../../src/config.js';
import type { StompServer } from '../../src/server.js';
import {
  deleteTopicsAfterTest,
  kafkaBrokers,
  skipKafka,
  startCluster,
  uniqueName,
} from '../helpers/cluster.js';
import { Inbox, stompClient } from '../helpers/stomp-client.js';

if (skipKafka) {
  console.warn(
    '!!! produce-interval.spec.ts SKIPPED: no Kafka broker (see spec/kafka-global-setup.ts)',
  );
}

/** Long against a produce request on loopback, whatever the machine's load. */
const INTERVAL_MS = 300;
/**
 * From a push to its request's start: an event-loop turn, generous on a busy machine, and
 * well under the interval, so that a queue that waited for it would fail.
 */
const PROMPT_MS = 100;
const RECORDS = 200;
/** One record every 5 ms: 1 s of steady traffic, over three intervals. */
const EVERY_MS = 5;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

async function until(done: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A produce queue as the fan-out has one, on a real Kafka, counting its requests. */
function queueOn(client: KafkaClient, produceIntervalMs: number) {
  /** When each request started (`performance.now()`), and its records. */
  const requests: Array<{ at: number; records: number }> = [];
  const queue = new ProduceQueue({
    maxPendingRecords: 10_000,
    maxPendingBytes: 64 * 1024 * 1024,
    maxBatchRecords: 1_000,
    maxBatchBytes: 512 * 1024,
    sendTimeoutMs: 20_000,
    retryInitialMs: 100,
    produceIntervalMs,
    send: (records) => {
      requests.push({ at: performance.now(), records: records.length });
      return client.produce(records);
    },
    log: () => {},
    onRecovered: () => {},
  });
  stops.push(() => queue.stop(1_000));
  return { queue, requests };
}

describe.skipIf(skipKafka)('--kafka-produce-interval (a real Kafka)', () => {
  it('spaces produce requests under steady traffic, every record written once and in order, and sends a record after a quiet spell at once', async () => {
    const topic = uniqueName('stompbus-produce-interval');
    deleteTopicsAfterTest([topic]);
    const c = await createKafkajsClient({ brokers: kafkaBrokers.split(',') });
    stops.push(() => c.close());
    await c.ensureTopics([{ topic, partitions: 1 }]);
    await c.connectProducer();
    const read: ConsumedRecord[] = [];
    const consumer = await c.consume({
      groupId: uniqueName('produce-interval'),
      topics: [topic],
      positions: () => new Map(),
      onRecords: (records) => {
        read.push(...records);
      },
      onCrash: () => {},
      joinTimeoutMs: 30_000,
      fetchMaxWaitMs: 50,
      fetchIntervalMs: 0,
    });
    stops.push(() => consumer.stop());
    // The consumer reads from the live end: let its first fetch start before producing.
    await sleep(300);

    // Side by side on the same topic: paced, and a request as soon as the last is answered.
    const paced = queueOn(c, INTERVAL_MS);
    const eager = queueOn(c, 0);
    const record = (key: string, i: number): ProducedRecord => ({
      topic,
      key,
      value: Buffer.from(String(i)),
      headers: [],
    });
    const acked: Array<Promise<void>> = [];
    const started = Date.now();
    for (let i = 0; i < RECORDS; i++) {
      acked.push(paced.queue.push(record('paced', i)), eager.queue.push(record('eager', i)));
      const next = started + (i + 1) * EVERY_MS;
      if (next > Date.now()) await sleep(next - Date.now());
    }
    const elapsed = Date.now() - started;
    await Promise.all(acked);

    const expected = Array.from({ length: RECORDS }, (_, i) => String(i));
    const of = (key: string) =>
      read.filter((r) => r.key?.toString() === key).map((r) => r.value?.toString('utf8'));
    await until(() => read.length >= 2 * RECORDS, 'every record read back');
    expect(of('paced')).toEqual(expected);
    expect(of('eager')).toEqual(expected);
    // At most one request per interval while the records came, and one for what was left.
    expect(paced.requests.length).toBeLessThanOrEqual(Math.ceil(elapsed / INTERVAL_MS) + 2);
    // Without an interval a request goes as soon as the last is answered: many more.
    expect(eager.requests.length).toBeGreaterThan(3 * paced.requests.length);

    // Quiet for longer than the interval: the next record goes out at once, not an interval
    // later. Three times, to leave no room for luck.
    for (const probe of ['after-1', 'after-2', 'after-3']) {
      await sleep(INTERVAL_MS + 200);
      const before = paced.requests.length;
      const pushed = performance.now();
      await paced.queue.push({ topic, key: 'paced', value: Buffer.from(probe), headers: [] });
      expect(paced.requests.length).toBe(before + 1);
      expect((paced.requests[before]?.at ?? Number.POSITIVE_INFINITY) - pushed).toBeLessThan(
        PROMPT_MS,
      );
    }
    await until(() => of('paced').length >= RECORDS + 3, 'the quiet spell records');
    expect(of('paced').slice(RECORDS)).toEqual(['after-1', 'after-2', 'after-3']);
  });

  it('reaches an instance from --kafka-produce-interval: SENDs every 5 ms go out in one request per interval, delivered in order', async () => {
    const command = parseArgs(['--kafka-produce-interval', String(INTERVAL_MS)], {});
    expect(command).toEqual({ kind: 'serve', options: { kafkaProduceIntervalMs: INTERVAL_MS } });
    expect(parseArgs([], { STOMPBUS_KAFKA_PRODUCE_INTERVAL: '7' })).toEqual({
      kind: 'serve',
      options: { kafkaProduceIntervalMs: 7 },
    });
    if (command.kind !== 'serve') throw new Error('not a serve command');
    const { instances } = await startCluster(1, command.options);
    const server = instances[0] as StompServer;
    const subscriber = await stompClient(server.url);
    const inbox = new Inbox();
    const subscribed = new Promise<void>((resolve) => subscriber.watchForReceipt('s', resolve));
    subscriber.subscribe('/topic/paced', inbox.take, { receipt: 's' });
    await subscribed;
    const publisher = await stompClient(server.url);

    const requests = async () => {
      const text = await (await fetch(`${server.admin?.url}/metrics`)).text();
      const line = text
        .split('\n')
        .find((l) => l.startsWith('stompbus_kafka_produce_duration_seconds_count '));
      return Number(line?.split(' ')[1] ?? Number.NaN);
    };
    const before = await requests();
    const started = Date.now();
    for (let i = 0; i < RECORDS; i++) {
      publisher.publish({ destination: '/topic/paced', body: String(i) });
      const next = started + (i + 1) * EVERY_MS;
      if (next > Date.now()) await sleep(next - Date.now());
    }
    const elapsed = Date.now() - started;
    const got = await inbox.waitFor(RECORDS, 20_000);
    expect(got.map((m) => m.body)).toEqual(Array.from({ length: RECORDS }, (_, i) => String(i)));
    const made = (await requests()) - before;
    // One request per interval while the SENDs came, one for the rest, and the instance's
    // own announcements (one every 2 s); without the interval, a request every few SENDs.
    expect(made).toBeGreaterThan(0);
    expect(made).toBeLessThanOrEqual(Math.ceil(elapsed / INTERVAL_MS) + 4);
  });
});
