/**
 * An in-memory {@link KafkaClient} for unit specs of cluster mode: topics of
 * partitions of records with offsets and timestamps, consumers that seek to
 * `positions()` on joining and get batches asynchronously, in order per
 * partition, and switches to make Kafka unreachable, slow, lose the answer to
 * a produce request or crash a consumer.
 *
 * A double beside the e2e specs on a real Kafka (spec/e2e/cluster*.spec.ts),
 * never instead of them: it knows nothing of rebalances, acks, leaders or
 * kafkajs's own retries.
 */
import type {
  ConsumedRecord,
  ConsumeOptions,
  KafkaClient,
  KafkaConsumer,
  Positions,
  ProducedRecord,
  TopicSpec,
} from '../../src/cluster/kafka-client.js';
import { partitionFor as javaPartitionFor } from '../../src/cluster/partitioner.js';

/** A record written straight to a topic, as a plain Kafka producer would. */
export interface AppendedRecord {
  readonly key?: string | null;
  readonly value?: string | Buffer;
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  /** Default: the partition of `key` (round robin without a key). */
  readonly partition?: number;
  /** Default: now. */
  readonly timestamp?: number;
}

/** One Kafka cluster in memory; pass it as `client` to every `KafkaFanout` of a spec. */
export class MemoryKafka implements KafkaClient {
  /** Every produce request, in the order they were made. */
  readonly requests: ProducedRecord[][] = [];
  /** Every consumer group ever joined, in order. */
  readonly groups: string[] = [];
  /** Most produce requests that were in flight at once. */
  maxInFlight = 0;
  /** How often close() was called (each fan-out closes its client on stop). */
  closed = 0;
  private readonly topics = new Map<string, ConsumedRecord[][]>();
  private readonly consumers = new Set<MemoryConsumer>();
  private readonly roundRobin = new Map<string, number>();
  private inFlight = 0;
  private down: Error | undefined;
  private held: Promise<void> | undefined;
  private release: (() => void) | undefined;
  private paused = false;
  private answersToLose = 0;

  // ---- switches for specs ----

  /** Makes every call fail with `error` until {@link recover}: Kafka is unreachable. */
  fail(error = new Error('memory Kafka is unreachable')): void {
    this.down = error;
  }

  /** Kafka is reachable again. */
  recover(): void {
    this.down = undefined;
  }

  /** Holds every produce request (made now or later) until the returned function is called. */
  holdProduce(): () => void {
    if (!this.held) {
      this.held = new Promise<void>((resolve) => {
        this.release = () => {
          this.held = undefined;
          resolve();
        };
      });
    }
    return () => this.release?.();
  }

  /**
   * The next `count` produce requests are written, then fail as if their
   * answer was lost (Kafka stopped right after writing, the connection broke).
   */
  loseAnswers(count: number): void {
    this.answersToLose = count;
  }

  /** Stops (or resumes) handing records to consumers, as a Kafka too slow to fetch from would. */
  pauseDelivery(paused = true): void {
    this.paused = paused;
    if (!paused) for (const consumer of this.consumers) consumer.wake();
  }

  /** Crashes the running consumers whose group starts with `groupPrefix` (all by default). */
  crashConsumers(groupPrefix = '', error = new Error('memory consumer crashed')): void {
    for (const consumer of [...this.consumers]) {
      if (consumer.groupId.startsWith(groupPrefix)) consumer.crash(error);
    }
  }

  /** Makes every running consumer fetch every record again from offset 0, as after a lost seek. */
  refetch(): void {
    for (const consumer of this.consumers) consumer.rewind();
  }

  /**
   * Makes every running consumer jump over the next `count` records of a
   * partition, as a client that fetched from a wrong offset would: they are
   * in Kafka, but never handed out.
   */
  skip(topic: string, partition: number, count = 1): void {
    for (const consumer of this.consumers) consumer.skip(topic, partition, count);
  }

  /** Writes a record straight to `topic` (which must exist), bypassing any fan-out. */
  append(topic: string, record: AppendedRecord = {}): ConsumedRecord {
    const key = record.key ?? null;
    const partition = record.partition ?? this.partitionFor(topic, key);
    const stored = this.store(topic, partition, {
      key: key === null ? null : Buffer.from(key),
      value: Buffer.from(record.value ?? ''),
      timestamp: record.timestamp ?? Date.now(),
      headers: (record.headers ?? []).map(([n, v]) => [n, Buffer.from(v)] as const),
    });
    this.wakeConsumers();
    return stored;
  }

  /** Every record of `topic`, partition after partition. */
  records(topic: string): ConsumedRecord[] {
    return (this.topics.get(topic) ?? []).flat();
  }

  /**
   * The partition a key goes to: Kafka's default partitioner (murmur2, as the
   * producer places records and as cluster interest and read-your-writes
   * compute it); round robin without a key.
   */
  partitionFor(topic: string, key: string | null): number {
    const count = this.partitionsOf(topic).length;
    if (key === null) {
      const next = this.roundRobin.get(topic) ?? 0;
      this.roundRobin.set(topic, next + 1);
      return next % count;
    }
    return javaPartitionFor(key, count);
  }

  // ---- KafkaClient ----

  async ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
    this.check();
    for (const { topic, partitions } of topics) {
      if (!this.topics.has(topic))
        this.topics.set(
          topic,
          Array.from({ length: partitions }, () => []),
        );
    }
  }

  async latestOffsets(topic: string): Promise<Positions> {
    this.check();
    return new Map(this.partitionsOf(topic).map((records, p) => [p, BigInt(records.length)]));
  }

  async offsetsAt(topic: string, timestamp: number): Promise<Positions> {
    this.check();
    return new Map(
      this.partitionsOf(topic).map((records, p) => {
        const at = records.findIndex((r) => r.timestamp >= timestamp);
        return [p, BigInt(at < 0 ? records.length : at)];
      }),
    );
  }

  async connectProducer(): Promise<void> {
    this.check();
  }

  async produce(records: readonly ProducedRecord[]): Promise<void> {
    this.check();
    this.requests.push([...records]);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await this.held;
      this.check();
      const now = Date.now();
      for (const record of records) {
        this.store(
          record.topic,
          this.partitionFor(record.topic, record.partitionKey ?? record.key),
          {
            key: record.key === null ? null : Buffer.from(record.key),
            value: Buffer.from(record.value),
            timestamp: now,
            headers: record.headers.map(([n, v]) => [n, Buffer.from(v)] as const),
          },
        );
      }
      this.wakeConsumers();
      if (this.answersToLose > 0) {
        this.answersToLose--;
        throw new Error('memory Kafka: the answer to a produce request was lost');
      }
    } finally {
      this.inFlight--;
    }
  }

  async consume(options: ConsumeOptions): Promise<KafkaConsumer> {
    this.check();
    for (const topic of options.topics) this.partitionsOf(topic);
    for (const consumer of this.consumers) {
      // A shared group would split the records instead of fanning them out.
      if (consumer.groupId === options.groupId)
        throw new Error(`group ${options.groupId} is in use`);
    }
    const consumer = new MemoryConsumer(this, options, () => this.consumers.delete(consumer));
    this.groups.push(options.groupId);
    this.consumers.add(consumer);
    consumer.wake();
    return consumer;
  }

  async close(): Promise<void> {
    this.closed++;
  }

  // ---- for MemoryConsumer ----

  /** The partitions of `topic`; throws for a topic that does not exist. */
  partitionsOf(topic: string): ConsumedRecord[][] {
    const partitions = this.topics.get(topic);
    if (!partitions) throw new Error(`memory Kafka: no topic ${topic}`);
    return partitions;
  }

  /** Whether consumers get records now. */
  get delivering(): boolean {
    return !this.paused;
  }

  private check(): void {
    if (this.down) throw this.down;
  }

  private store(
    topic: string,
    partition: number,
    record: Pick<ConsumedRecord, 'key' | 'value' | 'timestamp' | 'headers'>,
  ): ConsumedRecord {
    const records = this.partitionsOf(topic)[partition];
    if (!records) throw new Error(`memory Kafka: no partition ${partition} of ${topic}`);
    const stored = { topic, partition, offset: String(records.length), ...record };
    records.push(stored);
    return stored;
  }

  private wakeConsumers(): void {
    for (const consumer of this.consumers) consumer.wake();
  }
}

/** Most records of one partition in one batch, so that a long backlog comes in several. */
const MAX_BATCH = 50;

/** A consumer of its own group: gets every partition of its topics. */
class MemoryConsumer implements KafkaConsumer {
  readonly groupId: string;
  /** The next offset to hand out per topic and partition. */
  private readonly cursors = new Map<string, Map<number, bigint>>();
  private running = true;
  private scheduled = false;

  constructor(
    private readonly kafka: MemoryKafka,
    private readonly options: ConsumeOptions,
    private readonly left: () => void,
  ) {
    this.groupId = options.groupId;
    this.join();
  }

  /** As kafkajs on GROUP_JOIN: seek to the given positions, the rest starts at the end. */
  private join(): void {
    const positions = this.options.positions();
    for (const topic of this.options.topics) {
      const cursors = new Map<number, bigint>();
      this.kafka.partitionsOf(topic).forEach((records, partition) => {
        cursors.set(partition, positions.get(topic)?.get(partition) ?? BigInt(records.length));
      });
      this.cursors.set(topic, cursors);
    }
  }

  /** Fetches again from offset 0 everywhere. */
  rewind(): void {
    for (const cursors of this.cursors.values()) for (const p of cursors.keys()) cursors.set(p, 0n);
    this.wake();
  }

  /** The next record handed out of the partition is at `offset` (as kafkajs' seek). */
  seek(topic: string, partition: number, offset: bigint): void {
    this.cursors.get(topic)?.set(partition, offset);
    this.wake();
  }

  /** Moves the cursor of one partition `count` records on. */
  skip(topic: string, partition: number, count: number): void {
    const cursors = this.cursors.get(topic);
    const at = cursors?.get(partition);
    if (cursors && at !== undefined) cursors.set(partition, at + BigInt(count));
  }

  /** New records may be there: hand them out soon (never synchronously, as a real fetch). */
  wake(): void {
    if (this.scheduled || !this.running) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.fetch();
    });
  }

  crash(error: Error): void {
    this.leave();
    this.options.onCrash(error);
  }

  async stop(): Promise<void> {
    this.leave();
  }

  private leave(): void {
    this.running = false;
    this.left();
  }

  /** One batch per partition that has records to hand out, partition after partition. */
  private fetch(): void {
    if (!this.running || !this.kafka.delivering) return;
    let more = false;
    for (const [topic, cursors] of this.cursors) {
      this.kafka.partitionsOf(topic).forEach((records, partition) => {
        const from = cursors.get(partition) ?? 0n;
        const batch = records.slice(Number(from), Number(from) + MAX_BATCH);
        if (batch.length === 0 || !this.running) return;
        cursors.set(partition, from + BigInt(batch.length));
        more ||= Number(from) + batch.length < records.length;
        this.options.onRecords(batch);
      });
    }
    if (more) this.wake();
  }
}
