import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { destinationKind } from '../broker/destination.js';
import type { Message } from '../broker/message.js';
import { StompError } from '../errors.js';
import type { Fanout, FanoutSink } from './fanout.js';
import {
  type ConsumedRecord,
  createKafkajsClient,
  type KafkaClient,
  type KafkaConsumer,
  type Positions,
  type ProducedRecord,
  type TopicSpec,
  withTimeout,
} from './kafka-client.js';
import { Presence } from './presence.js';
import { consumedId, RecordMapper, recordSize } from './records.js';

export { CONSUMED_HEADER, KAFKA_HEADERS, MESSAGE_ID_HEADER } from './records.js';

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
  /** How far back the topics' history is read at start-up (for resumes), ms. Default 10 minutes. */
  historyMaxAgeMs: number;
  /** How far back the users topic is read at start-up (offline messages), ms. Default 24 hours. */
  offlineMaxAgeMs: number;
  /** How often this instance announces its users in the connection registry, ms; entries live 3 times as long. Default 2,000. */
  presenceIntervalMs: number;
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
    historyMaxAgeMs: 10 * 60_000,
    offlineMaxAgeMs: 24 * 60 * 60_000,
    presenceIntervalMs: 2_000,
    log: (level, message) => console[level](`stompbus: kafka: ${message}`),
    client: undefined,
  });

interface Pending {
  readonly record: ProducedRecord;
  readonly at: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

const DAY_MS = 24 * 60 * 60_000;

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
 *
 * Users (issue 5): user destinations travel on a topic of their own
 * (`<topic>.users`), where consuming a user-queue message is recorded too, so
 * every instance keeps the same offline mailboxes. At start-up an instance
 * reads back the recent history of its topics (kept, not delivered), so a
 * client resumes on any instance. A third topic (`<topic>.presence`) carries
 * each instance's connected users: the connection registry.
 */
export class KafkaFanout implements Fanout {
  readonly options: KafkaFanoutOptions;
  private readonly brokers: string[];
  private readonly groupBase =
    `stompbus-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  /** This instance in the connection registry (its group name). */
  readonly instanceId = this.groupBase;
  private readonly usersTopic: string;
  private readonly presenceTopic: string;
  /** Messages to records and back. */
  private readonly records: RecordMapper;
  private sink: FanoutSink = { deliver: () => {}, consumed: () => {}, localUsers: () => [] };
  private client: KafkaClient | undefined;
  private consumer: KafkaConsumer | undefined;
  private generation = 0;
  private readonly positions = new Map<string, Positions>();
  /** Where reading started per topic (history included): resumes from before it are incomplete. */
  private readonly startedFrom = new Map<string, Positions>();
  /** The end of each partition at the first connect: records before it are history. */
  private readonly liveFrom = new Map<string, Positions>();
  /** The connection registry. */
  private readonly presence: Presence;
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
    this.usersTopic = `${topic}.users`;
    this.presenceTopic = `${topic}.presence`;
    this.presence = new Presence({
      instanceId: this.instanceId,
      topic: this.presenceTopic,
      intervalMs: this.options.presenceIntervalMs,
      localUsers: () => this.sink.localUsers(),
      produce: (record) =>
        this.producerReady ? this.enqueue(record) : Promise.reject(unavailable('not connected')),
      warnOnce: (key, message) => this.warnOnce(key, message),
    });
    this.brokers = (Array.isArray(brokers) ? brokers : brokers.split(','))
      .map((b) => b.trim())
      .filter(Boolean);
    if (this.brokers.length === 0) throw new Error('stompbus: --kafka-brokers names no broker');
    const bridged = new Set<string>();
    for (const [kafkaTopic, destination] of Object.entries(bridges)) {
      if (destinationKind(destination) !== 'topic') {
        throw new Error(
          `stompbus: --bridge ${kafkaTopic}=${destination}: not a /topic/ destination`,
        );
      }
      if (
        [topic, this.usersTopic, this.presenceTopic].includes(kafkaTopic) ||
        bridged.has(destination)
      ) {
        throw new Error(`stompbus: --bridge ${kafkaTopic}=${destination} is bridged twice`);
      }
      bridged.add(destination);
    }
    this.records = new RecordMapper({ topic, usersTopic: this.usersTopic, bridges });
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
  async start(sink: FanoutSink): Promise<void> {
    this.sink = sink;
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
      result = this.enqueue(this.records.toRecord(message));
    }
    // The session attaches its handler only when earlier receipts are done; an
    // early rejection must not count as unhandled meanwhile (it would end the process).
    result.catch(() => {});
    return result;
  }

  /** Records, on the users topic, that a user-queue message was consumed here (at least once: a lost record means a redelivery). */
  consumed(message: Message): void {
    this.enqueue(this.records.consumedRecord(message)).catch((error: unknown) => {
      // Kafka down: produceFailed() already logs; one line per message would flood.
      this.warnOnce(
        `consumed:${describe(error)}`,
        `could not record consumption (${describe(error)}); those messages may come again`,
      );
    });
  }

  coveredFrom(destination: string, epoch: string): number | undefined {
    const partition = Number(/^p([0-9]+)$/.exec(epoch)?.[1] ?? Number.NaN);
    const topic = this.records.topicFor(destination);
    const started = this.startedFrom.get(topic);
    const from = started?.get(partition);
    const live = this.liveFrom.get(topic)?.get(partition);
    const at = this.positions.get(topic)?.get(partition);
    // Still reading the history back (start-up took too long): it cannot vouch yet.
    if (from === undefined || live === undefined || at === undefined || at < live) return undefined;
    // A bridged topic of several partitions has no one order per destination.
    if (started && started.size > 1 && this.records.isBridged(destination)) return undefined;
    return Number(from);
  }

  usersChanged(): void {
    this.presence.changed();
  }

  whereIs(user: string): string[] {
    return this.presence.whereIs(user);
  }

  /** Flushes what is queued, then leaves the group and disconnects; bounded by `stopTimeoutMs`. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    // Leave the registry at once rather than after the entry expires.
    this.presence.stop(this.producerReady);
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

  /** Queues a record for the next produce request; resolves once Kafka acknowledged it. */
  private enqueue(record: ProducedRecord): Promise<void> {
    const result = new Promise<void>((resolve, reject) => {
      this.queue.push({ record, at: Date.now(), resolve, reject });
    });
    this.scheduleFlush();
    return result;
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
    const { topic, partitions, bridges, historyMaxAgeMs, offlineMaxAgeMs } = this.options;
    const usersAge = Math.max(historyMaxAgeMs, offlineMaxAgeMs);
    const topics: TopicSpec[] = [
      { topic, partitions },
      // Kafka must keep user traffic at least as long as offline messages are kept.
      {
        topic: this.usersTopic,
        partitions,
        config: { 'retention.ms': String(Math.max(7 * DAY_MS, usersAge)) },
      },
      { topic: this.presenceTopic, partitions: 1, config: { 'retention.ms': String(DAY_MS) } },
      ...Object.keys(bridges).map((t) => ({ topic: t, partitions: 1 })),
    ];
    await this.client.ensureTopics(topics);
    // Where this instance starts reading: the recent history of each topic
    // (kept for resumes and offline users, not delivered), then live from the
    // end of each partition now, its own SENDs included.
    const now = Date.now();
    for (const { topic: t } of topics) {
      if (this.positions.has(t)) continue;
      const live = await this.client.latestOffsets(t);
      const age = t === this.usersTopic ? usersAge : historyMaxAgeMs;
      const from = t === this.presenceTopic ? live : await this.client.offsetsAt(t, now - age);
      this.liveFrom.set(t, live);
      this.startedFrom.set(t, new Map(from));
      this.positions.set(t, new Map(from));
    }
    await this.client.connectProducer();
    this.producerReady = true;
    await this.startConsumer();
    await this.caughtUp(started + this.options.startTimeoutMs);
    this.presence.start();
    this.options.log(
      'info',
      `connected to ${this.brokers.join(',')} in ${Date.now() - started} ms; ` +
        `consuming ${topics.map((t) => t.topic).join(', ')}`,
    );
  }

  /** Waits (until `deadline`) for the history read at start-up to reach the live end. */
  private async caughtUp(deadline: number): Promise<void> {
    const behind = () => {
      for (const [t, live] of this.liveFrom) {
        const at = this.positions.get(t);
        for (const [partition, end] of live) if ((at?.get(partition) ?? 0n) < end) return true;
      }
      return false;
    };
    while (behind() && !this.stopping) {
      if (Date.now() > deadline) {
        this.options.log('warn', 'history not read back in time; resumes may be incomplete');
        return;
      }
      await this.sleep(20);
    }
  }

  private async startConsumer(): Promise<void> {
    const generation = ++this.generation;
    const consumer = await this.requireClient().consume({
      // One group per process start (and per restart after a crash): a shared
      // group would split the records instead of fanning them out.
      groupId: generation === 1 ? this.groupBase : `${this.groupBase}-${generation}`,
      topics: [
        this.options.topic,
        this.usersTopic,
        this.presenceTopic,
        ...Object.keys(this.options.bridges),
      ],
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
      if (record.topic === this.presenceTopic) {
        this.presence.onRecord(record);
        continue;
      }
      const consumed = record.topic === this.usersTopic && consumedId(record);
      if (consumed) {
        if (record.key) this.sink.consumed(record.key.toString(), consumed);
        continue;
      }
      const message = this.records.toMessage(record);
      if (!message) {
        this.warnOnce(
          record.topic,
          `skipping records on ${record.topic} without a destination key`,
        );
        continue;
      }
      message.position = { epoch: epochOf(record.partition), n: Number(offset) };
      message.at = record.timestamp;
      const live = this.liveFrom.get(record.topic)?.get(record.partition);
      if (live !== undefined && offset < live) message.replayed = true;
      try {
        this.sink.deliver(message);
      } catch (error) {
        this.options.log('error', `delivering ${message.id} failed (${describe(error)})`);
      }
    }
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

const EPOCHS: string[] = [];

/** A partition's epoch, one string for all its messages (kept messages are many). */
function epochOf(partition: number): string {
  EPOCHS[partition] ??= `p${partition}`;
  return EPOCHS[partition];
}

/** The error a SEND gets when Kafka cannot take it. */
function unavailable(detail: string, cause?: unknown): StompError {
  return new StompError('STOMP_ERR_CLUSTER_UNAVAILABLE', { detail, cause });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
