import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { destinationKind } from '../broker/broker.js';
import { type Message, messageHeaders } from '../broker/message.js';
import { StompError } from '../errors.js';
import type { Header } from '../frame/frame.js';
import type { Fanout } from './fanout.js';
import {
  type ConsumedRecord,
  createKafkajsClient,
  type KafkaClient,
  type KafkaConsumer,
  type Positions,
  type ProducedRecord,
  withTimeout,
} from './kafka-client.js';

/** Carries the broker's `message-id` with our own records, so every instance shows the same id. */
export const MESSAGE_ID_HEADER = 'stompbus-message-id';

/** Headers a MESSAGE from a bridged Kafka topic gets from the record itself. */
export const KAFKA_HEADERS = ['kafka-key', 'kafka-partition', 'kafka-offset', 'kafka-topic'];
const KAFKA_HEADER_SET = new Set(KAFKA_HEADERS);

/** Settings of {@link KafkaFanout}. */
export interface KafkaFanoutOptions {
  /** Bootstrap servers, `host:port[,…]`. */
  brokers: string | string[];
  /** The Kafka topic of all `/topic/…` traffic that is not bridged. Default `stompbus.topics`. */
  topic: string;
  /** Partitions of {@link topic} when it is created. Default 6. */
  partitions: number;
  /**
   * Bridged Kafka topics and their STOMP destination, e.g. `{ prices: '/topic/prices' }`.
   * Created (with one partition) when missing. Default none.
   */
  bridges: Record<string, string>;
  /** Messages waiting for Kafka (queued or in flight); beyond it SENDs fail at once. Default 10,000. */
  maxPendingRecords: number;
  /** Most records in one produce request. Default 1,000. */
  maxBatchRecords: number;
  /**
   * Most bytes (bodies, keys and headers) in one produce request, though a single larger
   * record still goes alone. Kafka refuses a record batch over `message.max.bytes`
   * (1 MiB by default) as a whole, failing every SEND in it. Default 512 KiB.
   */
  maxBatchBytes: number;
  /** A SEND not acknowledged by Kafka within this time fails, ms. Default 10,000. */
  publishTimeoutMs: number;
  /** Longest wait in start() for the first group join; then Kafka is retried in the background, ms. Default 15,000. */
  startTimeoutMs: number;
  /** Longest stop(), ms. Default 5,000. */
  stopTimeoutMs: number;
  /** First and longest wait between reconnection attempts, ms. Default 250 and 5,000. */
  retryInitialMs: number;
  retryMaxMs: number;
  /** Consumer group session timeout, ms (Kafka's floor is `group.min.session.timeout.ms`). Default 6,000. */
  sessionTimeoutMs: number;
  /** Where log lines go. Default `console`, prefixed `stompbus: kafka:`. */
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** The Kafka client; default kafkajs ({@link createKafkajsClient}). */
  client: KafkaClient | undefined;
}

/** The defaults of {@link KafkaFanoutOptions} (all but `brokers`). */
export const DEFAULT_KAFKA_FANOUT_OPTIONS: Readonly<Omit<KafkaFanoutOptions, 'brokers'>> =
  Object.freeze({
    topic: 'stompbus.topics',
    partitions: 6,
    bridges: {},
    maxPendingRecords: 10_000,
    maxBatchRecords: 1_000,
    maxBatchBytes: 512 * 1024,
    publishTimeoutMs: 10_000,
    startTimeoutMs: 15_000,
    stopTimeoutMs: 5_000,
    retryInitialMs: 250,
    retryMaxMs: 5_000,
    sessionTimeoutMs: 6_000,
    log: (level, message) => console[level](`stompbus: kafka: ${message}`),
    client: undefined,
  });

interface Pending {
  readonly record: ProducedRecord;
  readonly at: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

const EMPTY = new Uint8Array(0);

/**
 * Cluster mode (DESIGN.md "Cluster mode"): every `/topic/…` SEND goes to Kafka
 * with its destination as the key, and every instance consumes all of it in a
 * consumer group of its own and delivers to its local subscribers, its own
 * SENDs included, so all instances see one order per destination. Bridged
 * Kafka topics map to one destination each, both ways.
 *
 * Offsets are never committed: the fan-out remembers the next offset per
 * partition and seeks there on every group join, so a consumer restarted
 * after a crash (in a fresh group) neither skips nor repeats records.
 */
export class KafkaFanout implements Fanout {
  readonly options: KafkaFanoutOptions;
  private readonly brokers: string[];
  private readonly groupBase =
    `stompbus-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  /** Bridged destination → Kafka topic (the reverse of `options.bridges`). */
  private readonly topicOf = new Map<string, string>();
  private deliver: (message: Message) => void = () => {};
  private client: KafkaClient | undefined;
  private consumer: KafkaConsumer | undefined;
  private generation = 0;
  private readonly positions = new Map<string, Positions>();
  private producerReady = false;
  private stopping = false;
  private queue: Pending[] = [];
  private inFlight = 0;
  private flushing: Promise<void> | undefined;
  private flushScheduled = false;
  private produceFailures = 0;
  private lastFailureLog = 0;
  private readonly sleepers = new Set<() => void>();
  /** Backoff waits that end early when Kafka is seen to be back. */
  private readonly backoffs = new Set<() => void>();
  private readonly warned = new Set<string>();

  constructor(options: Partial<KafkaFanoutOptions> & Pick<KafkaFanoutOptions, 'brokers'>) {
    this.options = { ...DEFAULT_KAFKA_FANOUT_OPTIONS, ...options };
    const { brokers, bridges, topic } = this.options;
    this.brokers = (Array.isArray(brokers) ? brokers : brokers.split(','))
      .map((b) => b.trim())
      .filter(Boolean);
    if (this.brokers.length === 0) throw new Error('stompbus: --kafka-brokers names no broker');
    for (const [kafkaTopic, destination] of Object.entries(bridges)) {
      if (destinationKind(destination) !== 'topic') {
        throw new Error(
          `stompbus: --bridge ${kafkaTopic}=${destination}: not a /topic/ destination`,
        );
      }
      if (kafkaTopic === topic || this.topicOf.has(destination)) {
        throw new Error(`stompbus: --bridge ${kafkaTopic}=${destination} is bridged twice`);
      }
      this.topicOf.set(destination, kafkaTopic);
    }
  }

  /** True once the producer is connected (SENDs are accepted). */
  get connected(): boolean {
    return this.producerReady;
  }

  /**
   * Connects, creates the topics and joins a fresh consumer group; resolves
   * once the group is joined, or, when Kafka is unreachable or slow, after the
   * first failed attempt or `startTimeoutMs`, with the connection retried in
   * the background (SENDs to topics fail meanwhile).
   */
  async start(deliver: (message: Message) => void): Promise<void> {
    this.deliver = deliver;
    let firstFailure: () => void = () => {};
    const failed = new Promise<'failed'>((resolve) => {
      firstFailure = () => resolve('failed');
    });
    const joined = this.connectLoop(firstFailure).then(() => 'joined' as const);
    const timedOut = this.sleep(this.options.startTimeoutMs).then(() => 'timeout' as const);
    const outcome = await Promise.race([joined, failed, timedOut]);
    if (outcome !== 'joined') {
      this.options.log(
        'warn',
        `not connected yet (${outcome === 'failed' ? 'Kafka unreachable' : 'still joining'}); ` +
          'serving local connections, retrying in the background; SENDs to /topic/ get ERROR meanwhile',
      );
    }
  }

  /**
   * Queues the message for Kafka; resolves when Kafka acknowledged it (acks
   * from all in-sync replicas), rejects when Kafka is unavailable, too far
   * behind, or does not answer within `publishTimeoutMs`.
   */
  publish(message: Message): Promise<void> {
    let result: Promise<void>;
    if (this.stopping) {
      result = Promise.reject(new StompError('STOMP_ERR_SHUTDOWN'));
    } else if (!this.producerReady) {
      result = Promise.reject(unavailable('not connected to Kafka'));
    } else if (this.queue.length + this.inFlight >= this.options.maxPendingRecords) {
      result = Promise.reject(
        unavailable(`${this.options.maxPendingRecords} messages already wait for Kafka`),
      );
    } else {
      const record = this.toRecord(message);
      result = new Promise<void>((resolve, reject) => {
        this.queue.push({ record, at: Date.now(), resolve, reject });
      });
      this.scheduleFlush();
    }
    // The session attaches its handler only when earlier receipts are done; an
    // early rejection must not count as unhandled meanwhile (it would end the process).
    result.catch(() => {});
    return result;
  }

  /** Flushes what is queued, then leaves the group and disconnects; bounded by `stopTimeoutMs`. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const wake of this.sleepers) wake();
    const deadline = Date.now() + this.options.stopTimeoutMs;
    const flushed = this.flushing ?? Promise.resolve();
    await withTimeout(flushed, this.options.stopTimeoutMs / 2, 'flush').catch(() => {});
    for (const pending of this.queue.splice(0))
      pending.reject(new StompError('STOMP_ERR_SHUTDOWN'));
    const closing = Promise.allSettled([this.consumer?.stop(), this.client?.close()]);
    this.consumer = undefined;
    this.producerReady = false;
    await withTimeout(closing, Math.max(100, deadline - Date.now()), 'disconnect').catch(() => {
      this.options.log('warn', 'disconnecting from Kafka took too long; going on');
    });
  }

  // ---- connecting ----

  /** Retries {@link connectOnce} with backoff until it succeeds or stop() is called. */
  private async connectLoop(onFailure: () => void): Promise<void> {
    let delay = this.options.retryInitialMs;
    while (!this.stopping) {
      try {
        await this.connectOnce();
        return;
      } catch (error) {
        if (this.stopping) return;
        this.options.log('warn', `cannot connect (${describe(error)}); retrying in ${delay} ms`);
        onFailure();
        await this.backoff(delay);
        delay = Math.min(delay * 2, this.options.retryMaxMs);
      }
    }
  }

  private async connectOnce(): Promise<void> {
    const started = Date.now();
    this.client ??=
      this.options.client ??
      (await createKafkajsClient({
        brokers: this.brokers,
        sessionTimeoutMs: this.options.sessionTimeoutMs,
      }));
    const { topic, partitions, bridges } = this.options;
    const topics = [
      { topic, partitions },
      ...Object.keys(bridges).map((t) => ({ topic: t, partitions: 1 })),
    ];
    await this.client.ensureTopics(topics);
    // Where this instance starts reading: the end of each partition now. Anything
    // produced from here on (its own SENDs included) is delivered.
    for (const { topic: t } of topics) {
      if (!this.positions.has(t)) this.positions.set(t, await this.client.latestOffsets(t));
    }
    await this.client.connectProducer();
    this.producerReady = true;
    await this.startConsumer();
    this.options.log(
      'info',
      `connected to ${this.brokers.join(',')} in ${Date.now() - started} ms; ` +
        `consuming ${topics.map((t) => t.topic).join(', ')}`,
    );
  }

  private async startConsumer(): Promise<void> {
    const generation = ++this.generation;
    const consumer = await this.requireClient().consume({
      // One group per process start (and per restart after a crash): a shared
      // group would split the records instead of fanning them out.
      groupId: generation === 1 ? this.groupBase : `${this.groupBase}-${generation}`,
      topics: [this.options.topic, ...Object.keys(this.options.bridges)],
      positions: () => this.positions,
      onRecords: (records) => this.onRecords(records),
      onCrash: (error) => this.onCrash(generation, error),
      joinTimeoutMs: Math.max(10_000, 2 * this.options.sessionTimeoutMs),
    });
    if (this.stopping || generation !== this.generation) {
      await consumer.stop();
      return;
    }
    this.consumer = consumer;
  }

  /** A crashed consumer (Kafka gone too long, say) is replaced, with backoff, until stop(). */
  private onCrash(generation: number, error: Error): void {
    if (this.stopping || generation !== this.generation) return;
    this.consumer = undefined;
    this.options.log('error', `consumer stopped (${describe(error)}); restarting it`);
    void (async () => {
      let delay = this.options.retryInitialMs;
      while (!this.stopping && generation === this.generation) {
        await this.backoff(delay);
        if (this.stopping) return;
        try {
          await this.startConsumer();
          this.options.log('info', 'consumer restarted');
          return;
        } catch (restartError) {
          this.options.log('warn', `consumer restart failed (${describe(restartError)})`);
          delay = Math.min(delay * 2, this.options.retryMaxMs);
          generation = this.generation;
        }
      }
    })();
  }

  // ---- producing ----

  private scheduleFlush(): void {
    if (this.flushing || this.flushScheduled) return;
    this.flushScheduled = true;
    // One event-loop turn of SENDs goes out as one request.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushing ??= this.flush().finally(() => {
        this.flushing = undefined;
        if (this.queue.length > 0) this.scheduleFlush();
      });
    });
  }

  /**
   * Sends the queue, one request at a time: what arrives meanwhile forms the
   * next batch, and a retried request can never overtake a later one.
   */
  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const now = Date.now();
      const batch: Pending[] = [];
      for (const pending of this.queue.splice(0, this.batchLength())) {
        if (now - pending.at < this.options.publishTimeoutMs) batch.push(pending);
        else pending.reject(unavailable('Kafka did not take the message in time'));
      }
      if (batch.length === 0) continue;
      this.inFlight = batch.length;
      const sent = this.requireClient().produce(batch.map((p) => p.record));
      try {
        await withTimeout(sent, this.options.publishTimeoutMs, 'the Kafka produce request');
        this.produced();
        for (const pending of batch) pending.resolve();
      } catch (error) {
        this.produceFailed(error, batch.length);
        for (const pending of batch) pending.reject(unavailable(describe(error), error));
        // The request may still be pending: never two at once.
        await sent.catch(() => {});
      } finally {
        this.inFlight = 0;
      }
    }
  }

  /** How many queued records the next request takes: at least one. */
  private batchLength(): number {
    const { maxBatchRecords, maxBatchBytes } = this.options;
    const end = Math.min(this.queue.length, maxBatchRecords);
    let bytes = 0;
    for (let i = 0; i < end; i++) {
      bytes += recordSize((this.queue[i] as Pending).record);
      if (bytes > maxBatchBytes) return Math.max(1, i);
    }
    return end;
  }

  private produced(): void {
    if (this.produceFailures === 0) return;
    this.options.log('info', `producing again (${this.produceFailures} messages failed meanwhile)`);
    this.produceFailures = 0;
    // Kafka is back: a consumer waiting to restart need not finish its backoff.
    for (const wake of this.backoffs) wake();
  }

  private produceFailed(error: unknown, count: number): void {
    this.produceFailures += count;
    const now = Date.now();
    if (this.produceFailures === count || now - this.lastFailureLog > 5_000) {
      this.lastFailureLog = now;
      this.options.log(
        'error',
        `produce failed (${describe(error)}); ${this.produceFailures} message(s) answered with ERROR so far`,
      );
    }
  }

  /** A SEND as a record: destination as key, STOMP headers as record headers. */
  private toRecord(message: Message): ProducedRecord {
    const kafkaTopic = this.topicOf.get(message.destination);
    const headers: Array<[string, string]> = [];
    let key: string | undefined;
    for (const header of message.headers) {
      if (kafkaTopic !== undefined && KAFKA_HEADER_SET.has(header[0])) {
        // A SEND to a bridged destination may choose the record key.
        if (header[0] === 'kafka-key') key ??= header[1];
        continue;
      }
      headers.push(header);
    }
    headers.push([MESSAGE_ID_HEADER, message.id]);
    const { body } = message;
    return {
      topic: kafkaTopic ?? this.options.topic,
      key: key ?? message.destination,
      value: Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      headers,
    };
  }

  // ---- consuming ----

  private onRecords(records: ConsumedRecord[]): void {
    for (const record of records) {
      let positions = this.positions.get(record.topic);
      if (!positions) {
        positions = new Map();
        this.positions.set(record.topic, positions);
      }
      const offset = BigInt(record.offset);
      const next = positions.get(record.partition);
      // Fetched again after a restart or rejoin: delivered already.
      if (next !== undefined && offset < next) continue;
      positions.set(record.partition, offset + 1n);
      const message = this.toMessage(record);
      if (!message) continue;
      try {
        this.deliver(message);
      } catch (error) {
        this.options.log('error', `delivering ${message.id} failed (${describe(error)})`);
      }
    }
  }

  /** A record as a message; undefined (logged once per topic) when it names no topic destination. */
  private toMessage(record: ConsumedRecord): Message | undefined {
    const bridged = this.options.bridges[record.topic];
    const destination =
      bridged ?? (record.topic === this.options.topic ? record.key?.toString() : undefined);
    if (!destination || destinationKind(destination) !== 'topic') {
      this.warnOnce(record.topic, `skipping records on ${record.topic} without a /topic/ key`);
      return undefined;
    }
    let id: string | undefined;
    const headers: Header[] = [];
    for (const [name, value] of record.headers) {
      if (name === MESSAGE_ID_HEADER) id ??= value.toString();
      else if (name !== '' && !(bridged && KAFKA_HEADER_SET.has(name))) {
        headers.push([name, value.toString()]);
      }
    }
    if (bridged) {
      if (record.key) headers.push(['kafka-key', record.key.toString()]);
      headers.push(
        ['kafka-partition', String(record.partition)],
        ['kafka-offset', record.offset],
        ['kafka-topic', record.topic],
      );
    }
    return {
      id: id ?? `${record.topic}-${record.partition}-${record.offset}`,
      destination,
      // A record header named like a STOMP transport header (destination, ack…) is dropped.
      headers: messageHeaders(headers),
      body: record.value ?? EMPTY,
    };
  }

  // ---- helpers ----

  private requireClient(): KafkaClient {
    if (!this.client) throw unavailable('not connected to Kafka');
    return this.client;
  }

  /** Waits `ms`, or less when stop() is called. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.sleepers.add(wake);
    });
  }

  /** A {@link sleep} that also ends when Kafka is seen to be back. */
  private async backoff(ms: number): Promise<void> {
    let wake: () => void = () => {};
    const woken = new Promise<void>((resolve) => {
      wake = resolve;
    });
    this.backoffs.add(wake);
    try {
      await Promise.race([this.sleep(ms), woken]);
    } finally {
      this.backoffs.delete(wake);
    }
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.options.log('warn', message);
  }
}

/** About the bytes of a record in a batch (string lengths stand for their UTF-8 bytes). */
function recordSize(record: ProducedRecord): number {
  let size = 32 + record.value.byteLength + (record.key?.length ?? 0);
  for (const [name, value] of record.headers) size += name.length + value.length + 2;
  return size;
}

/** The error a SEND gets when Kafka cannot take it. */
function unavailable(detail: string, cause?: unknown): StompError {
  return new StompError('STOMP_ERR_CLUSTER_UNAVAILABLE', { detail, cause });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
