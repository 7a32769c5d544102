/**
 * Cluster interest (`--kafka-interest subscribed`, docs/cluster-interest.md):
 * an instance fetches only the partitions of the topics topic that hold a
 * destination its sessions subscribe to. {@link InterestCounts} counts, per
 * partition, the destinations with local subscribers and lets a partition go
 * a linger after the last one left; {@link PartitionInterest} picks
 * partitions up from their live end (or, for a cold resume, from the resume's
 * position) and lets them go, through the one consumer's pause, resume and
 * seek.
 */
import type { ConsumedRecord, KafkaClient } from './kafka-client.js';
import { describe, type Log } from './notices.js';
import type { Offsets } from './offsets.js';
import { partitionFor } from './partitioner.js';

/** Which partitions of the topics topic an instance fetches. */
export type KafkaInterest = 'subscribed' | 'all';

/**
 * Destinations with local subscribers per partition; a partition nobody
 * wants any more is let go `lingerMs` later, unless wanted again meanwhile.
 */
export class InterestCounts {
  private readonly counts = new Map<number, number>();
  private readonly lingering = new Map<number, NodeJS.Timeout>();

  constructor(
    private readonly lingerMs: number,
    /** The linger of a partition ran out: stop fetching it. */
    private readonly release: (partition: number) => void,
  ) {}

  /** A destination of `partition` got its first local subscriber. */
  add(partition: number): void {
    this.counts.set(partition, (this.counts.get(partition) ?? 0) + 1);
    this.stopLinger(partition);
  }

  /** A destination of `partition` lost its last local subscriber. */
  remove(partition: number): void {
    const count = (this.counts.get(partition) ?? 0) - 1;
    if (count > 0) {
      this.counts.set(partition, count);
      return;
    }
    this.counts.delete(partition);
    this.linger(partition);
  }

  /**
   * Keeps a partition wanted for a linger without a subscriber: a pick-up
   * ahead of the subscription that caused it, which {@link add} then ends.
   */
  hold(partition: number): void {
    if (!this.counts.has(partition)) this.linger(partition);
  }

  /** Whether `partition` is wanted: it has subscribers or lingers. */
  wanted(partition: number): boolean {
    return this.counts.has(partition) || this.lingering.has(partition);
  }

  /** Destinations with local subscribers in `partition`. */
  count(partition: number): number {
    return this.counts.get(partition) ?? 0;
  }

  /** Ends every linger (at stop). */
  clear(): void {
    for (const timer of this.lingering.values()) clearTimeout(timer);
    this.lingering.clear();
  }

  private linger(partition: number): void {
    this.stopLinger(partition);
    const timer = setTimeout(() => {
      this.lingering.delete(partition);
      if (!this.counts.has(partition)) this.release(partition);
    }, this.lingerMs);
    timer.unref();
    this.lingering.set(partition, timer);
  }

  private stopLinger(partition: number): void {
    const timer = this.lingering.get(partition);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.lingering.delete(partition);
  }
}

/** What {@link PartitionInterest} does to the running consumer. */
export interface PartitionControl {
  pause(topic: string, partitions: number[]): void;
  resume(topic: string, partitions: number[]): void;
  /** The next record fetched from the partition is at `offset`. */
  seek(topic: string, partition: number, offset: bigint): void;
  /**
   * Optional: resolves when the consumer starts its next fetch (which asks for
   * every partition resumed before it), or after `timeoutMs`.
   */
  nextFetch?(timeoutMs: number): Promise<void>;
}

/**
 * Longest wait of a live pick-up for the fetch that includes the partition, ms:
 * the fetch in flight may wait up to its longest idle wait first.
 */
const NEXT_FETCH_TIMEOUT_MS = 500;

/** What {@link PartitionInterest} needs. */
export interface PartitionInterestOptions {
  /** The topics topic (destination = record key). */
  readonly topic: string;
  /** How long a partition nobody wants any more is still fetched, ms. */
  readonly lingerMs: number;
  /** How far back a cold resume reads, ms (`--history-max-age`). */
  readonly historyMaxAgeMs: number;
  /** The longest a cold resume waits for its read-back, ms. */
  readonly readBackTimeoutMs: number;
  /**
   * When set, every pick-up reads the partition back from this long ago, not
   * from its live end (the users topic: the mailboxes of its users), ms.
   */
  readonly pickUpHistoryMs?: number;
  /** The client, once connected. */
  readonly client: () => KafkaClient | undefined;
  /** The running consumer, if any. */
  readonly consumer: () => PartitionControl | undefined;
  readonly offsets: Offsets;
  readonly log: Log;
}

/** How soon a pick-up without a consumer (Kafka away) or that failed is tried again, ms. */
const RETRY_MS = 200;
/** The longest wait between pick-up attempts while Kafka fails, ms. */
const RETRY_MAX_MS = 5_000;

/**
 * Which partitions of the topics topic this instance fetches, and picking
 * them up and letting them go (docs/cluster-interest.md). Records of a
 * partition not read are dropped unread ({@link accepts}).
 */
export class PartitionInterest {
  private partitions: number | undefined;
  private readonly counts: InterestCounts;
  /** Partitions fetched now: seeked and resumed. */
  private readonly reading = new Set<number>();
  private readonly pending = new Map<number, Promise<void>>();
  /** Destinations with local subscribers, counted once the partition count is known. */
  private readonly destinations = new Set<string>();
  private stopped = false;

  constructor(private readonly options: PartitionInterestOptions) {
    this.counts = new InterestCounts(options.lingerMs, (p) => this.release(p));
  }

  /** The topic's partition count, learnt at each connect. */
  configure(partitions: number): void {
    if (this.partitions === partitions) return;
    if (this.partitions !== undefined) {
      // Destinations moved between partitions: per-destination order is not kept across it.
      this.options.log(
        'warn',
        `${this.options.topic} has ${partitions} partitions now (was ${this.partitions}); restart the instances`,
      );
      return;
    }
    this.partitions = partitions;
    // Subscriptions made before the first connect.
    for (const destination of this.destinations) {
      this.counts.add(partitionFor(destination, partitions));
    }
  }

  /** The partition of the topics topic `destination` travels in; undefined before the first connect. */
  partitionOf(destination: string): number | undefined {
    return this.partitions === undefined ? undefined : partitionFor(destination, this.partitions);
  }

  /** Whether the partitions of `topic` are fetched by interest (the topics topic). */
  governs(topic: string): boolean {
    return topic === this.options.topic;
  }

  /** Whether a fetched record is read: always, but for a partition of the topics topic not picked up. */
  accepts(record: Pick<ConsumedRecord, 'topic' | 'partition'>): boolean {
    return record.topic !== this.options.topic || this.reading.has(record.partition);
  }

  /** The partitions of the topics topic fetched now, in order. */
  readPartitions(): number[] {
    return [...this.reading].sort((a, b) => a - b);
  }

  /** Whether a partition of the topics topic is fetched now. */
  isReading(partition: number): boolean {
    return this.reading.has(partition);
  }

  /**
   * At a consumer start, before the first fetch: whether to pause this
   * partition. A partition wanted meanwhile (picked up while Kafka was away)
   * is read from the live end from now on.
   */
  pausedAtJoin(topic: string, partition: number): boolean {
    if (topic !== this.options.topic) return false;
    if (this.reading.has(partition)) return false;
    // Wanted but not picked up yet (a SUBSCRIBE before the consumer ran): paused here
    // and picked up from an end offset asked for explicitly. Left to the consumer, the
    // position would be the end at its first fetch, later than a RECEIPT already sent.
    if (this.counts.wanted(partition)) void this.pickUp(partition, undefined);
    return true;
  }

  /** Local interest in `destination` starts (first subscription) or ends (last one left). */
  interest(destination: string, on: boolean): void {
    if (on) this.destinations.add(destination);
    else this.destinations.delete(destination);
    const partition = this.partitionOf(destination);
    if (partition === undefined) return;
    if (!on) {
      this.counts.remove(partition);
      return;
    }
    this.counts.add(partition);
    if (!this.reading.has(partition)) void this.pickUp(partition, undefined);
  }

  /**
   * Makes `destination`'s records reach this instance: undefined when they
   * already do, else a promise that resolves once its partition is picked up
   * (and, with `resumeAfter`, the offset of the position a resume continues
   * after, once what it missed is read back). Never rejects.
   */
  reach(destination: string, resumeAfter: number | undefined): Promise<void> | undefined {
    const partition = this.partitionOf(destination);
    if (partition === undefined || this.stopped) return undefined;
    if (this.reading.has(partition) && !this.pending.has(partition)) {
      if (resumeAfter === undefined || this.covers(partition, resumeAfter)) return undefined;
      // Warm, but read only since after the position: what it missed is read back first.
      return this.bounded(this.refill(partition, resumeAfter));
    }
    // Wanted from now on, also while the subscription is on its way.
    this.counts.hold(partition);
    // Kafka away: the SUBSCRIBE is not held; the partition is picked up once it is back.
    // Connected with the consumer still joining: held like any pick-up.
    if (!this.options.client()) {
      void this.pickUp(partition, undefined);
      return undefined;
    }
    const picked = this.pickUp(partition, resumeAfter);
    // A pick-up already on its way may have started after the position.
    return this.bounded(
      resumeAfter === undefined ? picked : picked.then(() => this.refill(partition, resumeAfter)),
    );
  }

  /** Bounded: a SUBSCRIBE is not held longer than a read-back may take, Kafka failing or not. */
  private bounded(work: Promise<void>): Promise<void> {
    return Promise.race([work.catch(() => {}), sleep(this.options.readBackTimeoutMs)]);
  }

  /** Whether this instance has read `partition` since at or before the offset after `after`. */
  private covers(partition: number, after: number): boolean {
    const started = this.options.offsets.startedAt(this.options.topic, partition);
    return started === undefined || started <= BigInt(after) + 1n;
  }

  /**
   * A resume after offset `after` of a partition read since later: the live
   * consumer reads the partition again from `after + 1` (not before
   * `--history-max-age` ago) up to where it stands, as history (kept, not
   * delivered), then goes on live (docs/cluster-interest.md). Resolves once
   * read up to there, or at once when nothing can be read back.
   */
  private async refill(partition: number, after: number): Promise<void> {
    for (;;) {
      const pending = this.pending.get(partition);
      if (!pending) break;
      await pending;
    }
    if (this.stopped || !this.reading.has(partition) || this.covers(partition, after)) return;
    const work = this.refillNow(partition, after).finally(() => this.pending.delete(partition));
    this.pending.set(partition, work);
    await work;
  }

  private async refillNow(partition: number, after: number): Promise<void> {
    const { topic, offsets } = this.options;
    const client = this.options.client();
    if (!client) return;
    const oldest = Date.now() - this.options.historyMaxAgeMs;
    const aged = (await client.offsetsAt(topic, oldest)).get(partition) ?? 0n;
    const wanted = BigInt(after) + 1n;
    const from = wanted > aged ? wanted : aged;
    const started = offsets.startedAt(topic, partition);
    const consumer = this.options.consumer();
    const at = offsets.at(topic, partition);
    // Too old for Kafka within --history-max-age, or nothing missed: the replay says what it is.
    if (!consumer || started === undefined || at === undefined || from >= started) return;
    if (!this.reading.has(partition)) return;
    offsets.rewind(topic, partition, from, at);
    consumer.seek(topic, partition, from);
    await this.readBack(partition, at);
  }

  /** Stops picking up: pending pick-ups resolve, lingers end. */
  stop(): void {
    this.stopped = true;
    this.counts.clear();
  }

  private pickUp(partition: number, resumeAfter: number | undefined): Promise<void> {
    let pending = this.pending.get(partition);
    if (!pending) {
      pending = this.pickUpNow(partition, resumeAfter).finally(() =>
        this.pending.delete(partition),
      );
      this.pending.set(partition, pending);
    }
    return pending;
  }

  /** Picks the partition up, retrying with backoff while Kafka fails, as long as it is wanted. */
  private async pickUpNow(partition: number, resumeAfter: number | undefined): Promise<void> {
    let delay = RETRY_MS;
    while (!this.stopped && this.counts.wanted(partition) && !this.reading.has(partition)) {
      try {
        if (await this.tryPickUp(partition, resumeAfter)) return;
      } catch (error) {
        this.options.log(
          'warn',
          `picking up partition ${partition} failed (${describe(error)}); retrying in ${delay} ms`,
        );
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
      // Kafka away or failing: a retry picks it up, or the next consumer start (pausedAtJoin).
      await sleep(delay);
    }
  }

  /** One pick-up attempt; false when there is no client or consumer to do it with. */
  private async tryPickUp(partition: number, resumeAfter: number | undefined): Promise<boolean> {
    const { topic, offsets } = this.options;
    const client = this.options.client();
    if (!client || !this.options.consumer()) return false;
    const end = (await client.latestOffsets(topic)).get(partition) ?? 0n;
    let from = end;
    const { pickUpHistoryMs } = this.options;
    if (pickUpHistoryMs !== undefined) {
      from = (await client.offsetsAt(topic, Date.now() - pickUpHistoryMs)).get(partition) ?? end;
      if (from > end) from = end;
    } else if (resumeAfter !== undefined) {
      const oldest = Date.now() - this.options.historyMaxAgeMs;
      const aged = (await client.offsetsAt(topic, oldest)).get(partition) ?? end;
      const after = BigInt(resumeAfter) + 1n;
      from = after > aged ? after : aged;
      if (from > end) from = end;
    }
    const consumer = this.options.consumer();
    if (!consumer) return false;
    // Picked up meanwhile (a consumer start read it): done.
    if (this.reading.has(partition)) return true;
    consumer.seek(topic, partition, from);
    consumer.resume(topic, [partition]);
    offsets.readFrom(topic, partition, from, end);
    this.reading.add(partition);
    if (from < end) await this.readBack(partition, end);
    // A fetch in flight does not ask for the partition: the SUBSCRIBE is answered once one
    // that does is under way, so a message sent after its RECEIPT comes with the usual
    // cross-instance latency rather than after that fetch's idle wait.
    else await consumer.nextFetch?.(NEXT_FETCH_TIMEOUT_MS);
    return true;
  }

  /** Waits (bounded) until the partition has been read up to `end`. */
  private async readBack(partition: number, end: bigint): Promise<void> {
    const deadline = Date.now() + this.options.readBackTimeoutMs;
    while ((this.options.offsets.at(this.options.topic, partition) ?? 0n) < end) {
      if (this.stopped || !this.reading.has(partition)) return;
      if (Date.now() > deadline) {
        this.options.log('warn', `reading back partition ${partition} took too long`);
        return;
      }
      await sleep(10);
    }
  }

  private release(partition: number): void {
    if (this.pending.has(partition) || !this.reading.has(partition)) return;
    this.reading.delete(partition);
    this.options.offsets.pausing(this.options.topic, partition);
    try {
      this.options.consumer()?.pause(this.options.topic, [partition]);
    } catch (error) {
      this.options.log('warn', `pausing partition ${partition} failed (${describe(error)})`);
    }
  }
}

/** Records fetched from Kafka per topic and partition: what Kafka served this instance. */
export class FetchCounts {
  private readonly byTopic = new Map<string, number[]>();

  /** Counts `n` fetched records of one partition (default one). */
  add(topic: string, partition: number, n = 1): void {
    let counts = this.byTopic.get(topic);
    if (!counts) {
      counts = [];
      this.byTopic.set(topic, counts);
    }
    counts[partition] = (counts[partition] ?? 0) + n;
  }

  /** Records fetched per topic, all partitions together. */
  byTopicTotals(): Map<string, number> {
    const totals = new Map<string, number>();
    for (const topic of this.byTopic.keys()) totals.set(topic, this.of(topic));
    return totals;
  }

  /** Records fetched of `topic` (of one partition, or all of them). */
  of(topic: string, partition?: number): number {
    const counts = this.byTopic.get(topic) ?? [];
    if (partition !== undefined) return counts[partition] ?? 0;
    let total = 0;
    for (const n of counts) total += n ?? 0;
    return total;
  }

  /** Every count: topic → records fetched per partition. */
  snapshot(): Record<string, number[]> {
    const all: Record<string, number[]> = {};
    for (const [topic, counts] of this.byTopic) all[topic] = Array.from(counts, (n) => n ?? 0);
    return all;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
