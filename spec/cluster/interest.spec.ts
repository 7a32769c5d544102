import { Partitioners } from 'kafkajs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { History } from '../../src/broker/history.js';
import type { Message } from '../../src/broker/message.js';
import {
  FetchCounts,
  InterestCounts,
  type PartitionControl,
  PartitionInterest,
} from '../../src/cluster/interest.js';
import type { ConsumedRecord, KafkaClient } from '../../src/cluster/kafka-client.js';
import { Offsets } from '../../src/cluster/offsets.js';
import { keyedPartitioner, murmur2, partitionFor } from '../../src/cluster/partitioner.js';
import { MemoryKafka } from '../helpers/memory-kafka.js';

describe('partitionFor', () => {
  it('places every key where kafkajs’ DefaultPartitioner (the Java client’s) places it', () => {
    const kafkajs = Partitioners.DefaultPartitioner();
    const keys = ['', 'a', 'ab', 'abc', 'abcd', '/topic/x', '/topic/prices.€', '/topic/日本語'];
    for (let i = 0; i < 5_000; i++) keys.push(`/topic/d-${i}${'x'.repeat(i % 5)}`);
    for (const [i, key] of keys.entries()) {
      const partitions = 1 + (i % 64);
      const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
        partitionId,
        leader: 0,
        partitionErrorCode: 0,
        replicas: [0],
        isr: [0],
      }));
      const expected = kafkajs({ topic: 't', partitionMetadata, message: { key, value: null } });
      expect(partitionFor(key, partitions), `${key} of ${partitions}`).toBe(expected);
    }
  });

  it('keyedPartitioner places every record where kafkajs’ DefaultPartitioner does, a small key cache included', () => {
    const kafkajs = Partitioners.DefaultPartitioner();
    const ours = keyedPartitioner(Partitioners.DefaultPartitioner(), 100);
    const keys = ['', 'a', '/topic/prices.€', '/topic/日本語'];
    for (let i = 0; i < 500; i++) keys.push(`/topic/d-${i % 250}`);
    for (const [i, key] of keys.entries()) {
      const partitions = 1 + (i % 13);
      const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
        partitionId,
        leader: 0,
        partitionErrorCode: 0,
        replicas: [0],
        isr: [0],
      }));
      for (const message of [
        { key, value: null },
        { key: Buffer.from(key), value: null },
        { key, value: null, partition: 0 },
      ]) {
        const args = { topic: 't', partitionMetadata, message };
        expect(ours(args), `${key} of ${partitions}`).toBe(kafkajs(args));
      }
    }
  });

  it('is the Java client’s murmur2 (known values)', () => {
    // Values of org.apache.kafka.common.utils.Utils.murmur2, as in Kafka's own unit test.
    expect(murmur2(Buffer.from('21'))).toBe(-973932308);
    expect(murmur2(Buffer.from('foobar'))).toBe(-790332482);
    expect(murmur2(Buffer.from('a-little-bit-long-string'))).toBe(-985981536);
    expect(murmur2(Buffer.from('a-little-bit-longer-string'))).toBe(-1486304829);
    expect(murmur2(Buffer.from('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8'))).toBe(
      -58897971,
    );
    expect(murmur2(Buffer.from([97, 98, 99]))).toBe(479470107);
  });
});

describe('InterestCounts', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('lets a partition go a linger after its last destination left, not while one comes back', () => {
    vi.useFakeTimers();
    const released: number[] = [];
    const counts = new InterestCounts(30_000, (p) => released.push(p));
    counts.add(1);
    counts.add(1);
    counts.remove(1);
    vi.advanceTimersByTime(60_000);
    expect(released).toEqual([]);
    expect(counts.count(1)).toBe(1);

    counts.remove(1);
    expect(counts.wanted(1)).toBe(true);
    vi.advanceTimersByTime(29_000);
    // Back within the linger: nothing is let go, and the old linger is forgotten.
    counts.add(1);
    vi.advanceTimersByTime(60_000);
    expect(released).toEqual([]);

    counts.remove(1);
    vi.advanceTimersByTime(29_999);
    expect(released).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(released).toEqual([1]);
    expect(counts.wanted(1)).toBe(false);
  });

  it('holds a partition picked up ahead of its subscription for a linger', () => {
    vi.useFakeTimers();
    const released: number[] = [];
    const counts = new InterestCounts(1_000, (p) => released.push(p));
    counts.hold(2);
    expect(counts.wanted(2)).toBe(true);
    vi.advanceTimersByTime(1_000);
    expect(released).toEqual([2]);
    // A hold followed by the subscription: kept as long as it lasts.
    counts.hold(3);
    counts.add(3);
    vi.advanceTimersByTime(5_000);
    expect(released).toEqual([2]);
    // A hold on a partition with subscribers changes nothing.
    counts.hold(3);
    vi.advanceTimersByTime(5_000);
    expect(released).toEqual([2]);
    expect(counts.count(3)).toBe(1);
  });
});

/** The consumer as {@link PartitionInterest} drives it, remembering each call. */
class Control implements PartitionControl {
  readonly calls: string[] = [];
  pause(topic: string, partitions: number[]): void {
    this.calls.push(`pause ${topic} ${partitions}`);
  }
  resume(topic: string, partitions: number[]): void {
    this.calls.push(`resume ${topic} ${partitions}`);
  }
  seek(topic: string, partition: number, offset: bigint): void {
    this.calls.push(`seek ${topic} ${partition} ${offset}`);
  }
}

function record(partition: number, offset: number): ConsumedRecord {
  return {
    topic: 't',
    partition,
    offset: String(offset),
    key: null,
    value: null,
    timestamp: Date.now(),
    headers: [],
  };
}

describe('PartitionInterest', () => {
  /** `/topic/x` on a topic `t` of 4 partitions holding 5 records in its partition. */
  async function setup() {
    const kafka = new MemoryKafka();
    await kafka.ensureTopics([{ topic: 't', partitions: 4 }]);
    const partition = partitionFor('/topic/x', 4);
    for (let i = 0; i < 5; i++) kafka.append('t', { partition });
    const control = new Control();
    const offsets = new Offsets();
    const lines: string[] = [];
    const interest = new PartitionInterest({
      topic: 't',
      lingerMs: 50,
      historyMaxAgeMs: 60_000,
      readBackTimeoutMs: 2_000,
      client: () => kafka,
      consumer: () => control,
      offsets,
      log: (level, line) => lines.push(`${level}: ${line}`),
    });
    interest.configure(4);
    return { kafka, partition, control, offsets, interest, lines };
  }

  it('pauses unwanted partitions at a join, picks one up from its end, lets it go after the linger', async () => {
    const { partition, control, offsets, interest } = await setup();
    expect([0, 1, 2, 3].map((p) => interest.pausedAtJoin('t', p))).toEqual([
      true,
      true,
      true,
      true,
    ]);
    // Other topics are never paused, nor their records dropped.
    expect(interest.pausedAtJoin('t.users', 0)).toBe(false);
    expect(interest.accepts({ topic: 't.users', partition: 0 })).toBe(true);
    expect(interest.accepts({ topic: 't', partition })).toBe(false);

    const reached = interest.reach('/topic/x', undefined);
    expect(reached).toBeInstanceOf(Promise);
    await reached;
    expect(control.calls).toEqual([`seek t ${partition} 5`, `resume t ${partition}`]);
    expect(interest.accepts({ topic: 't', partition })).toBe(true);
    // Records from before the pick-up (a fetch in flight) are seen, not new.
    expect(offsets.advance(record(partition, 4))).toBe('seen');
    expect(offsets.advance(record(partition, 5))).toBe('live');

    interest.interest('/topic/x', true);
    // Already read: a second subscriber does not wait.
    expect(interest.reach('/topic/x', undefined)).toBeUndefined();
    interest.interest('/topic/x', false);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(control.calls.at(-1)).toBe(`pause t ${partition}`);
    expect(interest.accepts({ topic: 't', partition })).toBe(false);
    interest.stop();
  });

  it('reads a cold resume back from its position, waiting until it reached the end', async () => {
    const { partition, control, offsets, interest } = await setup();
    let done = false;
    const reached = interest.reach('/topic/x', 1)?.then(() => {
      done = true;
    });
    await vi.waitFor(() => expect(control.calls).toContain(`seek t ${partition} 2`));
    expect(done).toBe(false);
    // History up to the end (5), then live.
    expect(offsets.advance(record(partition, 2))).toBe('history');
    expect(offsets.advance(record(partition, 3))).toBe('history');
    expect(offsets.advance(record(partition, 4))).toBe('history');
    await reached;
    expect(done).toBe(true);
    expect(offsets.coveredFrom('t', `p${partition}`, false)).toBe(2);
    expect(offsets.advance(record(partition, 5))).toBe('live');
    interest.stop();
  });

  it('reads a warm resume from before where reading started back by offset, then goes on live: nothing missing, nothing twice', async () => {
    const { kafka, partition, control, offsets, interest } = await setup();
    // Picked up from its end (5) by a subscriber of another destination.
    await interest.reach('/topic/x', undefined);
    interest.interest('/topic/x', true);
    for (let i = 5; i < 8; i++) {
      kafka.append('t', { partition });
      expect(offsets.advance(record(partition, i))).toBe('live');
    }
    expect(offsets.startedAt('t', partition)).toBe(5n);
    // A resume after offset 1: read since 5, so 2..4 were never seen here.
    control.calls.length = 0;
    let done = false;
    const reached = interest.reach('/topic/x', 1)?.then(() => {
      done = true;
    });
    expect(reached).toBeInstanceOf(Promise);
    await vi.waitFor(() => expect(control.calls).toEqual([`seek t ${partition} 2`]));
    // Only the seek: the partition stays resumed, and nobody vouches while it reads back.
    expect(offsets.coveredFrom('t', `p${partition}`, false)).toBeUndefined();
    // 2..4 never seen, 5..7 seen before: all history up to where it stood (8), not delivered.
    for (let i = 2; i < 8; i++) expect(offsets.advance(record(partition, i))).toBe('history');
    await reached;
    expect(done).toBe(true);
    expect(offsets.coveredFrom('t', `p${partition}`, false)).toBe(2);
    expect(offsets.advance(record(partition, 8))).toBe('live');
    // Covered now: a resume after 1 again is not held.
    expect(interest.reach('/topic/x', 1)).toBeUndefined();
    interest.stop();
  });

  it('reads back nothing for a warm resume older than what Kafka keeps within the history age', async () => {
    const { kafka, partition, control, offsets, interest } = await setup();
    await interest.reach('/topic/x', undefined);
    interest.interest('/topic/x', true);
    kafka.append('t', { partition });
    expect(offsets.advance(record(partition, 5))).toBe('live');
    // Records 0..4 aged out of --history-max-age: the first offset within it is the end.
    const offsetsAt = vi.spyOn(kafka, 'offsetsAt').mockResolvedValue(new Map([[partition, 6n]]));
    control.calls.length = 0;
    await interest.reach('/topic/x', 1);
    expect(offsetsAt).toHaveBeenCalled();
    expect(control.calls).toEqual([]);
    expect(offsets.coveredFrom('t', `p${partition}`, false)).toBe(5);
    interest.stop();
  });

  it('with pickUpHistoryMs (the users topic), reads every pick-up back from that long ago', async () => {
    const kafka = new MemoryKafka();
    await kafka.ensureTopics([{ topic: 'u', partitions: 4 }]);
    const partition = partitionFor('/user/bob', 4);
    const old = Date.now() - 120_000;
    kafka.append('u', { partition, timestamp: old });
    for (let i = 0; i < 3; i++) kafka.append('u', { partition });
    const control = new Control();
    const offsets = new Offsets();
    const interest = new PartitionInterest({
      topic: 'u',
      lingerMs: 50,
      historyMaxAgeMs: 60_000,
      readBackTimeoutMs: 2_000,
      pickUpHistoryMs: 60_000,
      client: () => kafka,
      consumer: () => control,
      offsets,
      log: () => {},
    });
    interest.configure(4);
    expect(interest.pausedAtJoin('u', partition)).toBe(true);
    // bob connects: his partition is picked up from a minute ago, not from its end.
    interest.interest('/user/bob', true);
    await vi.waitFor(() => expect(control.calls).toContain(`seek u ${partition} 1`));
    // His first SUBSCRIBE waits until the mailbox is read up to the end (4).
    let done = false;
    const reached = interest.reach('/user/bob', undefined)?.then(() => {
      done = true;
    });
    expect(reached).toBeInstanceOf(Promise);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(done).toBe(false);
    for (let i = 1; i < 4; i++)
      expect(offsets.advance({ ...record(partition, i), topic: 'u' })).toBe('history');
    await reached;
    expect(interest.readPartitions()).toEqual([partition]);
    // bob's last session leaves: let go after the linger.
    interest.interest('/user/bob', false);
    await vi.waitFor(() => expect(control.calls.at(-1)).toBe(`pause u ${partition}`));
    interest.stop();
  });

  it('retries a pick-up that Kafka failed, and holds the SUBSCRIBE until it succeeded', async () => {
    const kafka = new MemoryKafka();
    await kafka.ensureTopics([{ topic: 't', partitions: 4 }]);
    let failures = 2;
    const flaky = {
      latestOffsets: async (topic: string) => {
        if (failures-- > 0) throw new Error('not the leader');
        return kafka.latestOffsets(topic);
      },
      offsetsAt: (topic: string, at: number) => kafka.offsetsAt(topic, at),
    } as unknown as KafkaClient;
    const control = new Control();
    const lines: string[] = [];
    const interest = new PartitionInterest({
      topic: 't',
      lingerMs: 5_000,
      historyMaxAgeMs: 60_000,
      readBackTimeoutMs: 5_000,
      client: () => flaky,
      consumer: () => control,
      offsets: new Offsets(),
      log: (level, line) => lines.push(`${level}: ${line}`),
    });
    interest.configure(4);
    const partition = partitionFor('/topic/x', 4);
    await interest.reach('/topic/x', undefined);
    expect(control.calls).toEqual([`seek t ${partition} 0`, `resume t ${partition}`]);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /picking up partition .* failed \(not the leader\); retrying in 200 ms/,
    );
    interest.stop();
  });

  it('without Kafka does not hold the SUBSCRIBE; the next join pauses the partition and picks it up from an end asked for', async () => {
    const kafka = new MemoryKafka();
    await kafka.ensureTopics([{ topic: 't', partitions: 4 }]);
    const partition = partitionFor('/topic/x', 4);
    for (let i = 0; i < 3; i++) kafka.append('t', { partition });
    const control = new Control();
    let connected = false;
    let joined = false;
    const interest = new PartitionInterest({
      topic: 't',
      lingerMs: 50,
      historyMaxAgeMs: 60_000,
      readBackTimeoutMs: 2_000,
      client: () => (connected ? kafka : undefined),
      consumer: () => (joined ? control : undefined),
      offsets: new Offsets(),
      log: () => {},
    });
    // Subscribed before the first connect: counted once the partitions are known.
    interest.interest('/topic/x', true);
    interest.configure(4);
    expect(interest.reach('/topic/x', undefined)).toBeUndefined();
    // Kafka back, the consumer joining: the wanted partition is paused at the join, never
    // left to the consumer's own position (the end at its first fetch, later than the
    // RECEIPTs already sent), and picked up from the end offset asked for.
    connected = true;
    expect(interest.pausedAtJoin('t', partition)).toBe(true);
    expect(interest.pausedAtJoin('t', (partition + 1) % 4)).toBe(true);
    joined = true;
    await until(() => interest.accepts({ topic: 't', partition }));
    expect(control.calls).toEqual([`seek t ${partition} 3`, `resume t ${partition}`]);
    interest.stop();
  });

  it('holds a SUBSCRIBE while connected and the consumer still joins, until the pick-up', async () => {
    const kafka = new MemoryKafka();
    await kafka.ensureTopics([{ topic: 't', partitions: 4 }]);
    const partition = partitionFor('/topic/x', 4);
    kafka.append('t', { partition });
    const control = new Control();
    let joined = false;
    const interest = new PartitionInterest({
      topic: 't',
      lingerMs: 50,
      historyMaxAgeMs: 60_000,
      readBackTimeoutMs: 5_000,
      client: () => kafka,
      consumer: () => (joined ? control : undefined),
      offsets: new Offsets(),
      log: () => {},
    });
    interest.configure(4);
    let answered = false;
    const reached = interest.reach('/topic/x', undefined);
    expect(reached).toBeInstanceOf(Promise);
    // The subscription is made meanwhile, as the router does.
    interest.interest('/topic/x', true);
    void reached?.then(() => {
      answered = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(answered).toBe(false);
    joined = true;
    await reached;
    expect(control.calls).toEqual([`seek t ${partition} 1`, `resume t ${partition}`]);
    expect(interest.accepts({ topic: 't', partition })).toBe(true);
    interest.stop();
  });
});

/** Polls until `check` holds, at most 2 s. */
async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('FetchCounts', () => {
  it('counts records per topic and partition', () => {
    const counts = new FetchCounts();
    counts.add('t', 2);
    counts.add('t', 2);
    counts.add('u', 0);
    expect(counts.of('t', 2)).toBe(2);
    expect(counts.of('t', 0)).toBe(0);
    expect(counts.of('t')).toBe(2);
    expect(counts.snapshot()).toEqual({ t: [0, 0, 2], u: [1] });
  });
});

describe('History read back from before what it kept', () => {
  it('puts older messages of the epoch in position order, once, and drops what exceeds its bound', () => {
    const history = new History({ maxMessages: 5, maxAgeMs: 60_000 });
    const message = (n: number) =>
      ({
        id: `m${n}`,
        destination: '/topic/x',
        headers: [],
        body: new Uint8Array(),
        position: { epoch: 'p1', n },
        at: Date.now(),
        replayed: true,
      }) as unknown as Message;
    for (const n of [6, 7, 3, 5, 4, 5, 7]) history.append(message(n), Date.now());
    const replay = history.replay('/topic/x', { epoch: 'p1', n: 2 }, 3, Date.now());
    expect(replay.messages.map((m) => m.position?.n)).toEqual([3, 4, 5, 6, 7]);
    expect(replay.complete).toBe(true);
    // Beyond the bound the oldest goes, and a resume from before it is incomplete.
    history.append(message(2), Date.now());
    const after1 = history.replay('/topic/x', { epoch: 'p1', n: 1 }, 2, Date.now());
    expect(after1.messages.map((m) => m.position?.n)).toEqual([3, 4, 5, 6, 7]);
    expect(after1.complete).toBe(false);
  });
});

describe('History read back twice', () => {
  it('keeps a message read again once', () => {
    const history = new History({ maxMessages: 10, maxAgeMs: 60_000 });
    const message = (n: number) =>
      ({
        id: `m${n}`,
        destination: '/topic/x',
        headers: [],
        body: new Uint8Array(),
        position: { epoch: 'p1', n },
        at: Date.now(),
        replayed: true,
      }) as unknown as Message;
    for (const n of [3, 4, 5, 3, 4, 5, 6]) history.append(message(n), Date.now());
    const replay = history.replay('/topic/x', { epoch: 'p1', n: 2 }, 3, Date.now());
    expect(replay.messages.map((m) => m.position?.n)).toEqual([3, 4, 5, 6]);
    expect(replay.complete).toBe(true);
  });
});
