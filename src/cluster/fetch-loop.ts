/**
 * The fan-out's consumer: Fetch requests sent straight to the partitions' leaders, with no
 * consumer group and without kafkajs' consumer runner (docs/kafka.md, "The fan-out's fetch
 * loop").
 *
 * Every instance reads every partition it wants from where its own delivery left off and
 * never commits, so a group gave it nothing but cost: a JoinGroup and SyncGroup at every
 * start, a heart-beat every 2 s, a rejoin after every Kafka restart, and kafkajs' runner
 * around every fetch (its worker queue, offset manager, seek bookkeeping and events): about a
 * quarter of the CPU of consuming at 5,000 records a second (docs/benchmarks.md). Here one
 * loop per leader broker asks for the partitions that are not paused, hands each partition's
 * records to {@link FetchLoopOptions.onRecords} as the answer comes, and asks again:
 *
 * - at once after a fetch that brought nothing (an idle loop always waits in Kafka's long
 *   poll, so a record is answered as soon as Kafka has it);
 * - after a fetch that brought records, no sooner than `fetchIntervalMs` after that one
 *   started: fewer, fuller fetches under steady traffic.
 *
 * A partition sought, paused or resumed while a fetch that asked for it is out has that
 * fetch's answer for it dropped: the next fetch asks from the new offset. Partitions that
 * appear in the metadata later (a topic grown) are read from their first record, paused or
 * not as {@link FetchLoopOptions.paused} says. kafkajs' own
 * pieces are used for the rest: its connections, metadata and request encoding, its answer
 * decoding (with stompbus's record decoding), and its `Batch`, which drops the records before
 * the offset asked for, aborted transactions and control records.
 */
import { createRequire } from 'node:module';
import type * as Kafkajs from 'kafkajs';

/**
 * The longest interval between fetches, ms (a longer one is taken as this). Beyond a
 * second, a partition picked up right after a fetch with records waits too long.
 */
export const MAX_FETCH_INTERVAL_MS = 1_000;

/** Kafka's read-committed isolation: records of aborted transactions are never returned. */
const READ_COMMITTED = 1;
/** Bytes a fetch may bring, in all and per partition (kafkajs' consumer defaults). */
const MAX_BYTES = 10_485_760;
const MAX_BYTES_PER_PARTITION = 1_048_576;
/** Backoff between failed fetches from one broker, ms: doubles from the first to the last. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 1_000;
/** Least time between two looks for leaders that are missing, or for a grown topic's offsets, ms. */
const LEADER_LOOKUP_MS = 1_000;
/** Errors after which the partitions' leaders are looked up again. */
const STALE_METADATA = new Set([
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
  'UNKNOWN_TOPIC_OR_PARTITION',
]);

/** One partition of a fetch's answer, as kafkajs decodes it. */
interface PartitionData {
  partition: number;
  highWatermark: string;
  messages: Kafkajs.KafkaMessage[];
}

/** The parts of kafkajs' `Broker` the loop uses. */
interface BrokerLike {
  fetch(request: {
    replicaId?: number;
    isolationLevel: number;
    maxWaitTime: number;
    minBytes: number;
    maxBytes: number;
    topics: Array<{
      topic: string;
      partitions: Array<{ partition: number; fetchOffset: string; maxBytes: number }>;
    }>;
  }): Promise<{ responses: Array<{ topicName: string; partitions: PartitionData[] }> }>;
}

/** The parts of kafkajs' `Cluster` the loop uses. */
export interface ClusterLike {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addMultipleTargetTopics(topics: string[]): Promise<void>;
  refreshMetadata(): Promise<void>;
  refreshMetadataIfNecessary(): Promise<void>;
  findTopicPartitionMetadata(topic: string): Array<{ partitionId: number; leader: number }>;
  findBroker(options: { nodeId: string }): Promise<BrokerLike>;
  fetchTopicsOffset(
    topics: Array<{
      topic: string;
      partitions: Array<{ partition: number }>;
      fromBeginning?: boolean;
    }>,
  ): Promise<Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }>>;
}

/** kafkajs' `Batch`: one partition of an answer, its records filtered. */
interface BatchLike {
  readonly topic: string;
  readonly partition: number;
  readonly highWatermark: string;
  readonly messages: Kafkajs.KafkaMessage[];
  isEmpty(): boolean;
  isEmptyDueToFiltering(): boolean;
  lastOffset(): string;
}
type BatchClass = new (topic: string, fetchedOffset: string, data: PartitionData) => BatchLike;

/**
 * What a {@link FetchLoop} is asked to do: the part of kafka-client.ts' `ConsumeOptions` it
 * reads (a record of type `R` is what `toRecord` makes of a fetched one).
 */
export interface FetchLoopOptions<R> {
  readonly topics: readonly string[];
  /** The next offset to read per topic and partition; partitions not listed start at the end. */
  readonly positions: () => ReadonlyMap<string, ReadonlyMap<number, bigint>>;
  /** Asked at the start, before {@link positions}, for every partition: true pauses it. */
  readonly paused?: (topic: string, partition: number) => boolean;
  /** Each partition's records of a fetch, in order. Must not throw. */
  readonly onRecords: (records: R[]) => void;
  /** Before each partition's records: the partition's end (the high watermark). */
  readonly onPartitionEnd?: (topic: string, partition: number, end: bigint) => void;
  /** The loop stopped on a failure no retry helps; it will not restart on its own. */
  readonly onCrash: (error: Error) => void;
  /** Longest wait of an idle fetch, ms. Default 250. */
  readonly fetchMaxWaitMs?: number;
  /** Least time between the starts of two fetches from a broker after one with records, ms. */
  readonly fetchIntervalMs?: number;
}

/** What a {@link FetchLoop} needs besides its options. */
export interface FetchLoopDeps<R> {
  /** A cluster of the loop's own (its connections), not connected yet. */
  readonly cluster: ClusterLike;
  /** kafkajs' logger, for the loop's debug lines. */
  readonly logger?: Kafkajs.Logger;
  /** Maps a record of a batch to what {@link FetchLoopOptions.onRecords} gets. */
  readonly toRecord: (batch: BatchLike, message: Kafkajs.KafkaMessage) => R;
}

/** Where the loop stands with one partition. */
interface PartitionState {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to fetch. */
  offset: bigint;
  paused: boolean;
  /** Counts seeks, pauses and resumes: an answer to a fetch of an older one is dropped. */
  changes: number;
}

/** A partition as one fetch asked for it. */
interface Asked {
  readonly state: PartitionState;
  readonly offset: bigint;
  readonly changes: number;
}

/** The partitions one fetch asked for, by topic and partition. */
type AskedMap = Map<string, Map<number, Asked>>;

const require = createRequire(import.meta.url);

/** kafkajs' own `Cluster` and `Batch` (kafkajs 2.x; not exported by its index). */
export function kafkajsInternals(): {
  Cluster: new (options: object) => ClusterLike;
  Batch: BatchClass;
  socketFactory: () => unknown;
} {
  return {
    Cluster: require('kafkajs/src/cluster'),
    Batch: require('kafkajs/src/consumer/batch'),
    socketFactory: require('kafkajs/src/network/socketFactory'),
  };
}

/**
 * A consumer that fetches with no group. {@link start} connects its cluster, finds where each
 * partition starts (paused as {@link FetchLoopOptions.paused} says, at
 * {@link FetchLoopOptions.positions} or else at the partition's end) and starts fetching.
 * It has what kafka-client.ts' `KafkaConsumer` asks for: stop, pause, resume, seek and
 * nextFetch.
 */
export class FetchLoop<R> {
  private readonly Batch: BatchClass = kafkajsInternals().Batch;
  private readonly states = new Map<string, Map<number, PartitionState>>();
  /** The fetch loop of each leader broker, by node id. */
  private readonly loops = new Map<number, Promise<void>>();
  /** The partitions by leader as last read from the metadata. */
  private lastLeaders = new Map<number, PartitionState[]>();
  private running = false;
  private stopped = false;
  /** Sleeps that a resume or a seek ends (and stop()). */
  private readonly wakers = new Set<() => void>();
  /** Sleeps that only stop() ends: an interval, a backoff. */
  private readonly stopWakers = new Set<() => void>();
  /** Each nextFetch's loops still to choose their next fetch's partitions, and its resolve. */
  private fetchWaiters: Array<{ loops: Set<number>; done: () => void }> = [];
  /** The partitions of a grown topic being added (one task for all loops), and when to look again. */
  private growing: Promise<void> | undefined;
  private growAfter = 0;
  /** Some partition had no leader in the metadata: it is looked up again now and then. */
  private leaderless = false;
  private lastLeaderLookup = 0;
  private stopping: Promise<void> | undefined;
  private readonly intervalMs: number;
  private readonly maxWaitMs: number;

  constructor(
    private readonly deps: FetchLoopDeps<R>,
    private readonly options: FetchLoopOptions<R>,
  ) {
    this.intervalMs = Math.min(Math.max(options.fetchIntervalMs ?? 0, 0), MAX_FETCH_INTERVAL_MS);
    this.maxWaitMs = options.fetchMaxWaitMs ?? 250;
  }

  /** Connects and starts fetching; stopped meanwhile (a start that took too long), it disconnects. */
  async start(): Promise<void> {
    const { cluster } = this.deps;
    await cluster.connect();
    if (this.stopped) return this.disconnect();
    await cluster.addMultipleTargetTopics([...this.options.topics]);
    if (this.stopped) return this.disconnect();
    const partitions = new Map(
      this.options.topics.map((topic) => [
        topic,
        cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId),
      ]),
    );
    await this.add(partitions, 'end');
    if (this.stopped) return this.disconnect();
    this.running = true;
    this.spawnLoops(this.leaders());
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopNow();
    return this.stopping;
  }

  private async stopNow(): Promise<void> {
    this.stopped = true;
    this.running = false;
    this.wake(true);
    // kafkajs closes a connection once its requests are answered: a fetch in flight ends
    // within its long poll, and its answer is not handed over.
    await this.disconnect();
    await Promise.allSettled([...this.loops.values()]);
    // A loop that was between two awaits may have connected again.
    await this.disconnect();
  }

  pause(topic: string, partitions: number[]): void {
    for (const state of this.find(topic, partitions)) {
      if (state.paused) continue;
      state.paused = true;
      state.changes++;
    }
  }

  resume(topic: string, partitions: number[]): void {
    for (const state of this.find(topic, partitions)) {
      if (!state.paused) continue;
      state.paused = false;
      state.changes++;
    }
    this.wake(false);
  }

  seek(topic: string, partition: number, offset: bigint): void {
    for (const state of this.find(topic, [partition])) {
      state.offset = offset;
      state.changes++;
    }
    this.wake(false);
  }

  /**
   * Resolves once every loop running now has chosen the partitions of its next fetch (a
   * partition resumed or sought before the call is in it), or after `timeoutMs`.
   */
  nextFetch(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.loops.size === 0) {
        resolve();
        return;
      }
      const timer = setTimeout(resolve, timeoutMs);
      this.fetchWaiters.push({
        loops: new Set(this.loops.keys()),
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  private disconnect(): Promise<void> {
    return this.deps.cluster.disconnect().catch(() => {});
  }

  private *find(topic: string, partitions: readonly number[]): Iterable<PartitionState> {
    const byPartition = this.states.get(topic);
    for (const partition of partitions) {
      const state = byPartition?.get(partition);
      if (state) yield state;
    }
  }

  /**
   * Adds these partitions: paused as {@link FetchLoopOptions.paused} says (asked first, as a
   * group join did), at {@link FetchLoopOptions.positions}, else at the partition's end (at the
   * start) or its first record (a partition that appeared later: all of it is new).
   */
  private async add(partitions: ReadonlyMap<string, number[]>, otherwise: 'end' | 'first') {
    const { paused } = this.options;
    const isPaused = new Map(
      [...partitions].map(([topic, list]) => [
        topic,
        new Set(list.filter((partition) => paused?.(topic, partition) === true)),
      ]),
    );
    const positions = this.options.positions();
    const added: PartitionState[] = [];
    const unknown: Array<{ topic: string; partitions: Array<{ partition: number }> }> = [];
    for (const [topic, list] of partitions) {
      const known = positions.get(topic);
      const missing: Array<{ partition: number }> = [];
      for (const partition of list) {
        const offset = known?.get(partition);
        const state: PartitionState = {
          topic,
          partition,
          offset: offset ?? -1n,
          paused: isPaused.get(topic)?.has(partition) === true,
          changes: 0,
        };
        added.push(state);
        if (offset === undefined) missing.push({ partition });
      }
      if (missing.length > 0) unknown.push({ topic, partitions: missing });
    }
    if (unknown.length > 0) {
      const fromBeginning = otherwise === 'first';
      const found = await this.deps.cluster.fetchTopicsOffset(
        unknown.map((t) => ({ ...t, fromBeginning })),
      );
      const offsets = new Map(
        found.flatMap(({ topic, partitions: list }) =>
          list.map(({ partition, offset }) => [`${topic}\0${partition}`, BigInt(offset)]),
        ),
      );
      for (const state of added) {
        if (state.offset < 0n) {
          const offset = offsets.get(`${state.topic}\0${state.partition}`);
          if (offset === undefined)
            throw new Error(`no offset for ${state.topic} ${state.partition}`);
          state.offset = offset;
        }
      }
    }
    // Only now, all of them at once: a loop never sees a partition without its offset.
    for (const state of added) {
      let byPartition = this.states.get(state.topic);
      if (!byPartition) {
        byPartition = new Map();
        this.states.set(state.topic, byPartition);
      }
      if (!byPartition.has(state.partition)) byPartition.set(state.partition, state);
    }
  }

  /** Partitions in the metadata that the loop does not read yet (a topic grown). */
  private grown(): Map<string, number[]> {
    const grown = new Map<string, number[]>();
    for (const [topic, byPartition] of this.states) {
      let metadata: Array<{ partitionId: number }>;
      try {
        metadata = this.deps.cluster.findTopicPartitionMetadata(topic);
      } catch {
        continue;
      }
      const added = metadata.map((p) => p.partitionId).filter((p) => !byPartition.has(p));
      if (added.length > 0) grown.set(topic, added);
    }
    return grown;
  }

  /** Starts a loop for every leader that has none. */
  private spawnLoops(leaders: ReadonlyMap<number, PartitionState[]>): void {
    if (!this.running) return;
    for (const nodeId of leaders.keys()) {
      if (this.loops.has(nodeId)) continue;
      // Started on the next microtask: the loop is in `loops` before it looks for leaders.
      const done = Promise.resolve()
        .then(() => this.run(nodeId))
        .catch((error: unknown) => this.crash(error))
        .finally(() => {
          this.loops.delete(nodeId);
          this.chosen(nodeId);
          // Its partitions may have moved to a broker without a loop.
          try {
            this.spawnLoops(this.leaders());
          } catch (error) {
            this.crash(error);
          }
        });
      this.loops.set(nodeId, done);
    }
  }

  /** Every partition by its leader's node id, from the metadata as it is now. */
  private leaders(): Map<number, PartitionState[]> {
    const byNode = new Map<number, PartitionState[]>();
    try {
      for (const [topic, byPartition] of this.states) {
        for (const { partitionId, leader } of this.deps.cluster.findTopicPartitionMetadata(topic)) {
          const state = byPartition.get(partitionId);
          if (!state || typeof leader !== 'number' || leader < 0) continue;
          let list = byNode.get(leader);
          if (!list) {
            list = [];
            byNode.set(leader, list);
          }
          list.push(state);
        }
      }
    } catch (error) {
      // No metadata (being refreshed after a failure): the leaders as they were.
      if ((error as KafkaErrorLike)?.name === 'KafkaJSTopicMetadataNotLoaded')
        return this.lastLeaders;
      throw error;
    }
    let led = 0;
    for (const list of byNode.values()) led += list.length;
    let all = 0;
    for (const byPartition of this.states.values()) all += byPartition.size;
    this.leaderless = led < all;
    this.lastLeaders = byNode;
    return byNode;
  }

  private async run(nodeId: number): Promise<void> {
    let failures = 0;
    /** When the last fetch that brought records started (`performance.now()`). */
    let lastFull: number | undefined;
    while (this.running) {
      // The interval first: the partitions are chosen after it, as the fetch leaves.
      if (lastFull !== undefined) {
        const wait = lastFull + this.intervalMs - performance.now();
        if (wait > 0) await this.sleep(wait, false);
        lastFull = undefined;
        if (!this.running) return;
      }
      this.lookForGrowth();
      if (this.leaderless && performance.now() - this.lastLeaderLookup > LEADER_LOOKUP_MS) {
        // A partition without a leader (an election): the metadata again, at most once a second.
        this.lastLeaderLookup = performance.now();
        await this.deps.cluster.refreshMetadata().catch(() => {});
        if (!this.running) return;
      }
      const leaders = this.leaders();
      // Partitions that moved to a broker without a loop get one.
      this.spawnLoops(leaders);
      const led = leaders.get(nodeId);
      if (!led) {
        // No longer the leader of anything: this loop ends (spawnLoops starts the ones needed),
        // unless it is the last one, which waits for the leaders to come back.
        if (this.loops.size > 1) return;
        this.chosen(nodeId);
        await this.sleep(this.maxWaitMs, true);
        await this.deps.cluster.refreshMetadata().catch(() => {});
        continue;
      }
      const asked: AskedMap = new Map();
      for (const state of led) {
        if (state.paused) continue;
        let byPartition = asked.get(state.topic);
        if (!byPartition) {
          byPartition = new Map();
          asked.set(state.topic, byPartition);
        }
        byPartition.set(state.partition, { state, offset: state.offset, changes: state.changes });
      }
      const request = [...asked].map(([topic, byPartition]) => ({
        topic,
        partitions: [...byPartition.values()].map(({ state, offset }) => ({
          partition: state.partition,
          fetchOffset: String(offset),
          maxBytes: MAX_BYTES_PER_PARTITION,
        })),
      }));
      this.chosen(nodeId);
      if (request.length === 0) {
        // Nothing to ask this broker for: wait for a resume or a seek (and look again now and then).
        await this.sleep(this.maxWaitMs, true);
        continue;
      }
      const started = performance.now();
      try {
        await this.deps.cluster.refreshMetadataIfNecessary();
        if (!this.running) return;
        const broker = await this.deps.cluster.findBroker({ nodeId: String(nodeId) });
        if (!this.running) return;
        const answer = await broker.fetch({
          replicaId: -1,
          isolationLevel: READ_COMMITTED,
          maxWaitTime: this.maxWaitMs,
          minBytes: 1,
          maxBytes: MAX_BYTES,
          topics: request,
        });
        failures = 0;
        if (this.handOver(asked, answer.responses)) lastFull = started;
      } catch (error) {
        if (!this.running) return;
        failures++;
        await this.recover(error, failures, asked);
      }
    }
  }

  /** Hands each partition's records over, in the answer's order; true when some came. */
  private handOver(
    asked: AskedMap,
    responses: ReadonlyArray<{ topicName: string; partitions: PartitionData[] }>,
  ): boolean {
    let brought = false;
    for (const { topicName, partitions } of responses) {
      const byPartition = asked.get(topicName);
      for (const data of partitions) {
        const entry = byPartition?.get(data.partition);
        // Sought, paused or resumed since the fetch asked for it, or read meanwhile by another
        // loop (a leader that moved): the next fetch asks again.
        if (
          !entry ||
          !this.running ||
          entry.state.changes !== entry.changes ||
          entry.state.offset !== entry.offset
        ) {
          continue;
        }
        const batch = new this.Batch(topicName, String(entry.offset), data);
        if (batch.isEmpty()) {
          // Only control records or records of aborted transactions: stepped over.
          if (batch.isEmptyDueToFiltering()) entry.state.offset = BigInt(batch.lastOffset()) + 1n;
          continue;
        }
        brought = true;
        entry.state.offset = BigInt(batch.lastOffset()) + 1n;
        this.options.onPartitionEnd?.(topicName, data.partition, BigInt(batch.highWatermark));
        const records: R[] = [];
        for (const message of batch.messages) records.push(this.deps.toRecord(batch, message));
        this.options.onRecords(records);
      }
    }
    return brought;
  }

  /**
   * After a failed fetch: an offset Kafka does not have is replaced by the partition's end;
   * anything else waits a backoff (and looks the leaders up again when they may have moved).
   * Throws what no retry can help (the loop then crashes).
   */
  private async recover(error: unknown, failures: number, asked: AskedMap): Promise<void> {
    const e = error as KafkaErrorLike;
    this.deps.logger?.debug('fetch failed', { error: e?.message, failures });
    const backoff = () =>
      this.sleep(Math.min(BACKOFF_FIRST_MS * 2 ** (failures - 1), BACKOFF_MAX_MS), false);
    if (
      e?.name === 'KafkaJSOffsetOutOfRange' &&
      e.topic !== undefined &&
      e.partition !== undefined
    ) {
      const entry = asked.get(e.topic)?.get(e.partition);
      const moved = entry !== undefined && (await this.fromEnd(entry));
      // Not found, or out of range again right after: not at full speed.
      if (!moved || failures > 1) await backoff();
      return;
    }
    // kafkajs gives up its own retries (Kafka away) as a non-retriable error around the cause.
    const cause = e?.name === 'KafkaJSNumberOfRetriesExceeded' ? (e.cause as KafkaErrorLike) : e;
    if (!cause?.name?.startsWith('KafkaJS') || cause.retriable === false) throw error;
    await backoff();
    if (!this.running) return;
    if (
      cause !== e ||
      STALE_METADATA.has(cause.type ?? '') ||
      cause.name === 'KafkaJSTopicMetadataNotLoaded' ||
      cause.name === 'KafkaJSBrokerNotFound' ||
      cause.name === 'KafkaJSRequestTimeoutError' ||
      cause.name.startsWith('KafkaJSConnection')
    ) {
      await this.deps.cluster.refreshMetadata().catch(() => {});
    }
  }

  /**
   * Not in the log (any more, or yet): read from the partition's end, as kafkajs' consumer
   * did, unless it was sought since the fetch asked for it. False when the end is not known.
   */
  private async fromEnd(entry: Asked): Promise<boolean> {
    const { state } = entry;
    const { topic, partition } = state;
    let offset: string | undefined;
    try {
      const [end] = await this.deps.cluster.fetchTopicsOffset([
        { topic, partitions: [{ partition }] },
      ]);
      offset = end?.partitions.find((p) => p.partition === partition)?.offset;
    } catch {
      return false;
    }
    if (offset === undefined) return false;
    if (state.changes !== entry.changes || state.offset !== entry.offset) return true;
    this.deps.logger?.info('offset out of range, reading from the end', {
      topic,
      partition,
      offset,
    });
    state.offset = BigInt(offset);
    state.changes++;
    return true;
  }

  /** A failure no retry can help: the loop stops and says so once. */
  private crash(error: unknown): void {
    if (!this.running) return;
    this.running = false;
    void this.stop();
    try {
      this.options.onCrash(error instanceof Error ? error : new Error(String(error)));
    } catch {
      // Its caller's to handle: the loop has stopped either way.
    }
  }

  /**
   * Partitions of a grown topic are added by one task for all loops, which none of them waits
   * for; after a failure (their offsets not found) it looks again a second later.
   */
  private lookForGrowth(): void {
    if (this.growing || performance.now() < this.growAfter) return;
    const grown = this.grown();
    if (grown.size === 0) return;
    this.growing = this.add(grown, 'first')
      .catch(() => {
        this.growAfter = performance.now() + LEADER_LOOKUP_MS;
      })
      .finally(() => {
        this.growing = undefined;
      });
  }

  /** Waits `ms`, or less: a `wakeable` sleep ends on a resume or a seek, every sleep on stop(). */
  private sleep(ms: number, wakeable: boolean): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        this.stopWakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      (wakeable ? this.wakers : this.stopWakers).add(wake);
    });
  }

  /** Ends the wakeable sleeps, and with `all` (stop) the others too. */
  private wake(all: boolean): void {
    for (const wake of [...this.wakers]) wake();
    if (all) for (const wake of [...this.stopWakers]) wake();
  }

  /** The loop of `nodeId` has chosen its next fetch's partitions (or ended). */
  private chosen(nodeId: number): void {
    if (this.fetchWaiters.length === 0) return;
    const left: typeof this.fetchWaiters = [];
    for (const waiter of this.fetchWaiters) {
      waiter.loops.delete(nodeId);
      if (waiter.loops.size === 0) waiter.done();
      else left.push(waiter);
    }
    this.fetchWaiters = left;
  }
}

/** What the loop reads of a kafkajs error. */
interface KafkaErrorLike {
  name?: string;
  message?: string;
  type?: string;
  retriable?: boolean;
  topic?: string;
  partition?: number;
  cause?: unknown;
}
