/**
 * The fan-out's consumer: Fetch requests sent straight to the partitions' leaders, with no
 * consumer group and without kafkajs' consumer runner (docs/kafka.md, "The fan-out's fetch
 * loop").
 *
 * Every instance reads every partition it wants from where its own delivery left off and
 * never commits, so a group gave it nothing but cost: a JoinGroup and SyncGroup at every
 * start, a heart-beat every 2 s, a rejoin after every Kafka restart, and kafkajs' runner
 * around every fetch (its worker queue, offset manager, seek bookkeeping and events), a
 * quarter of the CPU of consuming at 5,000 records a second (docs/benchmarks.md). Here one
 * loop per leader broker asks for the partitions that are not paused, hands each partition's
 * records to {@link ConsumeOptions.onRecords} as the answer comes, and asks again:
 *
 * - at once after a fetch that brought nothing (an idle loop always waits in Kafka's long
 *   poll, so a record is answered as soon as Kafka has it);
 * - after a fetch that brought records, no sooner than `fetchIntervalMs` after that one
 *   started: fewer, fuller fetches under steady traffic.
 *
 * A partition sought, paused or resumed while a fetch that asked for it is out has that
 * fetch's answer for it dropped: the next fetch asks from the new offset. kafkajs' own
 * pieces are used for the rest: its connections, metadata and request encoding, its answer
 * decoding (with stompbus's record decoding), and its `Batch`, which drops the records before
 * the offset asked for, aborted transactions and control records.
 */
import { createRequire } from 'node:module';
import type * as Kafkajs from 'kafkajs';
import type { ConsumedRecord, ConsumeOptions, KafkaConsumer } from './kafka-client.js';

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
    topics: Array<{ topic: string; partitions: Array<{ partition: number }> }>,
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

/** What a {@link FetchLoop} needs besides the consumer's options. */
export interface FetchLoopDeps {
  /** A cluster of the loop's own (its connections), not connected yet. */
  readonly cluster: ClusterLike;
  /** kafkajs' logger, for the loop's debug lines. */
  readonly logger?: Kafkajs.Logger;
  /** Maps a record of a batch to what {@link ConsumeOptions.onRecords} gets. */
  readonly toRecord: (batch: BatchLike, message: Kafkajs.KafkaMessage) => ConsumedRecord;
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
 * partition starts (paused as {@link ConsumeOptions.paused} says, at
 * {@link ConsumeOptions.positions} or else at the partition's end) and starts fetching.
 */
export class FetchLoop implements KafkaConsumer {
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
  private fetchWaiters: Array<() => void> = [];
  private readonly intervalMs: number;
  private readonly maxWaitMs: number;

  constructor(
    private readonly deps: FetchLoopDeps,
    private readonly options: ConsumeOptions,
  ) {
    this.intervalMs = Math.min(Math.max(options.fetchIntervalMs ?? 0, 0), MAX_FETCH_INTERVAL_MS);
    this.maxWaitMs = options.fetchMaxWaitMs ?? 250;
  }

  async start(): Promise<void> {
    const { cluster } = this.deps;
    const { topics, paused } = this.options;
    await cluster.connect();
    await cluster.addMultipleTargetTopics([...topics]);
    // Asked in this order, as a group join did: what is paused, then where each partition starts.
    const partitionsOf = new Map(
      topics.map((topic) => [
        topic,
        cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId),
      ]),
    );
    const pausedNow = new Map(
      [...partitionsOf].map(([topic, partitions]) => [
        topic,
        new Set(partitions.filter((partition) => paused?.(topic, partition) === true)),
      ]),
    );
    const positions = this.options.positions();
    const missing: Array<{ topic: string; partitions: Array<{ partition: number }> }> = [];
    for (const [topic, partitions] of partitionsOf) {
      const known = positions.get(topic);
      const byPartition = new Map<number, PartitionState>();
      this.states.set(topic, byPartition);
      const unknown: Array<{ partition: number }> = [];
      for (const partition of partitions) {
        const offset = known?.get(partition);
        const isPaused = pausedNow.get(topic)?.has(partition) === true;
        byPartition.set(partition, {
          topic,
          partition,
          offset: offset ?? -1n,
          paused: isPaused,
          changes: 0,
        });
        if (offset === undefined) unknown.push({ partition });
      }
      if (unknown.length > 0) missing.push({ topic, partitions: unknown });
    }
    if (missing.length > 0) {
      for (const { topic, partitions } of await cluster.fetchTopicsOffset(missing)) {
        for (const { partition, offset } of partitions) {
          const state = this.states.get(topic)?.get(partition);
          if (state && state.offset < 0n) state.offset = BigInt(offset);
        }
      }
    }
    if (this.stopped) return;
    this.running = true;
    this.spawnLoops();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.running = false;
    this.wake(true);
    // kafkajs closes a connection once its requests are answered: a fetch in flight ends
    // within its long poll, and its answer is not handed over.
    await this.deps.cluster.disconnect().catch(() => {});
    await Promise.allSettled([...this.loops.values()]);
    // A loop that was between two awaits may have connected again.
    await this.deps.cluster.disconnect().catch(() => {});
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

  nextFetch(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.fetchWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private *find(topic: string, partitions: readonly number[]): Iterable<PartitionState> {
    const byPartition = this.states.get(topic);
    for (const partition of partitions) {
      const state = byPartition?.get(partition);
      if (state) yield state;
    }
  }

  /** Starts a loop for every leader that has none. */
  private spawnLoops(): void {
    if (!this.running) return;
    for (const nodeId of this.leaders().keys()) {
      if (this.loops.has(nodeId)) continue;
      const done = this.run(nodeId)
        .catch((error: unknown) => this.crash(error))
        .finally(() => {
          this.loops.delete(nodeId);
          // Its partitions may have moved to a broker without a loop.
          this.spawnLoops();
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
    } catch {
      // No metadata (being refreshed after a failure): as it was.
      return this.lastLeaders;
    }
    this.lastLeaders = byNode;
    return byNode;
  }

  private async run(nodeId: number): Promise<void> {
    let failures = 0;
    /** When the last fetch that brought records started (`performance.now()`). */
    let lastFull: number | undefined;
    while (this.running) {
      const led = this.leaders().get(nodeId);
      // No longer the leader of anything: this loop ends (spawnLoops starts the ones needed).
      if (!led) return;
      const asked: AskedMap = new Map();
      const request: Array<{
        topic: string;
        partitions: Array<{ partition: number; fetchOffset: string; maxBytes: number }>;
      }> = [];
      for (const state of led) {
        if (state.paused) continue;
        let byPartition = asked.get(state.topic);
        if (!byPartition) {
          byPartition = new Map();
          asked.set(state.topic, byPartition);
          request.push({ topic: state.topic, partitions: [] });
        }
        byPartition.set(state.partition, { state, offset: state.offset, changes: state.changes });
        request
          .find((t) => t.topic === state.topic)
          ?.partitions.push({
            partition: state.partition,
            fetchOffset: String(state.offset),
            maxBytes: MAX_BYTES_PER_PARTITION,
          });
      }
      if (request.length === 0) {
        // Nothing to ask this broker for: wait for a resume or a seek (and look again now and then).
        await this.sleep(this.maxWaitMs, true);
        lastFull = undefined;
        continue;
      }
      if (lastFull !== undefined) {
        const wait = lastFull + this.intervalMs - performance.now();
        if (wait > 0) await this.sleep(wait, false);
        if (!this.running) return;
      }
      this.wakeFetchWaiters();
      const started = performance.now();
      let brought: boolean;
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
        brought = this.handOver(asked, answer.responses);
      } catch (error) {
        if (!this.running) return;
        failures++;
        await this.recover(error, failures);
        lastFull = undefined;
        // The leaders may have moved: loops for new ones start, and this one goes on if it leads.
        this.spawnLoops();
        continue;
      }
      lastFull = brought ? started : undefined;
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
        // Sought, paused or resumed since the fetch asked for it: the next fetch asks again.
        if (!entry || entry.state.changes !== entry.changes || !this.running) continue;
        const batch = new this.Batch(topicName, String(entry.offset), data);
        if (batch.isEmpty()) {
          // Only control records or records of aborted transactions: stepped over.
          if (batch.isEmptyDueToFiltering()) entry.state.offset = BigInt(batch.lastOffset()) + 1n;
          continue;
        }
        brought = true;
        entry.state.offset = BigInt(batch.lastOffset()) + 1n;
        this.options.onPartitionEnd?.(topicName, data.partition, BigInt(batch.highWatermark));
        const records: ConsumedRecord[] = [];
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
  private async recover(error: unknown, failures: number): Promise<void> {
    const e = error as KafkaErrorLike;
    this.deps.logger?.debug('fetch failed', { error: e?.message, failures });
    if (
      e?.name === 'KafkaJSOffsetOutOfRange' &&
      e.topic !== undefined &&
      e.partition !== undefined
    ) {
      await this.fromEnd(e.topic, e.partition);
      return;
    }
    if (!e?.name?.startsWith('KafkaJS') || e.retriable === false) throw error;
    await this.sleep(Math.min(BACKOFF_FIRST_MS * 2 ** (failures - 1), BACKOFF_MAX_MS), false);
    if (!this.running) return;
    if (
      STALE_METADATA.has(e.type ?? '') ||
      e.name === 'KafkaJSTopicMetadataNotLoaded' ||
      e.name === 'KafkaJSBrokerNotFound' ||
      e.name === 'KafkaJSRequestTimeoutError' ||
      e.name.startsWith('KafkaJSConnection')
    ) {
      await this.deps.cluster.refreshMetadata().catch(() => {});
    }
  }

  /** Not in the log (any more, or yet): read from the partition's end, as kafkajs' consumer did. */
  private async fromEnd(topic: string, partition: number): Promise<void> {
    const state = this.states.get(topic)?.get(partition);
    if (!state) return;
    const changes = state.changes;
    const [end] = await this.deps.cluster.fetchTopicsOffset([
      { topic, partitions: [{ partition }] },
    ]);
    const offset = end?.partitions.find((p) => p.partition === partition)?.offset;
    // Sought meanwhile: that offset wins.
    if (offset === undefined || state.changes !== changes) return;
    this.deps.logger?.info('offset out of range, reading from the end', {
      topic,
      partition,
      offset,
    });
    state.offset = BigInt(offset);
    state.changes++;
  }

  /** A failure no retry can help: the loop stops and says so once. */
  private crash(error: unknown): void {
    if (!this.running) return;
    this.running = false;
    void this.stop();
    this.options.onCrash(error instanceof Error ? error : new Error(String(error)));
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

  private wakeFetchWaiters(): void {
    const waiters = this.fetchWaiters;
    if (waiters.length === 0) return;
    this.fetchWaiters = [];
    for (const wake of waiters) wake();
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
}
