/**
 * Which instance owns which partition of the queues topic: every instance is
 * a member of one consumer group on it (`<topic>.queue-owners`), and the
 * group's assignment is the lease. Kafka moves a partition to a surviving
 * member when its owner dies or leaves (after the group's session timeout);
 * the new owner rebuilds the partition's queues from the group's committed
 * offset, which each owner keeps at the oldest record its state still needs
 * (docs/cluster-queues.md).
 */
import type {
  ConsumedRecord,
  KafkaClient,
  ProducedRecord,
  SharedConsumer,
} from './kafka-client.js';
import { describe, type Log } from './notices.js';
import { OwnedPartition, type OwnerCounters, type OwnerPolicy } from './queue-owner.js';
import { decodeQueueRecord, type QueueRecords } from './queue-records.js';

/** How often owners look at the clock (consumers gone quiet, messages too old), ms. */
const TICK_MS = 500;
/** How often owners commit where a successor would start, ms. */
const COMMIT_MS = 2_000;

/** What a {@link QueueOwnership} needs. */
export interface QueueOwnershipOptions {
  readonly groupId: string;
  readonly records: QueueRecords;
  readonly policy: OwnerPolicy;
  /** The connected client, or undefined while Kafka is away. */
  readonly client: () => KafkaClient | undefined;
  /** Produces what an owner decided (in order, retried). */
  readonly produce: (record: ProducedRecord) => void;
  readonly log: Log;
  readonly joinTimeoutMs: number;
}

/** This instance's share of the queue owners' group and the partitions it owns now. */
export class QueueOwnership {
  readonly counters: OwnerCounters = { assigned: 0, redelivered: 0, deadLettered: 0 };
  private readonly owned = new Map<number, OwnedPartition>();
  /** Where each owned partition's catch-up ends (its end when it was assigned). */
  private readonly targets = new Map<number, bigint>();
  private consumer: SharedConsumer | undefined;
  private starting: Promise<void> | undefined;
  /** Counts assignments: a lookup for an older one is dropped. */
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastCommit = 0;
  private stopped = false;

  constructor(private readonly options: QueueOwnershipOptions) {}

  /** The partitions owned now and caught up (for tests, metrics and the console). */
  ownedPartitions(): number[] {
    return [...this.owned.values()]
      .filter((p) => p.live)
      .map((p) => p.partition)
      .sort((a, b) => a - b);
  }

  /** Messages waiting in `queue` if this instance owns its partition; else undefined. */
  depth(queue: string): number | undefined {
    const state = this.owned.get(this.options.records.partitionOf(queue));
    return state?.live ? state.depth(queue) : undefined;
  }

  /** Every owned queue with its figures. */
  *queues(): Iterable<{ queue: string; depth: number; held: number; consumers: number }> {
    for (const state of this.owned.values()) if (state.live) yield* state.stats();
  }

  /** Joins the group (Kafka connected); a crashed member rejoins until stop(). */
  start(): void {
    if (this.stopped || this.consumer || this.starting) return;
    this.starting = this.join().finally(() => {
      this.starting = undefined;
    });
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), TICK_MS);
      this.timer.unref();
    }
  }

  /** Commits what it can and leaves the group: the partitions go to the others at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.starting?.catch(() => {});
    const consumer = this.consumer;
    this.consumer = undefined;
    if (!consumer) return;
    await this.commit(consumer).catch(() => {});
    this.owned.clear();
    await consumer.stop();
  }

  private async join(): Promise<void> {
    const client = this.options.client();
    if (!client?.consumeShared) return;
    try {
      const consumer = await client.consumeShared({
        groupId: this.options.groupId,
        topic: this.options.records.topic,
        onAssigned: (partitions) => this.assigned(partitions),
        onRebalancing: () => this.rebalancing(),
        onRecords: (records) => this.onRecords(records),
        onCrash: (error) => this.crashed(error),
        joinTimeoutMs: this.options.joinTimeoutMs,
      });
      if (this.stopped) await consumer.stop();
      else this.consumer = consumer;
    } catch (error) {
      this.options.log(
        'warn',
        `could not join the queue owners' group (${describe(error)}); trying again`,
      );
      this.retryLater();
    }
  }

  private crashed(error: Error): void {
    this.options.log('warn', `the queue owners' consumer stopped (${describe(error)}); rejoining`);
    const consumer = this.consumer;
    this.consumer = undefined;
    this.owned.clear();
    void consumer?.stop();
    this.retryLater();
  }

  private retryLater(): void {
    if (this.stopped) return;
    setTimeout(() => this.start(), 1_000).unref();
  }

  /** A rebalance starts: stop deciding at once (another member may own these next). */
  private rebalancing(): void {
    this.generation++;
    const consumer = this.consumer;
    if (consumer) void this.commit(consumer).catch(() => {});
    this.owned.clear();
    this.targets.clear();
  }

  /** The partitions this member owns now: each is rebuilt from the group's committed offset. */
  private assigned(partitions: number[]): void {
    const generation = ++this.generation;
    this.owned.clear();
    this.targets.clear();
    if (partitions.length > 0) void this.rebuild(generation, partitions);
  }

  private async rebuild(generation: number, partitions: number[]): Promise<void> {
    for (let attempt = 0; generation === this.generation && !this.stopped; attempt++) {
      const client = this.options.client();
      try {
        if (!client?.groupOffsets) throw new Error('not connected');
        const offsets = await client.groupOffsets(this.options.groupId, this.options.records.topic);
        if (generation !== this.generation) return;
        const now = Date.now();
        for (const partition of partitions) {
          const bounds = offsets.get(partition);
          if (!bounds) continue;
          const committed = bounds.committed;
          const start = committed !== undefined && committed >= bounds.low ? committed : bounds.low;
          const state = new OwnedPartition(
            partition,
            start,
            this.options.policy,
            this.options.records,
            this.options.produce,
            this.counters,
          );
          this.owned.set(partition, state);
          this.targets.set(partition, bounds.high);
          this.consumer?.seek(partition, start);
          if (start >= bounds.high) state.goLive(now);
        }
        return;
      } catch (error) {
        if (attempt === 0) {
          this.options.log('warn', `could not read the queue owners' offsets (${describe(error)})`);
        }
        await new Promise((resolve) => setTimeout(resolve, 500).unref());
      }
    }
  }

  private onRecords(records: ConsumedRecord[]): void {
    const first = records[0];
    if (!first) return;
    const state = this.owned.get(first.partition);
    // Not owned (any more), or its rebuild has not started: the seek fetches it again.
    if (!state) return;
    for (const record of records) {
      const offset = BigInt(record.offset);
      const op = decodeQueueRecord(record);
      if (op) state.apply(op, offset, record.timestamp);
      else if (offset >= state.next) state.next = offset + 1n;
    }
    const target = this.targets.get(first.partition);
    if (!state.live && target !== undefined && state.next >= target) state.goLive(Date.now());
  }

  private tick(): void {
    const now = Date.now();
    for (const state of this.owned.values()) state.tick(now);
    const consumer = this.consumer;
    if (consumer && now - this.lastCommit >= COMMIT_MS) {
      this.lastCommit = now;
      void this.commit(consumer).catch(() => {});
    }
  }

  /** Commits, for every partition owned and caught up, the oldest offset its state needs. */
  private async commit(consumer: SharedConsumer): Promise<void> {
    const offsets = new Map<number, bigint>();
    for (const state of this.owned.values()) {
      if (state.live) offsets.set(state.partition, state.lowWatermark());
    }
    if (offsets.size > 0) await consumer.commit(offsets);
  }
}
