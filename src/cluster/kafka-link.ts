/**
 * The connection to Kafka and keeping it: an instance must serve its local
 * connections whether Kafka is there or not, so connecting is retried in the
 * background with backoff, and a consumer that crashes (Kafka gone too long)
 * is replaced, until stop(). Every wait here ends when stop() is called, and
 * a backoff also ends as soon as Kafka is seen to be back.
 */
import {
  type ConsumedRecord,
  type ConsumeOptions,
  createKafkajsClient,
  type KafkaClient,
  type KafkaConsumer,
  type Positions,
  type TopicSpec,
  withTimeout,
} from './kafka-client.js';
import type { KafkaFanoutOptions } from './kafka-options.js';
import { describe, type Log, unavailable } from './notices.js';

/** What a {@link KafkaLink} needs. */
export interface KafkaLinkOptions
  extends Pick<
    KafkaFanoutOptions,
    'client' | 'sessionTimeoutMs' | 'startTimeoutMs' | 'retryInitialMs' | 'retryMaxMs' | 'logger'
  > {
  /** Bootstrap servers (see {@link parseBrokers}). */
  readonly brokers: readonly string[];
  readonly log: Log;
  /** This instance's consumer's name; a consumer restarted after a crash gets `<groupBase>-<n>`. */
  readonly groupBase: string;
  /** The topics to create (when missing) and consume. */
  readonly topics: readonly TopicSpec[];
  /** Runs on each connect once the topics exist, before anything is consumed. */
  readonly prepare: (client: KafkaClient) => Promise<void>;
  /** Whether the history read back at start-up has reached the live end. */
  readonly caughtUp: () => boolean;
  /** Where each consumer start reads from (`ConsumeOptions.positions`). */
  readonly positions: () => ReadonlyMap<string, Positions>;
  /** Longest wait of an idle fetch (`ConsumeOptions.fetchMaxWaitMs`). */
  readonly fetchMaxWaitMs?: number;
  /** Least time between fetch starts (`ConsumeOptions.fetchIntervalMs`). */
  readonly fetchIntervalMs?: number;
  /** Partitions paused at each consumer start (`ConsumeOptions.paused`). */
  readonly paused?: ConsumeOptions['paused'];
  /** Each fetched batch (`ConsumeOptions.onRecords`). */
  readonly onRecords: (records: ConsumedRecord[]) => void;
  /** Each fetched batch's partition end (`ConsumeOptions.onPartitionEnd`). */
  readonly onPartitionEnd?: (topic: string, partition: number, end: bigint) => void;
  /** Connected and (or given up waiting for) the history read back. */
  readonly onConnected: () => void;
}

/** `--kafka-brokers` as a list; throws when it names none. */
export function parseBrokers(brokers: string | readonly string[]): string[] {
  const list = (typeof brokers === 'string' ? brokers.split(',') : brokers)
    .map((b) => b.trim())
    .filter(Boolean);
  if (list.length === 0) throw new Error('stompbus: --kafka-brokers names no broker');
  return list;
}

/** The client, the producer's state and the consumer of one instance. */
export class KafkaLink {
  private client: KafkaClient | undefined;
  private consumer: KafkaConsumer | undefined;
  /** Counts consumer starts: a crash report of an older consumer is ignored. */
  private generation = 0;
  private producerReady = false;
  /** The first connect got through: consuming, history read back (or given up waiting). */
  private joined = false;
  private stopping = false;
  private readonly waits = new Waits();

  constructor(private readonly options: KafkaLinkOptions) {}

  /** True once the producer is connected: records can be produced. */
  get ready(): boolean {
    return this.producerReady;
  }

  /** Why this link cannot serve yet (or any more), or undefined when it can. */
  get notReady(): string | undefined {
    if (this.stopping) return 'stopping';
    if (!this.producerReady) return 'connecting to Kafka';
    if (!this.joined) return 'reading the history back from Kafka';
    if (!this.consumer) return 'Kafka consumer restarting';
    return undefined;
  }

  /** True once {@link halt} was called. */
  get stopped(): boolean {
    return this.stopping;
  }

  /**
   * Connects, creates the topics and starts the consumer; resolves
   * once it reads, or, when Kafka is unreachable or slow, after the
   * first failed attempt or `startTimeoutMs`, with the connection retried in
   * the background.
   */
  async start(): Promise<void> {
    let firstFailure: () => void = () => {};
    const failed = new Promise<'failed'>((resolve) => {
      firstFailure = () => resolve('failed');
    });
    const joined = this.connectLoop(firstFailure).then(() => 'joined' as const);
    const timedOut = this.waits.sleep(this.options.startTimeoutMs).then(() => 'timeout' as const);
    const outcome = await Promise.race([joined, failed, timedOut]);
    if (outcome !== 'joined') {
      this.options.log(
        'warn',
        `not connected yet (${outcome === 'failed' ? 'Kafka unreachable' : 'still joining'}); ` +
          'serving local connections, retrying in the background; SENDs wait for Kafka meanwhile',
        { kafka: outcome === 'failed' ? 'unreachable' : 'connecting' },
      );
    }
  }

  /** The client, once a connect got that far; throws STOMP_ERR_CLUSTER_UNAVAILABLE before. */
  requireClient(): KafkaClient {
    if (!this.client) throw unavailable('not connected to Kafka');
    return this.client;
  }

  /** The running consumer, if any. */
  get activeConsumer(): KafkaConsumer | undefined {
    return this.consumer;
  }

  /** Kafka answered again: waits to retry end now rather than after their backoff. */
  kafkaBack(): void {
    this.waits.wakeBackoffs();
  }

  /** Stops retrying: no more connects nor consumer restarts, and every wait ends now. */
  halt(): void {
    this.stopping = true;
    this.waits.wakeAll();
  }

  /** Stops the consumer and disconnects, giving up at `deadline` (ms since 1970). */
  async close(deadline: number): Promise<void> {
    const closing = Promise.allSettled([this.consumer?.stop(), this.client?.close()]);
    this.consumer = undefined;
    this.producerReady = false;
    const started = Date.now();
    await withTimeout(closing, Math.max(100, deadline - Date.now()), 'disconnect').then(
      () =>
        this.options.log('info', 'disconnected from Kafka', {
          kafka: 'stopped',
          durationMs: Date.now() - started,
        }),
      () =>
        this.options.log('warn', 'disconnecting from Kafka took too long; going on', {
          kafka: 'stopped',
          durationMs: Date.now() - started,
        }),
    );
  }

  /** Retries {@link connectOnce} with backoff until it succeeds or {@link halt} is called. */
  private async connectLoop(onFailure: () => void): Promise<void> {
    let delay = this.options.retryInitialMs;
    while (!this.stopping) {
      try {
        await this.connectOnce();
        return;
      } catch (error) {
        if (this.stopping) return;
        this.options.log('warn', `cannot connect (${describe(error)}); retrying in ${delay} ms`, {
          kafka: 'unreachable',
          error: describe(error),
          retryInMs: delay,
        });
        onFailure();
        await this.waits.backoff(delay);
        delay = Math.min(delay * 2, this.options.retryMaxMs);
      }
    }
  }

  private async connectOnce(): Promise<void> {
    const started = Date.now();
    const { brokers, topics, sessionTimeoutMs } = this.options;
    // kafkajs is loaded here, on the first connect: never by an embedded broker.
    this.client ??=
      this.options.client ??
      (await createKafkajsClient({
        brokers: [...brokers],
        sessionTimeoutMs,
        logger: this.options.logger,
      }));
    await this.client.ensureTopics(topics);
    await this.options.prepare(this.client);
    await this.client.connectProducer();
    this.producerReady = true;
    await this.startConsumer();
    await this.untilCaughtUp(started + this.options.startTimeoutMs);
    this.joined = true;
    this.options.onConnected();
    const durationMs = Date.now() - started;
    const consuming = topics.map((t) => t.topic);
    this.options.log(
      'info',
      `connected to ${brokers.join(',')} in ${durationMs} ms; consuming ${consuming.join(', ')}`,
      { kafka: 'connected', brokers: brokers.join(','), durationMs, topics: consuming },
    );
  }

  /** Waits (until `deadline`) for the history read at start-up to reach the live end. */
  private async untilCaughtUp(deadline: number): Promise<void> {
    while (!this.options.caughtUp() && !this.stopping) {
      if (Date.now() > deadline) {
        this.options.log('warn', 'history not read back in time; resumes may be incomplete');
        return;
      }
      await this.waits.sleep(20);
    }
  }

  private async startConsumer(): Promise<void> {
    const generation = ++this.generation;
    const { groupBase, topics, sessionTimeoutMs } = this.options;
    const consumer = await this.requireClient().consume({
      // A name of its own per process start (and per restart after a crash): a client
      // that reads in a consumer group must not share one (it would split the records).
      groupId: generation === 1 ? groupBase : `${groupBase}-${generation}`,
      topics: topics.map((t) => t.topic),
      positions: this.options.positions,
      paused: this.options.paused,
      fetchMaxWaitMs: this.options.fetchMaxWaitMs,
      fetchIntervalMs: this.options.fetchIntervalMs,
      onRecords: this.options.onRecords,
      onPartitionEnd: this.options.onPartitionEnd,
      onCrash: (error) => this.onCrash(generation, error),
      joinTimeoutMs: Math.max(10_000, 2 * sessionTimeoutMs),
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
    this.options.log('error', `consumer stopped (${describe(error)}); restarting it`, {
      kafka: 'crashed',
      error: describe(error),
    });
    void this.restartConsumer(generation);
  }

  private async restartConsumer(crashed: number): Promise<void> {
    let generation = crashed;
    let delay = this.options.retryInitialMs;
    while (!this.stopping && generation === this.generation) {
      await this.waits.backoff(delay);
      if (this.stopping) return;
      try {
        await this.startConsumer();
        this.options.log('info', 'consumer restarted', { kafka: 'restarted' });
        return;
      } catch (restartError) {
        this.options.log('warn', `consumer restart failed (${describe(restartError)})`, {
          kafka: 'unreachable',
          error: describe(restartError),
        });
        delay = Math.min(delay * 2, this.options.retryMaxMs);
        // The failed start took a generation of its own: keep retrying as it.
        generation = this.generation;
      }
    }
  }
}

/** Sleeps that stop() cuts short, and backoffs that also end when Kafka is back. */
class Waits {
  private readonly sleepers = new Set<() => void>();
  private readonly backoffs = new Set<() => void>();

  /** Waits `ms`, or less when {@link wakeAll} is called. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      // A retry must never keep the process alive on its own.
      timer.unref();
      this.sleepers.add(wake);
    });
  }

  /** A {@link sleep} that also ends on {@link wakeBackoffs}. */
  async backoff(ms: number): Promise<void> {
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

  /** Kafka is back: every backoff ends now. */
  wakeBackoffs(): void {
    for (const wake of this.backoffs) wake();
  }

  /** stop(): every sleep (backoffs included) ends now. */
  wakeAll(): void {
    for (const wake of this.sleepers) wake();
  }
}
