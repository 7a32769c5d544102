import { randomUUID } from 'node:crypto';
import { type Admin, type IHeaders, Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';
import { afterEach, inject } from 'vitest';
import { type ServerOptions, StompServer } from '../../src/server.js';
import { TEST_SERVER_OPTIONS } from './server.js';

// The broker of spec/kafka-global-setup.ts (or KAFKA_BROKERS); '' only off CI.
export const kafkaBrokers = inject('kafkaBrokers') ?? '';
const isCi = process.env.CI === 'true' || process.env.CI === '1';
/** True when the Kafka specs must be skipped: no broker and not CI (CI never skips). */
export const skipKafka = !kafkaBrokers && !isCi;

/** A cluster of stompbus instances in this process, sharing one Kafka topic of their own. */
export interface Cluster {
  readonly instances: StompServer[];
  /** The Kafka topic of `/topic/…` traffic, unique to this cluster. */
  readonly topic: string;
}

const running = new Set<StompServer>();
const kafkaClients: Array<{ disconnect(): Promise<void> }> = [];
const topicsToDelete: string[] = [];

/** A name unique to this run, for Kafka topics and groups. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/**
 * Starts `count` instances in cluster mode on free loopback ports, on a
 * Kafka topic of their own so that tests stay independent. All are stopped
 * (and the topics deleted) after the test.
 */
export async function startCluster(
  count: number,
  options: Partial<ServerOptions> = {},
): Promise<Cluster> {
  const topic = options.kafkaTopic ?? uniqueName('stompbus-spec');
  topicsToDelete.push(...clusterTopics(topic), ...Object.keys(options.kafkaBridges ?? {}));
  const start = async () => {
    const server = new StompServer({
      ...TEST_SERVER_OPTIONS,
      kafkaBrokers,
      kafkaTopic: topic,
      kafkaPartitions: 3,
      ...options,
    });
    running.add(server);
    await server.start();
    return server;
  };
  // One after the other: the first creates the topics, the others find them.
  const instances: StompServer[] = [];
  for (let i = 0; i < count; i++) instances.push(await start());
  return { instances, topic };
}

/** The Kafka topics a cluster on `topic` uses: its own, its users topic and its registry. */
export function clusterTopics(topic: string): string[] {
  return [topic, `${topic}.users`, `${topic}.presence`, `${topic}.queues`];
}

/** Deletes these Kafka topics after the test (instances started by other helpers). */
export function deleteTopicsAfterTest(topics: string[]): void {
  topicsToDelete.push(...topics);
}

/** A plain kafkajs client on the test Kafka (no stompbus code involved). */
export function plainKafka(): Kafka {
  return new Kafka({
    clientId: uniqueName('stompbus-spec'),
    brokers: kafkaBrokers.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 5, initialRetryTime: 100 },
  });
}

/** A connected plain kafkajs producer, disconnected after the test. */
export async function plainProducer(): Promise<Producer> {
  const producer = plainKafka().producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  kafkaClients.push(producer);
  return producer;
}

/** A connected plain kafkajs admin, disconnected after the test. */
export async function plainAdmin(): Promise<Admin> {
  const admin = plainKafka().admin();
  await admin.connect();
  kafkaClients.push(admin);
  return admin;
}

/** A record read back by {@link readTopic}. */
export interface PlainRecord {
  key: string | null;
  value: string;
  partition: number;
  offset: string;
  headers: Record<string, string>;
}

/**
 * Reads `count` records from the start of `topic` with a plain kafkajs
 * consumer in a new group, then leaves the group.
 */
export async function readTopic(topic: string, count: number, timeoutMs = 10_000) {
  const consumer = plainKafka().consumer({
    groupId: uniqueName('stompbus-spec-reader'),
    // Allowed by group.min.session.timeout.ms=1000 in scripts/kafka.ts.
    sessionTimeout: 6_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  });
  const records: PlainRecord[] = [];
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`read ${records.length} of ${count} records from ${topic}`)),
        timeoutMs,
      );
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            records.push({
              key: message.key?.toString() ?? null,
              value: message.value?.toString() ?? '',
              partition,
              offset: message.offset,
              headers: plainHeaders(message.headers),
            });
            if (records.length >= count) {
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
  return records;
}

/** Record headers as strings (the first value of a repeated name). */
export function plainHeaders(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined) out[name] = first.toString();
  }
  return out;
}

afterEach(async () => {
  const servers = [...running];
  running.clear();
  await Promise.all(servers.map((s) => s.stop()));
  const clients = kafkaClients.splice(0);
  await Promise.allSettled(clients.map((c) => c.disconnect()));
  const topics = topicsToDelete.splice(0);
  if (topics.length > 0 && kafkaBrokers) {
    // Keeps the run's Kafka small; a failure here must not fail the test.
    const admin = plainKafka().admin();
    try {
      await admin.connect();
      await admin.deleteTopics({ topics, timeout: 5_000 });
    } catch {
      // ignored
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }
});
