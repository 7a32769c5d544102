/**
 * Where this instance stands in every Kafka partition it reads. Offsets are
 * never committed to Kafka: they are remembered here and every consumer start
 * reads from them, so a consumer restarted after a crash
 * neither skips nor repeats records, and a record fetched again is known.
 *
 * The same bookkeeping says what this instance can vouch for on a resume: it
 * has seen every record of a partition from where it started reading (its
 * history, read back at start-up) on, once it has read up to where live
 * traffic began.
 */
import type { PartitionLag } from '../broker/seams.js';
import type { ConsumedRecord, KafkaClient, Positions } from './kafka-client.js';

/** How a topic is read at the first connect. */
export interface ReadFrom {
  readonly topic: string;
  /** How far back its history is read, ms; undefined: from the live end only. */
  readonly historyMs: number | undefined;
}

/** What a fetched record is to this instance (see {@link Offsets.advance}). */
export type Fetched = 'seen' | 'history' | 'live' | 'gap';

/** How many times a gap is fetched again from its start before it is taken as it is. */
export const GAP_REFETCHES = 3;

/** A gap in a partition fetched again from `from`: how often, and in which batch last. */
interface GapRefetch {
  readonly from: bigint;
  readonly times: number;
  readonly batch: number;
}

/** What {@link Offsets} is told about the topics it reads. */
export interface OffsetsOptions {
  /**
   * Whether every offset of `topic` holds a record a consumer gets (only
   * our own non-transactional producer writes it): a gap there means records
   * were skipped. Default: every topic. A topic where outside producers
   * commit transactions has markers a consumer never sees: not gapless.
   */
  readonly gapless?: (topic: string) => boolean;
  /** A gapless topic's partition jumped from `next` to `offset`: what lay between was not read. */
  readonly onGap?: (topic: string, partition: number, next: bigint, offset: bigint) => void;
  /**
   * Asks the consumer to fetch `partition` of `topic` again from `offset`
   * (a gap's start); false when it cannot (no consumer now).
   */
  readonly refetch?: (topic: string, partition: number, offset: bigint) => boolean;
}

/** Positions per topic and partition: next to read, where reading started, where live began. */
export class Offsets {
  /** The next offset to read per topic and partition. */
  private readonly positions = new Map<string, Positions>();
  /** Where reading started per topic (history included): resumes from before it are incomplete. */
  private readonly startedFrom = new Map<string, Positions>();
  /** The end of each partition at the first connect: records before it are history. */
  private readonly liveFrom = new Map<string, Positions>();
  /** The end of each partition as of its last fetch (the consumer lag's other side). */
  private readonly ends = new Map<string, Positions>();
  /** By `<topic> <partition>`: a gap being fetched again (none, nearly always). */
  private readonly refetching = new Map<string, GapRefetch>();
  /** Counts fetched batches ({@link batchStart}): a stale batch is one batch. */
  private batch = 0;

  constructor(private readonly options: OffsetsOptions = {}) {}

  /** The next offset to read per topic and partition: where every consumer start reads from. */
  get next(): ReadonlyMap<string, Positions> {
    return this.positions;
  }

  /**
   * Finds where the topics not read yet start: `historyMs` back, and where
   * live traffic begins (the end now). A reconnect keeps what it had, so it
   * goes on where delivery left off.
   */
  async readStart(client: KafkaClient, topics: readonly ReadFrom[]): Promise<void> {
    const now = Date.now();
    for (const { topic, historyMs } of topics) {
      if (this.positions.has(topic)) continue;
      const live = await client.latestOffsets(topic);
      const from = historyMs === undefined ? live : await client.offsetsAt(topic, now - historyMs);
      this.liveFrom.set(topic, live);
      this.startedFrom.set(topic, new Map(from));
      this.positions.set(topic, new Map(from));
    }
  }

  /** The next offset to read of one partition; undefined when not known. */
  at(topic: string, partition: number): bigint | undefined {
    return this.positions.get(topic)?.get(partition);
  }

  /**
   * Reads `partition` of `topic` from `from` on (a pick-up by cluster
   * interest), with live traffic from `live` on: records before it are
   * history. What was read before counts on only when reading goes on
   * without a gap (`from` not after where reading stopped).
   */
  readFrom(topic: string, partition: number, from: bigint, live: bigint): void {
    const positions = this.mapOf(this.positions, topic);
    const started = this.mapOf(this.startedFrom, topic);
    const next = positions.get(partition);
    if (next === undefined || !started.has(partition) || from > next) started.set(partition, from);
    positions.set(partition, from);
    this.mapOf(this.liveFrom, topic).set(partition, live);
  }

  /** Where reading `partition` of `topic` started (what this instance vouches from); undefined when not known. */
  startedAt(topic: string, partition: number): bigint | undefined {
    return this.startedFrom.get(topic)?.get(partition);
  }

  /**
   * Reads `partition` of `topic` again from `from`, before where reading
   * started (a resume from before it): the records up to `live`, where
   * reading stands now, are history; once they are read this instance
   * vouches from `from`.
   */
  rewind(topic: string, partition: number, from: bigint, live: bigint): void {
    this.mapOf(this.positions, topic).set(partition, from);
    this.mapOf(this.startedFrom, topic).set(partition, from);
    this.mapOf(this.liveFrom, topic).set(partition, live);
  }

  /** Nothing is known of `partition` any more: the next record fetched starts it. */
  forget(topic: string, partition: number): void {
    this.positions.get(topic)?.delete(partition);
    this.startedFrom.get(topic)?.delete(partition);
    this.liveFrom.get(topic)?.delete(partition);
  }

  /**
   * `partition` is no longer fetched: a read-back it was in the middle of is
   * abandoned (this instance cannot vouch for it), the rest is kept so that
   * a pick-up without a gap goes on from it.
   */
  pausing(topic: string, partition: number): void {
    const at = this.positions.get(topic)?.get(partition);
    const live = this.liveFrom.get(topic)?.get(partition);
    if (at !== undefined && live !== undefined && at < live) this.forget(topic, partition);
  }

  private mapOf(maps: Map<string, Positions>, topic: string): Positions {
    let positions = maps.get(topic);
    if (!positions) {
      positions = new Map();
      maps.set(topic, positions);
    }
    return positions;
  }

  /** A fetched batch (one partition's records) starts: the records {@link advance} takes next. */
  batchStart(): void {
    this.batch++;
  }

  /**
   * Takes a fetched record: `seen` when it was delivered already (fetched
   * again after a restart or rejoin), else the position moves past it and it
   * is `history` (from before live traffic began) or `live`. A record past
   * the next offset of a gapless topic means the records between were not
   * fetched (a batch of an earlier fetch, say, handed out after a seek or a
   * rejoin): it is a `gap`, not taken, and the partition is fetched again
   * from the gap's start. A gap that stays after {@link GAP_REFETCHES}
   * fetches (or that cannot be fetched again) is taken as it is: this
   * instance then vouches for the partition only from this record on (a
   * resume from before it is incomplete rather than silently short).
   */
  advance(record: ConsumedRecord): Fetched {
    let positions = this.positions.get(record.topic);
    if (!positions) {
      positions = new Map();
      this.positions.set(record.topic, positions);
    }
    const offset = BigInt(record.offset);
    const next = positions.get(record.partition);
    if (next !== undefined && offset < next) return 'seen';
    if (next !== undefined && offset > next && (this.options.gapless?.(record.topic) ?? true)) {
      if (this.fetchAgain(record.topic, record.partition, next)) return 'gap';
      const started = this.startedFrom.get(record.topic);
      if (started?.has(record.partition)) started.set(record.partition, offset);
      this.options.onGap?.(record.topic, record.partition, next, offset);
    }
    if (this.refetching.size > 0) this.refetching.delete(`${record.topic} ${record.partition}`);
    positions.set(record.partition, offset + 1n);
    const live = this.liveFrom.get(record.topic)?.get(record.partition);
    return live !== undefined && offset < live ? 'history' : 'live';
  }

  /**
   * Whether a gap from `next` is (still) being fetched again: the first
   * record past it asks for a refetch, those behind it in the same stale
   * batch wait for it; each batch that still jumps asks again, up to
   * {@link GAP_REFETCHES} times.
   */
  private fetchAgain(topic: string, partition: number, next: bigint): boolean {
    const refetch = this.options.refetch;
    if (!refetch) return false;
    const key = `${topic} ${partition}`;
    const state = this.refetching.get(key);
    const times = state?.from === next ? state.times : 0;
    if (state?.from === next && state.batch === this.batch) return true;
    if (times >= GAP_REFETCHES || !refetch(topic, partition, next)) {
      this.refetching.delete(key);
      return false;
    }
    this.refetching.set(key, { from: next, times: times + 1, batch: this.batch });
    return true;
  }

  /** A fetch told the end of a partition (its high watermark). */
  partitionEnd(topic: string, partition: number, end: bigint): void {
    let ends = this.ends.get(topic);
    if (!ends) {
      ends = new Map();
      this.ends.set(topic, ends);
    }
    ends.set(partition, end);
  }

  /** Records between the next offset to read and the end, per partition, as of the last fetch. */
  lag(): PartitionLag[] {
    const out: PartitionLag[] = [];
    for (const [topic, ends] of this.ends) {
      const at = this.positions.get(topic);
      for (const [partition, end] of ends) {
        const next = at?.get(partition) ?? end;
        out.push({ topic, partition, lag: end > next ? Number(end - next) : 0 });
      }
    }
    return out;
  }

  /** Whether every partition has been read up to where live traffic began. */
  caughtUp(): boolean {
    for (const [topic, live] of this.liveFrom) {
      const at = this.positions.get(topic);
      for (const [partition, end] of live) if ((at?.get(partition) ?? 0n) < end) return false;
    }
    return true;
  }

  /**
   * The first offset of the partition named by `epoch` from which every
   * record of `topic` was read; undefined when that is not known (yet).
   * `bridged`: the destination is a bridged Kafka topic, where only a
   * topic of one partition has one order per destination.
   */
  coveredFrom(topic: string, epoch: string, bridged: boolean): number | undefined {
    const partition = partitionOf(epoch);
    if (partition === undefined) return undefined;
    const started = this.startedFrom.get(topic);
    const from = started?.get(partition);
    const live = this.liveFrom.get(topic)?.get(partition);
    const at = this.positions.get(topic)?.get(partition);
    // Still reading the history back (start-up took too long): it cannot vouch yet.
    if (from === undefined || live === undefined || at === undefined || at < live) return undefined;
    // A bridged topic of several partitions has no one order per destination.
    if (started && started.size > 1 && bridged) return undefined;
    return Number(from);
  }
}

const EPOCHS: string[] = [];

/** A partition's epoch, `p<partition>`: one string for all its messages (kept messages are many). */
export function epochOf(partition: number): string {
  EPOCHS[partition] ??= `p${partition}`;
  return EPOCHS[partition];
}

/** The partition an epoch names; undefined for an epoch that is not one of ours. */
export function partitionOf(epoch: string): number | undefined {
  const digits = /^p([0-9]+)$/.exec(epoch)?.[1];
  return digits === undefined ? undefined : Number(digits);
}
