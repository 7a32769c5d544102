/**
 * Our own small interface over a Kafka client, so that {@link KafkaFanout}
 * never touches kafkajs directly. kafkajs has had no release since 2023
 * (docs/kafka.md lists what the code works around); another client can
 * replace {@link createKafkajsClient} by implementing {@link KafkaClient}.
 */
import { hostname } from 'node:os';
import type * as Kafkajs from 'kafkajs';
import type { Logger } from '../ops/log.js';
import { FetchLoop, kafkajsInternals } from './fetch-loop.js';
import { fixKafkajs } from './kafkajs-fixes.js';
import { keyedPartitioner, partitionFor } from './partitioner.js';
import { useProduceEncoding } from './produce-encoding.js';
import { useRecordDecoding } from './record-decoding.js';

/** A record as read from Kafka. */
export interface ConsumedRecord {
  readonly topic: string;
  readonly partition: number;
  /** Decimal string: offsets are 64-bit. */
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** The record's timestamp, ms since 1970. */
  readonly timestamp: number;
  /** In record order; a name may repeat. */
  readonly headers: ReadonlyArray<readonly [string, Buffer]>;
}

/** A record to produce. */
export interface ProducedRecord {
  readonly topic: string;
  readonly key: string | null;
  /**
   * What places the record instead of its key (the same murmur2 partitioner):
   * all of one user's destinations share the partition of `/user/<name>`,
   * so that an instance reads one partition per user (docs/cluster-interest.md).
   */
  readonly partitionKey?: string;
  readonly value: Buffer;
  /** In order; a name may repeat. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

/** The next offset to read per partition of a topic. */
export type Positions = Map<number, bigint>;

/** What {@link KafkaClient.consume} needs. */
export interface ConsumeOptions {
  /**
   * A name of this consumer's own. A client that reads in a consumer group uses it as the
   * group's id (a shared group would split the records); the kafkajs client reads with no group
   * (fetch-loop.ts).
   */
  readonly groupId: string;
  readonly topics: readonly string[];
  /**
   * Where to start, per topic and partition (at the start; at each group join, for a client
   * with groups); partitions not listed start at the latest offset.
   */
  readonly positions: () => ReadonlyMap<string, Positions>;
  /**
   * Asked at the start (a group join, for a client with groups), before {@link positions},
   * for every partition: true pauses it (cluster interest). Default: none paused.
   */
  readonly paused?: (topic: string, partition: number) => boolean;
  /** Called with each fetched batch, in partition order. Must not throw. */
  readonly onRecords: (records: ConsumedRecord[]) => void;
  /** Called before each batch's records with its partition's end (the high watermark). */
  readonly onPartitionEnd?: (topic: string, partition: number, end: bigint) => void;
  /** The consumer stopped by itself; it will not restart on its own. */
  readonly onCrash: (error: Error) => void;
  /** Longest wait for the start (the first group join, for a client with groups). */
  readonly joinTimeoutMs: number;
  /**
   * Longest wait of an idle fetch, ms. A partition resumed while a fetch waits is fetched
   * only by the next one, so cluster interest wants it short. Default 250.
   */
  readonly fetchMaxWaitMs?: number;
  /**
   * Least time between the starts of two fetches from a broker, ms: once a fetch's
   * batches are handed over, the next fetch waits for the rest of it (`fetch-loop.ts`).
   * Default 0.
   */
  readonly fetchIntervalMs?: number;
}

/** A running consumer. */
export interface KafkaConsumer {
  /** Stops fetching and disconnects (leaving its group, for a client with groups). */
  stop(): Promise<void>;
  /** Stops fetching these partitions (cluster interest); optional for a client. */
  pause?(topic: string, partitions: number[]): void;
  /** Fetches these partitions again. */
  resume?(topic: string, partitions: number[]): void;
  /** The next record fetched from the partition is at `offset`. */
  seek?(topic: string, partition: number, offset: bigint): void;
  /** Resolves when the next fetch starts, or after `timeoutMs`. */
  nextFetch?(timeoutMs: number): Promise<void>;
}

/** What {@link KafkaClient.consumeShared} needs: one member of a group every instance joins. */
export interface SharedConsumeOptions {
  readonly groupId: string;
  readonly topic: string;
  /** At each group join: the partitions this member has now (it has no others). */
  readonly onAssigned: (partitions: number[]) => void;
  /** A rebalance begins: what this member has may go to another one. */
  readonly onRebalancing: () => void;
  /** Each fetched batch (one partition's records, in order). Must not throw. */
  readonly onRecords: (records: ConsumedRecord[]) => void;
  /** The consumer stopped by itself; it will not restart on its own. */
  readonly onCrash: (error: Error) => void;
  /** Longest wait for the first group join. */
  readonly joinTimeoutMs: number;
}

/** A running member of a shared group. */
export interface SharedConsumer {
  /** Leaves the group (its partitions go to the other members) and disconnects. */
  stop(): Promise<void>;
  /** The next record fetched from `partition` is at `offset`. */
  seek(partition: number, offset: bigint): void;
  /** Commits the group's offsets: where a member that gets a partition next starts. */
  commit(offsets: ReadonlyMap<number, bigint>): Promise<void>;
}

/** One partition of a topic as a group sees it. */
export interface GroupOffsets {
  /** The group's committed offset; undefined when none. */
  readonly committed: bigint | undefined;
  /** The first offset still in the partition. */
  readonly low: bigint;
  /** The offset the next record will get. */
  readonly high: bigint;
}

/** A topic cluster mode uses, with what it is created with. */
export interface TopicSpec {
  readonly topic: string;
  readonly partitions: number;
  /** Topic configuration at creation, e.g. `retention.ms`. */
  readonly config?: Readonly<Record<string, string>>;
}

/** The operations cluster mode needs from a Kafka client. */
export interface KafkaClient {
  /** Creates the topics that do not exist yet and waits for their leaders. */
  ensureTopics(topics: readonly TopicSpec[]): Promise<void>;
  /** The offset the next record written to each partition of `topic` will get. */
  latestOffsets(topic: string): Promise<Positions>;
  /** Per partition, the first offset whose record is not older than `timestamp` (the end when none is). */
  offsetsAt(topic: string, timestamp: number): Promise<Positions>;
  /** Connects the producer (idempotent). */
  connectProducer(): Promise<void>;
  /**
   * Produces with acks from all in-sync replicas; resolves when acknowledged.
   * Rejects with an error that {@link isPermanent} tells apart when trying
   * again cannot help (a record too large, say); any other failure may be
   * Kafka away for a while, and the caller tries again.
   */
  produce(records: readonly ProducedRecord[]): Promise<void>;
  /** Starts a consumer; resolves once it has joined its group and has its partitions. */
  consume(options: ConsumeOptions): Promise<KafkaConsumer>;
  /** Optional (cluster-wide queues): joins a group shared by every instance. */
  consumeShared?(options: SharedConsumeOptions): Promise<SharedConsumer>;
  /** Optional (cluster-wide queues): the group's committed offsets and the partitions' bounds. */
  groupOffsets?(groupId: string, topic: string): Promise<Map<number, GroupOffsets>>;
  /** Disconnects the producer and the admin client. */
  close(): Promise<void>;
}

/** A produce that Kafka refused for good: trying the same records again cannot help. */
export class PermanentProduceError extends Error {
  readonly permanent = true;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PermanentProduceError';
  }
}

/** Whether `error` says that trying the same produce again cannot help. */
export function isPermanent(error: unknown): boolean {
  return (error as { permanent?: unknown } | undefined)?.permanent === true;
}

/** Connection settings of {@link createKafkajsClient}. */
export interface KafkajsClientOptions {
  /** Bootstrap servers, `host:port`. */
  brokers: string[];
  /** Default `stompbus-<hostname>-<pid>`. */
  clientId?: string;
  /** Group session timeout, ms. Kafka rejects less than `group.min.session.timeout.ms` (6 s by default). Default 6000. */
  sessionTimeoutMs?: number;
  /**
   * Group heart-beat interval, ms. Default 2000 (a third of the default session timeout,
   * Kafka's advice): kafkajs sends the heart-beat from inside the fetch loop and fetches
   * nothing until the coordinator answers, which took up to 0.5 s on a busy machine.
   */
  heartbeatIntervalMs?: number;
  /** Retries of one produce before it fails. Default 3 (about 1.5 s with backoff). */
  produceRetries?: number;
  /** Where kafkajs' own log lines go (see {@link kafkajsLogCreator}). Default none. */
  logger?: Logger | undefined;
}

/**
 * kafkajs' log lines to a {@link Logger} as debug lines, marked `component:
 * 'kafkajs'` with kafkajs' level in `kafkajsLevel`. Its errors are mostly
 * requests it retries by itself (on a fresh topic "not the leader" and "the
 * coordinator is loading" are routine), and what outlasts its retries
 * reaches the fan-out, which logs the state change with kafkajs' message at
 * warn or error: kafkajs' own lines are the detail behind it. Its debug
 * lines (every request) are not asked for.
 */
export function kafkajsLogCreator(lib: typeof Kafkajs, logger: Logger): Kafkajs.logCreator {
  const names: Record<number, string> = {
    [lib.logLevel.ERROR]: 'error',
    [lib.logLevel.WARN]: 'warn',
    [lib.logLevel.INFO]: 'info',
    [lib.logLevel.DEBUG]: 'debug',
  };
  return () =>
    ({ namespace, level, log }) => {
      // kafkajs' own timestamp and name: the logger has both.
      const { message, timestamp: _t, logger: _l, stack: _s, ...fields } = log;
      const kafkajsLevel = names[level] ?? String(level);
      logger.debug({ component: 'kafkajs', kafkajsLevel, namespace, ...fields }, message);
    };
}

/**
 * A {@link KafkaClient} on kafkajs. kafkajs is loaded on first use, so an
 * embedded broker never loads it.
 */
export async function createKafkajsClient(options: KafkajsClientOptions): Promise<KafkaClient> {
  // Two kafkajs 2.2.4 bugs (a millisecond timer per connection, quadratic grouping of
  // records), fixed before kafkajs loads: see kafkajs-fixes.ts. Produce requests are
  // written by stompbus's own encoding, about ten times cheaper (produce-encoding.ts), and
  // fetched records read without BigInt arithmetic (record-decoding.ts).
  fixKafkajs();
  useProduceEncoding();
  useRecordDecoding();
  const kafkajs = await import('kafkajs');
  return new KafkajsClient(kafkajs, options);
}

/** The kafkajs client's settings, shared by the fan-out's fetch loop. */
const CONNECTION_TIMEOUT_MS = 3_000;
const REQUEST_TIMEOUT_MS = 10_000;
const CLUSTER_RETRY = Object.freeze({ retries: 2, initialRetryTime: 100, maxRetryTime: 1_000 });

class KafkajsClient implements KafkaClient {
  private readonly kafka: Kafkajs.Kafka;
  private readonly clientId: string;
  private readonly admin: Kafkajs.Admin;
  private readonly producer: Kafkajs.Producer;
  private adminConnected: Promise<void> | undefined;
  private producerConnected: Promise<void> | undefined;
  /** The partition keys of the messages of the produce requests in flight. */
  private readonly partitionKeys = new WeakMap<Kafkajs.Message, string>();

  constructor(
    lib: typeof Kafkajs,
    private readonly options: KafkajsClientOptions,
  ) {
    this.clientId = options.clientId ?? `stompbus-${hostname()}-${process.pid}`;
    this.kafka = new lib.Kafka({
      clientId: this.clientId,
      brokers: options.brokers,
      // KafkaFanout logs what matters (state changes); kafkajs' lines go to the
      // logger as debug lines, or nowhere.
      ...(options.logger
        ? { logLevel: lib.logLevel.INFO, logCreator: kafkajsLogCreator(lib, options.logger) }
        : { logLevel: lib.logLevel.NOTHING }),
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      retry: CLUSTER_RETRY,
    });
    this.admin = this.kafka.admin();
    this.producer = this.kafka.producer({
      // Java-compatible murmur2: one destination (key) maps to one partition;
      // a record with a partition key is placed by that key the same way.
      createPartitioner: () => {
        const byKey = keyedPartitioner(lib.Partitioners.DefaultPartitioner());
        return (args) => {
          const key = this.partitionKeys.get(args.message);
          return key === undefined ? byKey(args) : partitionFor(key, args.partitionMetadata.length);
        };
      },
      allowAutoTopicCreation: false,
      retry: {
        retries: options.produceRetries ?? 3,
        initialRetryTime: 100,
        maxRetryTime: 1_000,
      },
    });
  }

  private connectAdmin(): Promise<void> {
    this.adminConnected ??= this.admin.connect().catch((error: unknown) => {
      this.adminConnected = undefined;
      throw error;
    });
    return this.adminConnected;
  }

  async ensureTopics(topics: readonly TopicSpec[]) {
    await this.connectAdmin();
    const existing = new Set(await this.admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t.topic));
    if (missing.length === 0) return;
    try {
      await this.admin.createTopics({
        topics: missing.map((t) => ({
          topic: t.topic,
          numPartitions: t.partitions,
          configEntries: Object.entries(t.config ?? {}).map(([name, value]) => ({ name, value })),
        })),
        // The first send to a topic without a leader yet can fail: wait for them (docs/kafka.md).
        waitForLeaders: true,
        timeout: 10_000,
      });
    } catch (error) {
      // Another instance may have created them meanwhile.
      const now = new Set(await this.admin.listTopics());
      if (missing.some((t) => !now.has(t.topic))) throw error;
    }
  }

  async latestOffsets(topic: string): Promise<Positions> {
    await this.connectAdmin();
    const offsets = await this.fresh(topic, () => this.admin.fetchTopicOffsets(topic));
    return new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  }

  /**
   * Runs an offsets lookup, refreshing the topic's metadata and trying again
   * when it fails: right after createTopics the admin client may still ask a
   * broker that is not (yet) the partition's leader.
   */
  private async fresh<T>(topic: string, lookup: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await lookup();
      } catch (error) {
        if (attempt >= 5) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
        await this.admin.fetchTopicMetadata({ topics: [topic] }).catch(() => {});
      }
    }
  }

  async offsetsAt(topic: string, timestamp: number): Promise<Positions> {
    await this.connectAdmin();
    const [at, high] = await this.fresh(topic, () =>
      Promise.all([
        this.admin.fetchTopicOffsetsByTimestamp(topic, timestamp),
        this.admin.fetchTopicOffsets(topic),
      ]),
    );
    const end = new Map(high.map((o) => [o.partition, BigInt(o.high)]));
    // Kafka answers -1 where no record is that recent: start at the end there.
    return new Map(
      at.map((o) => [
        o.partition,
        Number(o.offset) >= 0 ? BigInt(o.offset) : (end.get(o.partition) ?? 0n),
      ]),
    );
  }

  connectProducer(): Promise<void> {
    this.producerConnected ??= this.producer.connect().catch((error: unknown) => {
      this.producerConnected = undefined;
      throw error;
    });
    return this.producerConnected;
  }

  async produce(records: readonly ProducedRecord[]): Promise<void> {
    const byTopic = new Map<string, Kafkajs.Message[]>();
    for (const record of records) {
      let messages = byTopic.get(record.topic);
      if (!messages) {
        messages = [];
        byTopic.set(record.topic, messages);
      }
      const message = { key: record.key, value: record.value, headers: toKafkaHeaders(record) };
      if (record.partitionKey !== undefined) this.partitionKeys.set(message, record.partitionKey);
      messages.push(message);
    }
    try {
      await this.producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
    } catch (error) {
      const refusal = kafkaRefusal(error);
      if (refusal) throw new PermanentProduceError(refusal.message, { cause: error });
      throw error;
    }
  }

  async consume(options: ConsumeOptions): Promise<KafkaConsumer> {
    // No group and no runner: fetch-loop.ts. Its own connections, as a kafkajs consumer had.
    const { Cluster, socketFactory } = kafkajsInternals();
    const logger = this.kafka.logger();
    const loop = new FetchLoop(
      {
        cluster: new Cluster({
          logger,
          socketFactory: socketFactory(),
          brokers: this.options.brokers,
          clientId: this.clientId,
          connectionTimeout: CONNECTION_TIMEOUT_MS,
          requestTimeout: REQUEST_TIMEOUT_MS,
          enforceRequestTimeout: true,
          retry: CLUSTER_RETRY,
          metadataMaxAge: 300_000,
          allowAutoTopicCreation: false,
          maxInFlightRequests: null,
          offsets: new Map(),
        }),
        logger: logger.namespace('FetchLoop'),
        toRecord: fromKafkaMessage,
      },
      options,
    );
    try {
      await withTimeout(loop.start(), options.joinTimeoutMs, 'the consumer start');
    } catch (error) {
      await loop.stop();
      throw error;
    }
    return loop;
  }

  async consumeShared(options: SharedConsumeOptions): Promise<SharedConsumer> {
    const { topic } = options;
    const consumer = await this.startGroupConsumer({
      groupId: options.groupId,
      topic,
      joinTimeoutMs: options.joinTimeoutMs,
      onCrash: options.onCrash,
      listen: (c) => {
        c.on(c.events.REBALANCING, () => options.onRebalancing());
        c.on(c.events.GROUP_JOIN, (event) => {
          options.onAssigned([...(event.payload.memberAssignment[topic] ?? [])]);
        });
      },
      onBatch: (batch) => options.onRecords(batch.messages.map((m) => fromKafkaMessage(batch, m))),
    });
    return {
      stop: () => consumer.disconnect().catch(() => {}),
      seek: (partition, offset) => consumer.seek({ topic, partition, offset: String(offset) }),
      commit: (offsets) =>
        consumer.commitOffsets(
          [...offsets].map(([partition, offset]) => ({ topic, partition, offset: String(offset) })),
        ),
    };
  }

  /**
   * A running kafkajs consumer of `topic` that has joined the group `groupId` (the cluster
   * queues' shared group; the fan-out reads with no group, fetch-loop.ts): a partition no
   * member ever committed is read from its first record, offsets never
   * auto-committed, no restart of its own (the caller replaces a crashed
   * one), `listen` adds its listeners before the join (a GROUP_JOIN listener
   * runs inside the join, before the first fetch). Before the first join a
   * crash rejects; after it, `onCrash` reports it.
   */
  private async startGroupConsumer(spec: {
    groupId: string;
    topic: string;
    joinTimeoutMs: number;
    onCrash: (error: Error) => void;
    listen: (consumer: Kafkajs.Consumer) => void;
    onBatch: (batch: Kafkajs.Batch) => void;
  }): Promise<Kafkajs.Consumer> {
    const consumer = this.kafka.consumer({
      groupId: spec.groupId,
      sessionTimeout: this.options.sessionTimeoutMs ?? 6_000,
      heartbeatInterval: this.options.heartbeatIntervalMs ?? 2_000,
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
      retry: { retries: 3, initialRetryTime: 200, restartOnFailure: async () => false },
    });
    let joined: () => void = () => {};
    let failed: (error: Error) => void = () => {};
    let running = false;
    const join = new Promise<void>((resolve, reject) => {
      joined = resolve;
      failed = reject;
    });
    spec.listen(consumer);
    consumer.on(consumer.events.GROUP_JOIN, () => {
      running = true;
      joined();
    });
    consumer.on(consumer.events.CRASH, (event) => {
      if (running) spec.onCrash(event.payload.error);
      else failed(event.payload.error);
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topic: spec.topic, fromBeginning: true });
      void consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch, heartbeat }) => {
            spec.onBatch(batch);
            await heartbeat();
          },
        })
        .catch((error: unknown) => failed(error as Error));
      await withTimeout(join, spec.joinTimeoutMs, 'the shared group join');
    } catch (error) {
      await consumer.disconnect().catch(() => {});
      throw error;
    }
    return consumer;
  }

  async groupOffsets(groupId: string, topic: string): Promise<Map<number, GroupOffsets>> {
    await this.connectAdmin();
    const [committed, bounds] = await this.fresh(topic, () =>
      Promise.all([
        this.admin.fetchOffsets({ groupId, topics: [topic] }),
        this.admin.fetchTopicOffsets(topic),
      ]),
    );
    const byPartition = new Map<number, bigint>();
    for (const p of committed.find((t) => t.topic === topic)?.partitions ?? []) {
      if (Number(p.offset) >= 0) byPartition.set(p.partition, BigInt(p.offset));
    }
    return new Map(
      bounds.map((b) => [
        b.partition,
        { committed: byPartition.get(b.partition), low: BigInt(b.low), high: BigInt(b.high) },
      ]),
    );
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.producer.disconnect(), this.admin.disconnect()]);
  }
}

/**
 * The error Kafka answered that no retry can change (kafkajs marks each
 * protocol error retriable or not; `MESSAGE_TOO_LARGE` is not), looked for
 * through the causes kafkajs wraps it in after its own retries. Connection
 * errors and retriable protocol errors (no leader, not the leader) are not one.
 */
function kafkaRefusal(error: unknown): Error | undefined {
  let e = error as { name?: string; retriable?: boolean; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 5; depth++) {
    if (e.name === 'KafkaJSProtocolError' && e.retriable === false) return e as Error;
    e = e.cause as typeof e;
  }
  return undefined;
}

function toKafkaHeaders(record: ProducedRecord): Kafkajs.IHeaders {
  const headers: Kafkajs.IHeaders = {};
  for (const [name, value] of record.headers) {
    const had = headers[name];
    if (had === undefined) headers[name] = value;
    else headers[name] = Array.isArray(had) ? [...had, value] : [had, value];
  }
  return headers;
}

/**
 * A record header's value as bytes. Kafka allows a header without a value (kafkajs gives
 * `null`; a Java producer writes one with `headers.add(name, null)`): it reads as empty.
 */
function headerBytes(value: Buffer | string | null | undefined): Buffer {
  if (value === null || value === undefined) return EMPTY_BYTES;
  return typeof value === 'string' ? Buffer.from(value) : value;
}

const EMPTY_BYTES = Buffer.alloc(0);

/** A record as kafkajs decodes it, as {@link ConsumeOptions.onRecords} gets it. */
export function fromKafkaMessage(
  batch: Pick<Kafkajs.Batch, 'topic' | 'partition'>,
  m: Kafkajs.KafkaMessage,
): ConsumedRecord {
  const headers: Array<[string, Buffer]> = [];
  const given = m.headers;
  // for…in rather than Object.entries: no array per record and per header (every fetched record).
  for (const name in given) {
    const value = given[name];
    if (Array.isArray(value)) {
      for (const v of value) headers.push([name, headerBytes(v)]);
    } else if (value !== undefined) {
      headers.push([name, headerBytes(value)]);
    }
  }
  return {
    topic: batch.topic,
    partition: batch.partition,
    offset: m.offset,
    key: m.key,
    value: m.value,
    timestamp: Number(m.timestamp),
    headers,
  };
}

/** Rejects when `promise` takes longer than `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
