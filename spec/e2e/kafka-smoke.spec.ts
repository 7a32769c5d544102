import { randomUUID } from 'node:crypto';
import { type Admin, type IHeaders, Kafka, logLevel, Partitioners } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

// The broker of spec/kafka-global-setup.ts (or KAFKA_BROKERS); '' only off CI, undefined
// when the global setup is not in vitest.config.ts.
const brokers = inject('kafkaBrokers') ?? '';
const isCi = process.env.CI === 'true' || process.env.CI === '1';
if (!brokers && !isCi) {
  console.warn('!!! kafka-smoke.spec.ts SKIPPED: no Kafka broker (see spec/kafka-global-setup.ts)');
}

const RECORDS = 100;
const PARTITIONS = 3;
/** Longest the consumer may take to join its group and read everything back. */
const CONSUME_TIMEOUT_MS = 20_000;

describe.skipIf(!brokers && !isCi)('the test Kafka broker', () => {
  const kafka = new Kafka({
    clientId: 'stompbus-kafka-smoke',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 5, initialRetryTime: 100 },
  });
  const topic = `stompbus-smoke-${randomUUID()}`;
  let admin: Admin;

  beforeAll(async () => {
    expect(brokers, 'CI must provide a Kafka broker').not.toBe('');
    admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true,
      timeout: 10_000,
    });
  });

  afterAll(async () => {
    await admin?.deleteTopics({ topics: [topic], timeout: 10_000 }).catch(() => {});
    await admin?.disconnect();
  });

  it('round-trips records with keys and headers through a fresh consumer group', async () => {
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: RECORDS }, (_, seq) => ({
        key: `key-${seq % 10}`,
        value: `record ${seq}`,
        headers: { seq: String(seq), 'content-type': 'text/plain' },
      })),
    });
    await producer.disconnect();

    const received = await consumeAll(kafka, topic, RECORDS);

    expect(received.map((r) => r.seq).sort((a, b) => a - b)).toEqual(
      Array.from({ length: RECORDS }, (_, seq) => seq),
    );
    for (const r of received) {
      expect(r.value).toBe(`record ${r.seq}`);
      expect(r.contentType).toBe('text/plain');
      expect(r.key).toBe(`key-${r.seq % 10}`);
    }
    // One key maps to one partition, and one partition keeps its order.
    const byKey = new Map<string, Received[]>();
    for (const r of received) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
    for (const records of byKey.values()) {
      expect(new Set(records.map((r) => r.partition)).size).toBe(1);
      const seqs = records.map((r) => r.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }
    expect(new Set(received.map((r) => r.partition)).size).toBeGreaterThan(1);
  });
});

interface Received {
  key: string;
  value: string;
  seq: number;
  contentType: string;
  partition: number;
}

/** Reads `count` records from the start of `topic` with a new group, then leaves it. */
async function consumeAll(kafka: Kafka, topic: string, count: number): Promise<Received[]> {
  const consumer = kafka.consumer({
    groupId: `stompbus-smoke-${randomUUID()}`,
    // Allowed by group.min.session.timeout.ms=1000 in scripts/kafka.ts.
    sessionTimeout: 6_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  });
  const received: Received[] = [];
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`got ${received.length} of ${count} records`)),
        CONSUME_TIMEOUT_MS,
      );
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            received.push({
              key: message.key?.toString() ?? '',
              value: message.value?.toString() ?? '',
              seq: Number(header(message.headers, 'seq')),
              contentType: header(message.headers, 'content-type'),
              partition,
            });
            if (received.length >= count) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return received;
}

function header(headers: IHeaders | undefined, name: string): string {
  const value = headers?.[name];
  return Array.isArray(value) ? String(value[0]) : String(value ?? '');
}
