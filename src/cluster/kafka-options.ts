/**
 * The settings of cluster mode and their defaults, in a file of their own so
 * that the command line (src/config.ts) takes each Kafka default from here
 * without loading the Kafka code: only types are imported below.
 */
import { DEFAULT_BROKER_OPTIONS } from '../broker/options.js';
import type { Logger } from '../ops/log.js';
import type { KafkaInterest } from './interest.js';
import type { KafkaClient } from './kafka-client.js';

/**
 * How a message's STOMP headers travel on the topics and users topics:
 * `packed`, all in one record header (`stompbus-headers`, records.ts), or `each`, one
 * record header per STOMP header plus `stompbus-message-id`. Kafka's
 * clients encode and decode every record header on its own, which made
 * `each` the larger part of the CPU an instance spends per record
 * (docs/clustering.md, "Record format"). Both are always read; bridged topics always
 * use `each` (their records are other applications' too).
 */
export type RecordFormat = 'packed' | 'each';

/** Settings of `KafkaFanout` (cluster mode). */
export interface KafkaFanoutOptions {
  /** Bootstrap servers, `host:port[,…]`. */
  brokers: string | string[];
  /** The Kafka topic of all `/topic/…` traffic that is not bridged. Default `stompbus.topics`. */
  topic: string;
  /**
   * Partitions of {@link topic} (and of its users topic) when it is created. Default 60:
   * the granularity of cluster interest (docs/cluster-interest.md "How many partitions").
   */
  partitions: number;
  /**
   * Bridged Kafka topics and their STOMP destination, e.g. `{ prices: '/topic/prices' }`.
   * Created (with one partition) when missing. Default none.
   */
  bridges: Record<string, string>;
  /**
   * Which partitions of {@link topic} and its users topic an instance fetches: `subscribed`,
   * only those holding a destination one of its sessions subscribes to or a user with a
   * session here (docs/cluster-interest.md), or `all`. Default `all`.
   */
  interest: KafkaInterest;
  /**
   * How a message's STOMP headers travel on {@link topic} and its users topic: `packed` in
   * one record header, or `each` in a record header of its own (see `RecordFormat`); both are
   * always read. Default `packed`.
   */
  recordFormat: RecordFormat;
  /** With `subscribed`: how long a partition nobody here subscribes to any more is still fetched, ms. Default 30,000. */
  interestLingerMs: number;
  /**
   * Least time between the start of a fetch of the fan-out's consumer that brought
   * records and the start of the next fetch from the same broker, ms. Under steady traffic
   * each fetch then brings more records, and Kafka and the instance handle fewer requests
   * (at most 1000 / this many fetches a second per broker); after a fetch that brought
   * nothing the next starts at once, so an idle consumer waits in a long poll and gets a
   * record as soon as Kafka has it. 0: fetch again as soon as a fetch's records are handed
   * over. At most 1,000 (`MAX_FETCH_INTERVAL_MS`). Default 5 (docs/benchmarks.md, "Fewer,
   * fuller fetches").
   */
  fetchIntervalMs: number;
  /**
   * Least time between the starts of two produce requests of the fan-out, ms, unless a full
   * batch (`maxBatchRecords` or `maxBatchBytes`) waits: under steady traffic each request
   * carries more records, and Kafka and the instance handle fewer requests (at most
   * 1000 / this many a second); a record after a quiet spell goes out in the next event-loop
   * turn. 0: the next request as soon as the one before is answered. At most 1,000
   * (`MAX_PRODUCE_INTERVAL_MS`). Default 0: 3 ms cut the instances' CPU by a tenth and
   * Kafka's by a sixth at 5,000 messages a second, for 1 ms more at the median
   * (docs/benchmarks.md, "Fewer, fuller produce requests").
   */
  produceIntervalMs: number;
  /**
   * `/queue/…` destinations: `cluster`, one queue shared by every instance through the
   * queues topic (docs/cluster-queues.md), or `local`, a queue per instance. Default `cluster`.
   */
  queues: 'cluster' | 'local';
  /** Cluster queues: oldest a waiting message may get before it is dead-lettered, ms. Default 24 hours. */
  queueMaxAgeMs: number;
  /** Cluster queues: most messages waiting in one queue; past it the oldest is dead-lettered. Default 10,000. */
  maxQueueMessages: number;
  /** Cluster queues: deliveries of one message before it is dead-lettered. Default 5. */
  maxDeliveries: number;
  /** Cluster queues: where dead letters go (a cluster queue too); empty drops them. Default `/queue/DLQ`. */
  deadLetterQueue: string;
  /**
   * Messages waiting for Kafka (queued, in flight or waiting for Kafka to come back);
   * beyond it a SEND fails at once. Default 10,000 (see docs/operations.md "Kafka outages").
   */
  maxPendingRecords: number;
  /**
   * Bytes of those messages (bodies, keys and headers); beyond it a SEND fails at once,
   * though one message alone is always taken. Default 64 MiB.
   */
  maxPendingBytes: number;
  /** Most records in one produce request. Default 1,000. */
  maxBatchRecords: number;
  /**
   * Most bytes (bodies, keys and headers) in one produce request, though a single larger
   * record still goes alone. Kafka refuses a record batch over `message.max.bytes`
   * (1 MiB by default) as a whole, failing every SEND in it. Default 512 KiB.
   */
  maxBatchBytes: number;
  /**
   * How long a SEND may wait for Kafka, ms: produce requests that fail (Kafka restarting,
   * a leader moving, not connected yet) are retried until then, so that a short outage
   * only delays RECEIPTs; a message still not acknowledged then fails with
   * STOMP_ERR_CLUSTER_UNAVAILABLE. Kafka's own `delivery.timeout.ms` bounds the same
   * wait for a producer (120 s); a STOMP client waiting for a RECEIPT is better served by
   * a shorter one. Default 30,000.
   */
  sendTimeoutMs: number;
  /** Longest wait in start() for the consumer to read; then Kafka is retried in the background, ms. Default 15,000. */
  startTimeoutMs: number;
  /** Longest stop(), ms. Default 5,000. */
  stopTimeoutMs: number;
  /** First wait between reconnection attempts, doubled after each failure, ms. Default 250. */
  retryInitialMs: number;
  /** Longest wait between reconnection attempts, ms. Default 5,000. */
  retryMaxMs: number;
  /** Consumer group session timeout, ms (Kafka's floor is `group.min.session.timeout.ms`). Default 6,000. */
  sessionTimeoutMs: number;
  /** How far back the topics' history is read at start-up (for resumes), ms. Default 10 minutes. */
  historyMaxAgeMs: number;
  /** How far back the users topic is read at start-up (offline messages), ms. Default 24 hours. */
  offlineMaxAgeMs: number;
  /** How often this instance announces its users in the connection registry, ms; entries live 3 times as long. Default 2,000. */
  presenceIntervalMs: number;
  /**
   * Where log lines go: each change of the link's state (connected, lost,
   * retrying, consumer crashed and restarted, stopped), with `component:
   * 'kafka'`, and kafkajs' own lines as debug lines (`component: 'kafkajs'`).
   * Default none.
   */
  logger: Logger | undefined;
  /** The Kafka client; default kafkajs (`createKafkajsClient`), loaded on the first connect. */
  client: KafkaClient | undefined;
}

/** The defaults of {@link KafkaFanoutOptions} (all but `brokers`). */
export const DEFAULT_KAFKA_FANOUT_OPTIONS: Readonly<Omit<KafkaFanoutOptions, 'brokers'>> =
  Object.freeze({
    topic: 'stompbus.topics',
    partitions: 60,
    bridges: {},
    interest: 'all',
    interestLingerMs: 30_000,
    fetchIntervalMs: 5,
    produceIntervalMs: 0,
    recordFormat: 'packed',
    queues: 'cluster',
    queueMaxAgeMs: 24 * 60 * 60_000,
    maxQueueMessages: DEFAULT_BROKER_OPTIONS.maxQueueMessages,
    maxDeliveries: DEFAULT_BROKER_OPTIONS.maxDeliveries,
    deadLetterQueue: DEFAULT_BROKER_OPTIONS.deadLetterQueue,
    maxPendingRecords: 10_000,
    maxPendingBytes: 64 * 1024 * 1024,
    maxBatchRecords: 1_000,
    maxBatchBytes: 512 * 1024,
    sendTimeoutMs: 30_000,
    startTimeoutMs: 15_000,
    stopTimeoutMs: 5_000,
    retryInitialMs: 250,
    retryMaxMs: 5_000,
    sessionTimeoutMs: 6_000,
    historyMaxAgeMs: 10 * 60_000,
    offlineMaxAgeMs: 24 * 60 * 60_000,
    presenceIntervalMs: 2_000,
    logger: undefined,
    client: undefined,
  });
