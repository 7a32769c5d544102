/**
 * The fan-out's fetch loop against a cluster double that answers each fetch when the spec
 * says: what a fetch asks for, what happens to an answer that comes after a seek, a pause or
 * a resume, the interval, and failures. spec/e2e/fetch-loop.spec.ts runs it on a real Kafka.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type ClusterLike, FetchLoop } from '../../src/cluster/fetch-loop.js';
import type { ConsumedRecord, ConsumeOptions } from '../../src/cluster/kafka-client.js';

const TOPIC = 't';

interface FetchCall {
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
  metadataRefreshes = 0;
  disconnected = false;
  private waiting: Array<() => void> = [];

  async connect() {}
  async disconnect() {
    this.disconnected = true;
    // As kafkajs does, the requests in flight end first (here: as a long poll that ran out).
    for (const call of this.fetches) call.answer({});
  }
  async addMultipleTargetTopics() {}
  async refreshMetadata() {
    this.metadataRefreshes++;
  }
  async refreshMetadataIfNecessary() {}
  findTopicPartitionMetadata() {
    return [
      { partitionId: 0, leader: 1 },
      { partitionId: 1, leader: 1 },
    ];
  }
  async findBroker() {
    return {
      fetch: (request: {
        topics: Array<{ partitions: Array<{ partition: number; fetchOffset: string }> }>;
      }) =>
        new Promise<{ responses: Array<{ topicName: string; partitions: never[] }> }>(
          (resolve, reject) => {
            const partitions = request.topics.flatMap((t) =>
              t.partitions.map(({ partition, fetchOffset }) => ({ partition, fetchOffset })),
            );
            this.fetches.push({
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
          },
        ),
    };
  }
  async fetchTopicsOffset(
    topics: Array<{ topic: string; partitions: Array<{ partition: number }> }>,
  ) {
    return topics.map((t) => ({
      topic: t.topic,
      partitions: t.partitions.map(({ partition }) => ({
        partition,
        offset: String(this.ends.get(partition) ?? 0n),
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

const loops: FetchLoop[] = [];
afterEach(async () => {
  await Promise.all(loops.splice(0).map((l) => l.stop()));
});

function start(
  cluster: ClusterDouble,
  options: Partial<ConsumeOptions> = {},
): { loop: FetchLoop; delivered: ConsumedRecord[]; crashes: Error[]; started: Promise<void> } {
  const delivered: ConsumedRecord[] = [];
  const crashes: Error[] = [];
  const loop = new FetchLoop(
    {
      cluster,
      toRecord: (batch, m) => ({
        topic: batch.topic,
        partition: batch.partition,
        offset: m.offset,
        key: m.key,
        value: m.value,
        timestamp: Number(m.timestamp),
        headers: [],
      }),
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
});
