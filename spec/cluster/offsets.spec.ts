import { describe, expect, it } from 'vitest';
import type { ConsumedRecord } from '../../src/cluster/kafka-client.js';
import { epochOf, GAP_REFETCHES, Offsets, partitionOf } from '../../src/cluster/offsets.js';
import { MemoryKafka } from '../helpers/memory-kafka.js';

function fetched(topic: string, partition: number, offset: number): ConsumedRecord {
  return {
    topic,
    partition,
    offset: String(offset),
    key: null,
    value: null,
    timestamp: Date.now(),
    headers: [],
  };
}

/** A memory Kafka with `t` of two partitions: two old records and one recent on p0, one recent on p1. */
async function kafkaWithHistory(): Promise<MemoryKafka> {
  const kafka = new MemoryKafka();
  await kafka.ensureTopics([{ topic: 't', partitions: 2 }]);
  const old = Date.now() - 60_000;
  kafka.append('t', { partition: 0, timestamp: old });
  kafka.append('t', { partition: 0, timestamp: old });
  kafka.append('t', { partition: 0 });
  kafka.append('t', { partition: 1 });
  return kafka;
}

describe('Offsets', () => {
  it('names a partition p<partition> and reads the name back', () => {
    expect(epochOf(3)).toBe('p3');
    expect(epochOf(3)).toBe(epochOf(3));
    expect(partitionOf('p3')).toBe(3);
    expect(partitionOf('p')).toBeUndefined();
    expect(partitionOf('3')).toBeUndefined();
    expect(partitionOf('a1b2c3d4')).toBeUndefined();
  });

  it('gives the consumer lag per partition: the end a fetch told, less the next offset to read', () => {
    const offsets = new Offsets();
    expect(offsets.lag()).toEqual([]);
    offsets.partitionEnd('t', 0, 10n);
    offsets.partitionEnd('t', 1, 4n);
    // Nothing read yet from p0: known only by its end, so no lag is claimed for it.
    offsets.advance(fetched('t', 1, 0));
    expect(offsets.lag()).toEqual([
      { topic: 't', partition: 0, lag: 0 },
      { topic: 't', partition: 1, lag: 3 },
    ]);
    offsets.advance(fetched('t', 0, 5));
    offsets.advance(fetched('t', 1, 3));
    expect(offsets.lag()).toEqual([
      { topic: 't', partition: 0, lag: 4 },
      { topic: 't', partition: 1, lag: 0 },
    ]);
  });

  it('starts reading where the history starts, and tells history, live and refetched records apart', async () => {
    const offsets = new Offsets();
    await offsets.readStart(await kafkaWithHistory(), [{ topic: 't', historyMs: 10_000 }]);
    expect(offsets.next.get('t')).toEqual(
      new Map([
        [0, 2n],
        [1, 0n],
      ]),
    );
    expect(offsets.caughtUp()).toBe(false);
    expect(offsets.advance(fetched('t', 0, 2))).toBe('history');
    expect(offsets.advance(fetched('t', 1, 0))).toBe('history');
    expect(offsets.caughtUp()).toBe(true);
    expect(offsets.advance(fetched('t', 0, 3))).toBe('live');
    expect(offsets.advance(fetched('t', 0, 2))).toBe('seen');
    expect(offsets.advance(fetched('t', 0, 3))).toBe('seen');
    expect(offsets.next.get('t')?.get(0)).toBe(4n);
  });

  it('reads a topic without history from its live end, and keeps its place on a reconnect', async () => {
    const kafka = await kafkaWithHistory();
    const offsets = new Offsets();
    await offsets.readStart(kafka, [{ topic: 't', historyMs: undefined }]);
    expect(offsets.next.get('t')).toEqual(
      new Map([
        [0, 3n],
        [1, 1n],
      ]),
    );
    expect(offsets.caughtUp()).toBe(true);
    offsets.advance(fetched('t', 0, 3));
    kafka.append('t', { partition: 0 });
    await offsets.readStart(kafka, [{ topic: 't', historyMs: undefined }]);
    expect(offsets.next.get('t')?.get(0)).toBe(4n);
  });

  it('vouches for a partition from where reading started, once the history is read back', async () => {
    const offsets = new Offsets();
    await offsets.readStart(await kafkaWithHistory(), [{ topic: 't', historyMs: 10_000 }]);
    expect(offsets.coveredFrom('t', 'p0', false)).toBeUndefined();
    offsets.advance(fetched('t', 0, 2));
    expect(offsets.coveredFrom('t', 'p0', false)).toBe(2);
    expect(offsets.coveredFrom('t', 'p1', false)).toBeUndefined();
    offsets.advance(fetched('t', 1, 0));
    expect(offsets.coveredFrom('t', 'p1', false)).toBe(0);
  });

  it('vouches for nothing it does not know: other epochs, partitions and topics', async () => {
    const offsets = new Offsets();
    await offsets.readStart(await kafkaWithHistory(), [{ topic: 't', historyMs: undefined }]);
    expect(offsets.coveredFrom('t', 'p0', false)).toBe(3);
    expect(offsets.coveredFrom('t', 'p7', false)).toBeUndefined();
    expect(offsets.coveredFrom('t', 'deadbeef', false)).toBeUndefined();
    expect(offsets.coveredFrom('other', 'p0', false)).toBeUndefined();
  });

  it('vouches for no bridged topic of several partitions, which has no one order per destination', async () => {
    const kafka = await kafkaWithHistory();
    await kafka.ensureTopics([{ topic: 'one', partitions: 1 }]);
    const offsets = new Offsets();
    const from = [
      { topic: 't', historyMs: undefined },
      { topic: 'one', historyMs: undefined },
    ];
    await offsets.readStart(kafka, from);
    expect(offsets.coveredFrom('t', 'p0', true)).toBeUndefined();
    expect(offsets.coveredFrom('one', 'p0', true)).toBe(0);
  });

  it('vouches only from after a gap in offsets (records skipped), and says so', async () => {
    const gaps: string[] = [];
    const offsets = new Offsets({
      gapless: (topic) => topic === 't',
      onGap: (topic, partition, next, offset) =>
        gaps.push(`${topic}/${partition}: ${next}..${offset}`),
    });
    const kafka = await kafkaWithHistory();
    await kafka.ensureTopics([{ topic: 'bridged', partitions: 1 }]);
    await offsets.readStart(kafka, [
      { topic: 't', historyMs: 10_000 },
      { topic: 'bridged', historyMs: undefined },
    ]);
    offsets.advance(fetched('t', 0, 2));
    offsets.advance(fetched('t', 0, 3));
    expect(offsets.coveredFrom('t', 'p0', false)).toBe(2);
    // Offset 4 never came: a resume after 1, 2 or 3 would miss it.
    expect(offsets.advance(fetched('t', 0, 5))).toBe('live');
    expect(offsets.coveredFrom('t', 'p0', false)).toBe(5);
    expect(gaps).toEqual(['t/0: 4..5']);
    // Where gaps are normal (an outside producer's transaction markers), nothing changes.
    offsets.advance(fetched('bridged', 0, 0));
    offsets.advance(fetched('bridged', 0, 2));
    expect(offsets.coveredFrom('bridged', 'p0', false)).toBe(0);
    expect(gaps).toHaveLength(1);
  });

  it('has a gap fetched again from its start, and takes it as it is only when it stays', () => {
    const refetched: string[] = [];
    const gaps: string[] = [];
    const offsets = new Offsets({
      refetch: (topic, partition, offset) => {
        refetched.push(`${topic}/${partition}@${offset}`);
        return true;
      },
      onGap: (topic, partition, next, offset) =>
        gaps.push(`${topic}/${partition}: ${next}..${offset}`),
    });
    offsets.readFrom('t', 0, 0n, 0n);
    offsets.batchStart();
    expect(offsets.advance(fetched('t', 0, 0))).toBe('live');
    // A stale batch from 2 on: not taken, one refetch from 1 for the whole batch.
    offsets.batchStart();
    expect(offsets.advance(fetched('t', 0, 2))).toBe('gap');
    expect(offsets.advance(fetched('t', 0, 3))).toBe('gap');
    expect(refetched).toEqual(['t/0@1']);
    // The refetch brings 1 on: nothing was lost, nothing is flagged.
    offsets.batchStart();
    for (const n of [1, 2, 3]) expect(offsets.advance(fetched('t', 0, n))).toBe('live');
    expect(offsets.coveredFrom('t', 'p0', false)).toBe(0);
    // A gap that comes back batch after batch is taken after GAP_REFETCHES fetches.
    for (let i = 0; i < GAP_REFETCHES; i++) {
      offsets.batchStart();
      expect(offsets.advance(fetched('t', 0, 6))).toBe('gap');
    }
    offsets.batchStart();
    expect(offsets.advance(fetched('t', 0, 6))).toBe('live');
    expect(refetched).toHaveLength(1 + GAP_REFETCHES);
    expect(gaps).toEqual(['t/0: 4..6']);
    expect(offsets.coveredFrom('t', 'p0', false)).toBe(6);
  });
});
