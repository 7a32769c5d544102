/**
 * Cluster-wide queues on the queues topic (docs/cluster-queues.md), the
 * {@link SharedQueues} of `KafkaFanout`: what this instance's sessions do
 * with queues becomes records (send, join, leave, ack, nack, and a heart-beat
 * per partition listing its consumers), the owner of the queue's partition
 * (any instance: {@link QueueOwnership}) decides who gets each message, and
 * the `assign` records naming a consumer here are handed to the broker.
 */

import type { Outgoing } from '../broker/message.js';
import { createMessage } from '../broker/message.js';
import type { FanoutSink, SharedQueues } from '../broker/seams.js';
import { Duplicates } from './duplicates.js';
import type { ConsumedRecord, KafkaClient, ProducedRecord } from './kafka-client.js';
import type { Log } from './notices.js';
import type { OwnerPolicy } from './queue-owner.js';
import { QueueOwnership } from './queue-ownership.js';
import {
  assignedTo,
  type ConsumerInfo,
  decodeQueueRecord,
  opOf,
  QueueRecords,
} from './queue-records.js';

/** How long an owner's "full" holds without being said again, ms (it says it every second). */
const FULL_FOR_MS = 5_000;

/** What a {@link ClusterQueues} needs from the fan-out. */
export interface ClusterQueuesOptions {
  readonly instanceId: string;
  /** The queues topic. */
  readonly topic: string;
  /** The owners' consumer group. */
  readonly groupId: string;
  readonly policy: OwnerPolicy;
  /** How often this instance says its consumers are alive, ms. */
  readonly aliveIntervalMs: number;
  readonly client: () => KafkaClient | undefined;
  /** Produces in order (retried while Kafka is away); resolves once Kafka has it. */
  readonly produce: (record: ProducedRecord) => Promise<void>;
  readonly log: Log;
  readonly warnOnce: (key: string, message: string) => void;
  readonly joinTimeoutMs: number;
}

/** This instance's side of the cluster-wide queues. */
export class ClusterQueues implements SharedQueues {
  /** Local consumers by id. */
  private readonly locals = new Map<string, ConsumerInfo>();
  /** Queues their owner said are full, until when (ms since 1970): refreshed every second while full. */
  private readonly fullUntil = new Map<string, number>();
  /** Partitions this instance had consumers in at its last heart-beat. */
  private lastAlive = new Set<number>();
  private records: QueueRecords | undefined;
  private ownership: QueueOwnership | undefined;
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  /** Assignments read twice (a retried produce of the owner): delivered once. */
  private readonly assignments = new Duplicates();
  private sink: Pick<FanoutSink, 'assigned'> = {};

  constructor(private readonly options: ClusterQueuesOptions) {}

  /** The broker to hand assigned messages to. */
  attach(sink: Pick<FanoutSink, 'assigned'>): void {
    this.sink = sink;
  }

  /**
   * Kafka connected and the queues topic's partitions counted: heart-beats
   * start and this instance joins the owners' group.
   */
  connected(partitions: number): void {
    if (!this.records || this.records.partitions !== partitions) {
      this.records = new QueueRecords(this.options.topic, partitions);
    }
    const records = this.records;
    this.ownership ??= new QueueOwnership({
      groupId: this.options.groupId,
      records,
      policy: this.options.policy,
      client: this.options.client,
      produce: (record) => this.push(record),
      log: this.options.log,
      joinTimeoutMs: this.options.joinTimeoutMs,
    });
    this.ownership.start();
    if (!this.timer) {
      this.timer = setInterval(() => this.alive(), this.options.aliveIntervalMs);
      this.timer.unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.ownership?.stop();
  }

  /** The partitions of the queues topic this instance owns now. */
  ownedPartitions(): number[] {
    return this.ownership?.ownedPartitions() ?? [];
  }

  /** What the owners here count: messages given out, given out again, dead-lettered. */
  get counters(): { assigned: number; redelivered: number; deadLettered: number } {
    return this.ownership?.counters ?? { assigned: 0, redelivered: 0, deadLettered: 0 };
  }

  consumerId(): string {
    return `${this.options.instanceId}/${++this.seq}`;
  }

  send(message: Outgoing): Promise<void> {
    return this.produce(this.requireRecords().send(message));
  }

  join(queue: string, consumer: string, credit: number): void {
    const info = { consumer, instance: this.options.instanceId, queue, credit };
    this.locals.set(consumer, info);
    this.push(this.requireRecords().join(info));
  }

  leave(queue: string, consumer: string): void {
    if (!this.locals.delete(consumer)) return;
    this.push(this.requireRecords().leave(queue, consumer));
  }

  settle(
    queue: string,
    consumer: string,
    ids: readonly string[],
    consumed: boolean,
  ): Promise<void> {
    return this.produce(this.requireRecords().settle(queue, consumer, ids, consumed));
  }

  depth(queue: string): number | undefined {
    return this.ownership?.depth(queue);
  }

  full(queue: string): boolean {
    if (this.fullUntil.size === 0) return false;
    const until = this.fullUntil.get(queue);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.fullUntil.delete(queue);
    return false;
  }

  /**
   * A record of the queues topic read by this instance's consumer: an
   * `assign` for a consumer here is delivered, a `full` noted.
   */
  onRecord(record: ConsumedRecord): void {
    const kind = opOf(record);
    if (kind === 'full') {
      const op = decodeQueueRecord(record);
      if (op?.op !== 'full') return;
      if (op.full) this.fullUntil.set(op.queue, Date.now() + FULL_FOR_MS);
      else this.fullUntil.delete(op.queue);
      return;
    }
    if (kind !== 'assign') return;
    const consumer = assignedTo(record);
    if (!consumer || !this.locals.has(consumer)) return;
    const op = decodeQueueRecord(record);
    if (op?.op !== 'assign') return;
    const key = `${op.message.id}/${op.deliveries}`;
    if (this.assignments.repeated(record.topic, record.partition, key)) return;
    const message = createMessage(op.message, undefined, record.timestamp);
    this.sink.assigned?.(op.queue, consumer, message, op.deliveries);
  }

  /** Says, in every partition where this instance has consumers (or just had), which ones. */
  private alive(): void {
    const records = this.records;
    if (!records) return;
    const byPartition = new Map<number, ConsumerInfo[]>();
    for (const info of this.locals.values()) {
      const partition = records.partitionOf(info.queue);
      let list = byPartition.get(partition);
      if (!list) {
        list = [];
        byPartition.set(partition, list);
      }
      list.push(info);
    }
    for (const partition of this.lastAlive)
      if (!byPartition.has(partition)) byPartition.set(partition, []);
    for (const [partition, list] of byPartition) {
      this.push(records.alive(partition, this.options.instanceId, list));
    }
    this.lastAlive = new Set(
      [...byPartition].filter(([, list]) => list.length > 0).map(([p]) => p),
    );
  }

  private requireRecords(): QueueRecords {
    // Before the first connect the partition count is not known; records are keyed
    // by queue name, so any count works for them (only the heart-beats need the real one).
    this.records ??= new QueueRecords(this.options.topic, 1);
    return this.records;
  }

  private produce(record: ProducedRecord): Promise<void> {
    const result = this.options.produce(record);
    result.catch(() => {});
    return result;
  }

  /** Produces without a caller waiting: a failure is logged once per kind. */
  private push(record: ProducedRecord): void {
    this.options.produce(record).catch((error: unknown) => {
      this.options.warnOnce(
        `queue:${String(error)}`,
        `could not write a queue record (${String(error)}); queue state may lag until Kafka is back`,
      );
    });
  }
}
