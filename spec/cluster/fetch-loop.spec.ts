/**
 * The fan-out's fetch loop against a cluster double that answers each fetch when the spec
 * says: what a fetch asks for, what happens to an answer that comes after a seek, a pause or
 * a resume, the interval, and failures. spec/e2e/fetch-loop.spec.ts runs it on a real Kafka.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type ClusterLike, FetchLoop } from '../../src/cluster/fetch-loop.js';
import {
  type ConsumedRecord,
  type ConsumeOptions,
  fromKafkaMessage,
} from '../../src/cluster/kafka-client.js';

const TOPIC = 't';

interface FetchCall {
  nodeId: string;
  partitions: Array<{ partition: number; fetchOffset: string }>;
  at: number;
  answer(data: Record<number, number[]>, options?: { control?: number[] }): void;
  fail(error: Error): void;
}

/** A named kafkajs-like error. */
function kafkaError(name: string, fields: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(name), { name, ...fields });
}

class ClusterDouble implements ClusterLike {
  readonly fetches: FetchCall[] = [];
  readonly ends = new Map<number, bigint>([
    [0, 100n],
    [1, 200n],
  ]);
  /** Each partition's leader; the topic has as many partitions. */
  readonly leaders = new Map<number, number>([
    [0, 1],
    [1, 1],
  ]);
  metadataRefreshes = 0;
  disconnected = false;
  /** The next offsets lookups fail with these. */
  failOffsets: Error[] = [];
  private waiting: Array<() => void> = [];
  private readonly pending = new Set<Promise<unknown>>();

  async connect() {}
  async disconnect() {
    // As kafkajs does, the requests in flight end first: answered by the spec within 100 ms,
    // or as a long poll that ran out.
    const settled = Promise.allSettled([...this.pending]);
    await Promise.race([settled, new Promise((resolve) => setTimeout(resolve, 100))]);
    for (const call of this.fetches) call.answer({});
    this.disconnected = true;
  }
  async addMultipleTargetTopics() {}
  async refreshMetadata() {
    this.metadataRefreshes++;
  }
  async refreshMetadataIfNecessary() {}
  findTopicPartitionMetadata() {
    return [...this.leaders].map(([partitionId, leader]) => ({ partitionId, leader }));
  }
  async findBroker({ nodeId }: { nodeId: string }) {
    return {
      fetch: (request: {
        topics: Array<{ partitions: Array<{ partition: number; fetchOffset: string }> }>;
      }) => {
        const promise = new Promise<{
          responses: Array<{ topicName: string; partitions: never[] }>;
        }>((resolve, reject) => {
          const partitions = request.topics.flatMap((t) =>
            t.partitions.map(({ partition, fetchOffset }) => ({ partition, fetchOffset })),
          );
          this.fetches.push({
            nodeId,
            partitions,
            at: performance.now(),
            answer: (data, options) =>
              resolve({
                responses: [
                  {
                    topicName: TOPIC,
                    partitions: Object.entries(data).map(([partition, offsets]) => ({
                      partition: Number(partition),
                      highWatermark: String(this.ends.get(Number(partition)) ?? 0n),
                      abortedTransactions: [],
                      messages: offsets.map((offset) => ({
                        offset: String(offset),
                        key: Buffer.from('k'),
                        value: Buffer.from(`v${offset}`),
                        timestamp: '1',
                        headers: {},
                        isControlRecord: options?.control?.includes(offset) === true,
                      })),
                    })) as never[],
                  },
                ],
              }),
            fail: reject,
          });
          for (const wake of this.waiting.splice(0)) wake();
        });
        this.pending.add(promise);
        const done = () => this.pending.delete(promise);
        promise.then(done, done);
        return promise;
      },
    };
  }
  async fetchTopicsOffset(
    topics: Array<{
      topic: string;
      partitions: Array<{ partition: number }>;
      fromBeginning?: boolean;
    }>,
  ) {
    const failure = this.failOffsets.shift();
    if (failure) throw failure;
    return topics.map((t) => ({
      topic: t.topic,
      partitions: t.partitions.map(({ partition }) => ({
        partition,
        offset: t.fromBeginning ? '0' : String(this.ends.get(partition) ?? 0n),
      })),
    }));
  }

  /** The `n`th fetch (1-based), once it has been sent. */
  async fetch(n: number, timeoutMs = 2_000): Promise<FetchCall> {
    const deadline = Date.now() + timeoutMs;
    while (this.fetches.length < n) {
      if (Date.now() > deadline) throw new Error(`fetch ${n} never came`);
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        setTimeout(resolve, 20);
      });
    }
    return this.fetches[n - 1] as FetchCall;
  }
}

const loops: Array<FetchLoop<ConsumedRecord>> = [];
afterEach(async () => {
  await Promise.all(loops.splice(0).map((l) => l.stop()));
});

function start(
  cluster: ClusterDouble,
  options: Partial<ConsumeOptions> = {},
): {
  loop: FetchLoop<ConsumedRecord>;
  delivered: ConsumedRecord[];
  crashes: Error[];
  started: Promise<void>;
} {
  const delivered: ConsumedRecord[] = [];
  const crashes: Error[] = [];
  const loop = new FetchLoop(
    {
      cluster,
      toRecord: fromKafkaMessage,
    },
    {
      groupId: 'unused',
      topics: [TOPIC],
      positions: () => new Map(),
      onRecords: (records) => delivered.push(...records),
      onCrash: (error) => crashes.push(error),
      joinTimeoutMs: 5_000,
      fetchMaxWaitMs: 250,
      ...options,
    },
  );
  loops.push(loop);
  return { loop, delivered, crashes, started: loop.start() };
}

const offsets = (records: ConsumedRecord[]) => records.map((r) => `${r.partition}:${r.offset}`);

describe('FetchLoop (a cluster double)', () => {
  it('starts each partition at its position, else at its end, and leaves paused ones out', async () => {
    const cluster = new ClusterDouble();
    const { started } = start(cluster, {
      positions: () => new Map([[TOPIC, new Map([[1, 150n]])]]),
      paused: (_topic, partition) => partition === 0,
    });
    await started;
    const first = await cluster.fetch(1);
    expect(first.partitions).toEqual([{ partition: 1, fetchOffset: '150' }]);
  });

  it('asks from the next offset after the records it handed over, and steps over control records', async () => {
    const cluster = new ClusterDouble();
    const { delivered, started } = start(cluster);
    await started;
    const first = await cluster.fetch(1);
    expect(first.partitions).toEqual([
      { partition: 0, fetchOffset: '100' },
      { partition: 1, fetchOffset: '200' },
    ]);
    // A batch may start before the offset asked for: those records are not handed over.
    first.answer({ 0: [99, 100, 101], 1: [] });
    const second = await cluster.fetch(2);
    expect(offsets(delivered)).toEqual(['0:100', '0:101']);
    expect(second.partitions).toEqual([
      { partition: 0, fetchOffset: '102' },
      { partition: 1, fetchOffset: '200' },
    ]);
    // Only a transaction marker: nothing handed over, and the next fetch asks past it.
    second.answer({ 0: [102] }, { control: [102] });
    const third = await cluster.fetch(3);
    expect(offsets(delivered)).toEqual(['0:100', '0:101']);
    expect(third.partitions[0]).toEqual({ partition: 0, fetchOffset: '103' });
  });

  it("drops an answer for a partition sought or paused while its fetch was out, and asks from the seek's offset", async () => {
    const cluster = new ClusterDouble();
    const { loop, delivered, started } = start(cluster);
    await started;
    const first = await cluster.fetch(1);
    loop.seek(TOPIC, 0, 40n);
    loop.pause(TOPIC, [1]);
    first.answer({ 0: [100, 101], 1: [200] });
    const second = await cluster.fetch(2);
    expect(delivered).toEqual([]);
    expect(second.partitions).toEqual([{ partition: 0, fetchOffset: '40' }]);
    second.answer({ 0: [40] });
    const third = await cluster.fetch(3);
    expect(offsets(delivered)).toEqual(['0:40']);
    expect(third.partitions).toEqual([{ partition: 0, fetchOffset: '41' }]);
  });

  it('wakes an idle loop at a resume: the fetch starts at once, and nextFetch resolves with it', async () => {
    const cluster = new ClusterDouble();
    const { loop, started } = start(cluster, {
      paused: () => true,
      fetchMaxWaitMs: 5_000,
    });
    await started;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(cluster.fetches).toHaveLength(0);
    const resumedAt = performance.now();
    const next = loop.nextFetch(4_000);
    loop.resume(TOPIC, [1]);
    await next;
    const first = await cluster.fetch(1);
    expect(first.at - resumedAt).toBeLessThan(1_000);
    expect(first.partitions).toEqual([{ partition: 1, fetchOffset: '200' }]);
  });

  it('waits the interval after a fetch that brought records, and not after one that brought none', async () => {
    const cluster = new ClusterDouble();
    const { started } = start(cluster, { fetchIntervalMs: 300 });
    await started;
    const first = await cluster.fetch(1);
    first.answer({ 0: [100] });
    const second = await cluster.fetch(2);
    expect(second.at - first.at).toBeGreaterThanOrEqual(290);
    second.answer({});
    const third = await cluster.fetch(3);
    expect(third.at - second.at).toBeLessThan(250);
  });

  it('retries a failed fetch with a fresh look at the leaders, reads from the end after an offset out of range, and crashes on what no retry helps', async () => {
    const cluster = new ClusterDouble();
    const { crashes, delivered, started } = start(cluster, {
      positions: () => new Map([[TOPIC, new Map([[0, 5_000n]])]]),
    });
    await started;
    (await cluster.fetch(1)).fail(kafkaError('KafkaJSConnectionError', { retriable: true }));
    const second = await cluster.fetch(2);
    expect(cluster.metadataRefreshes).toBe(1);
    expect(second.partitions[0]).toEqual({ partition: 0, fetchOffset: '5000' });
    second.fail(
      kafkaError('KafkaJSOffsetOutOfRange', { retriable: false, topic: TOPIC, partition: 0 }),
    );
    const third = await cluster.fetch(3);
    expect(third.partitions[0]).toEqual({ partition: 0, fetchOffset: '100' });
    third.answer({ 0: [100] });
    const fourth = await cluster.fetch(4);
    expect(offsets(delivered)).toEqual(['0:100']);
    expect(crashes).toEqual([]);
    fourth.fail(
      kafkaError('KafkaJSProtocolError', { retriable: false, type: 'TOPIC_AUTHORIZATION_FAILED' }),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(crashes.map((e) => e.name)).toEqual(['KafkaJSProtocolError']);
    expect(cluster.fetches).toHaveLength(4);
    expect(cluster.disconnected).toBe(true);
  });

  it('stops while a fetch is out without handing its answer over', async () => {
    const cluster = new ClusterDouble();
    const { loop, delivered, started } = start(cluster);
    await started;
    const first = await cluster.fetch(1);
    const stopping = loop.stop();
    first.answer({ 0: [100] });
    await stopping;
    expect(delivered).toEqual([]);
    expect(cluster.disconnected).toBe(true);
  });

  it('fetches from each leader, and reads a partition that moved to another leader there, from where it was', async () => {
    const cluster = new ClusterDouble();
    cluster.leaders.set(1, 2);
    const { delivered, started } = start(cluster);
    await started;
    const [a, b] = [await cluster.fetch(1), await cluster.fetch(2)];
    const byNode = new Map([a, b].map((f) => [f.nodeId, f]));
    expect(byNode.get('1')?.partitions).toEqual([{ partition: 0, fetchOffset: '100' }]);
    expect(byNode.get('2')?.partitions).toEqual([{ partition: 1, fetchOffset: '200' }]);
    byNode.get('2')?.answer({ 1: [200] });
    // Broker 2 asks again, then partition 1 moves to broker 1.
    const again = await cluster.fetch(3);
    expect(again.nodeId).toBe('2');
    cluster.leaders.set(1, 1);
    again.answer({});
    byNode.get('1')?.answer({});
    const moved = await cluster.fetch(4);
    expect(moved.nodeId).toBe('1');
    expect(moved.partitions).toEqual([
      { partition: 0, fetchOffset: '100' },
      { partition: 1, fetchOffset: '201' },
    ]);
    expect(offsets(delivered)).toEqual(['1:200']);
  });

  it('resolves nextFetch for a partition resumed during the interval with a fetch that asks for it', async () => {
    const cluster = new ClusterDouble();
    const { loop, started } = start(cluster, {
      fetchIntervalMs: 1_000,
      paused: (_topic, partition) => partition === 1,
    });
    await started;
    const first = await cluster.fetch(1);
    first.answer({ 0: [100] });
    // The loop now waits for the interval before its next fetch.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(cluster.fetches).toHaveLength(1);
    loop.resume(TOPIC, [1]);
    await loop.nextFetch(4_000);
    const resolvedAt = performance.now();
    // Not before the interval ran out, and the fetch that resolved it asks for partition 1.
    expect(resolvedAt - first.at).toBeGreaterThanOrEqual(990);
    const second = await cluster.fetch(2);
    expect(second.partitions).toContainEqual({ partition: 1, fetchOffset: '200' });
  });

  it('drops an answer from the old leader of a partition that moved, after its new leader read it', async () => {
    const cluster = new ClusterDouble();
    cluster.leaders.set(1, 2);
    const { delivered, started } = start(cluster);
    await started;
    const fetches = [await cluster.fetch(1), await cluster.fetch(2)];
    const oldLeader = fetches.find((f) => f.nodeId === '2') as FetchCall;
    const other = fetches.find((f) => f.nodeId === '1') as FetchCall;
    // Partition 1 moves to broker 1 while broker 2's fetch is out.
    cluster.leaders.set(1, 1);
    other.answer({});
    const moved = await cluster.fetch(3);
    expect(moved.nodeId).toBe('1');
    expect(moved.partitions).toContainEqual({ partition: 1, fetchOffset: '200' });
    moved.answer({ 1: [200, 201] });
    await cluster.fetch(4);
    // The old leader's answer for the same offsets comes last: not handed over again.
    oldLeader.answer({ 1: [200] });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(offsets(delivered)).toEqual(['1:200', '1:201']);
  });

  it("keeps trying while Kafka is away: kafkajs' own retries given up are retried with a backoff, not a crash", async () => {
    const cluster = new ClusterDouble();
    const { crashes, delivered, started } = start(cluster);
    await started;
    const away = () =>
      kafkaError('KafkaJSNumberOfRetriesExceeded', {
        retriable: false,
        cause: kafkaError('KafkaJSConnectionError', { retriable: true }),
      });
    (await cluster.fetch(1)).fail(away());
    (await cluster.fetch(2)).fail(away());
    const third = await cluster.fetch(3);
    // A backoff between the tries (100 ms, then 200 ms), and the leaders looked up again.
    expect(third.at - (cluster.fetches[0] as FetchCall).at).toBeGreaterThanOrEqual(280);
    expect(cluster.metadataRefreshes).toBe(2);
    third.answer({ 0: [100] });
    await cluster.fetch(4);
    expect(offsets(delivered)).toEqual(['0:100']);
    expect(crashes).toEqual([]);
  });

  it("crashes on an error that is not Kafka's (a bug), once", async () => {
    const cluster = new ClusterDouble();
    const { crashes, started } = start(cluster);
    await started;
    (await cluster.fetch(1)).fail(new TypeError('x is undefined'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(crashes.map((e) => e.name)).toEqual(['TypeError']);
    expect(cluster.fetches).toHaveLength(1);
  });

  it('retries an offset out of range whose end cannot be found yet, then reads from the end', async () => {
    const cluster = new ClusterDouble();
    const { crashes, started } = start(cluster, {
      positions: () => new Map([[TOPIC, new Map([[0, 5_000n]])]]),
    });
    await started;
    const outOfRange = () =>
      kafkaError('KafkaJSOffsetOutOfRange', { retriable: false, topic: TOPIC, partition: 0 });
    cluster.failOffsets.push(kafkaError('KafkaJSConnectionError', { retriable: true }));
    (await cluster.fetch(1)).fail(outOfRange());
    const second = await cluster.fetch(2);
    expect(second.partitions[0]).toEqual({ partition: 0, fetchOffset: '5000' });
    second.fail(outOfRange());
    const third = await cluster.fetch(3);
    expect(third.partitions[0]).toEqual({ partition: 0, fetchOffset: '100' });
    expect(crashes).toEqual([]);
  });

  it('reads a partition that appears later (a topic grown) from its first record', async () => {
    const cluster = new ClusterDouble();
    const { started } = start(cluster);
    await started;
    const first = await cluster.fetch(1);
    // Its end is 50: read from the end, it would start there.
    cluster.ends.set(2, 50n);
    cluster.leaders.set(2, 1);
    first.answer({});
    // Added in the background: in the next fetch, or the one after.
    let next = await cluster.fetch(2);
    if (!next.partitions.some((p) => p.partition === 2)) {
      next.answer({});
      next = await cluster.fetch(3);
    }
    expect(next.partitions).toEqual([
      { partition: 0, fetchOffset: '100' },
      { partition: 1, fetchOffset: '200' },
      { partition: 2, fetchOffset: '0' },
    ]);
  });
});
