/**
 * The owner of a partition of the queues topic, in memory: records in,
 * decisions (assign, drop, dead letters) out, as records of the same topic.
 * The end-to-end behaviour with Kafka and instances as processes is
 * spec/e2e/cluster-queues.spec.ts.
 */
import { describe, expect, it } from 'vitest';
import type { Outgoing } from '../../src/broker/message.js';
import type { ConsumedRecord, ProducedRecord } from '../../src/cluster/kafka-client.js';
import { OwnedPartition, type OwnerPolicy } from '../../src/cluster/queue-owner.js';
import { decodeQueueRecord, type QueueOp, QueueRecords } from '../../src/cluster/queue-records.js';

const POLICY: OwnerPolicy = {
  maxQueueMessages: 100,
  maxDeliveries: 3,
  deadLetterQueue: '/queue/DLQ',
  maxAgeMs: 60_000,
  aliveTimeoutMs: 1_000,
};

const Q = '/queue/jobs';

/** One partition's log: what is appended is applied in order, decisions are appended too. */
class Log {
  readonly records = new QueueRecords('spec.queues', 1);
  readonly log: Array<{ op: QueueOp; at: number }> = [];
  readonly owner: OwnedPartition;
  now = 1_000_000;

  constructor(policy: Partial<OwnerPolicy> = {}, live = true) {
    this.owner = this.create(policy);
    if (live) this.owner.goLive(this.now);
  }

  create(policy: Partial<OwnerPolicy> = {}): OwnedPartition {
    return new OwnedPartition(
      0,
      0n,
      { ...POLICY, ...policy },
      this.records,
      (record) => this.append(record),
      undefined,
      () => this.now,
    );
  }

  /** Appends a record (as Kafka would) and lets the owner read it. */
  append(record: ProducedRecord): void {
    const offset = this.log.length;
    const at = this.now;
    const op = decode(record, offset, at);
    this.log.push({ op, at });
    // Read back after what is being applied now, as from Kafka.
    queueMicrotask(() => this.owner.apply(op, BigInt(offset), at));
  }

  /** Replays the whole log into `owner` (a successor rebuilding). */
  replay(owner: OwnedPartition, from = 0): void {
    for (let i = from; i < this.log.length; i++) {
      const entry = this.log[i] as { op: QueueOp; at: number };
      owner.apply(entry.op, BigInt(i), entry.at);
    }
  }

  send(id: string, body = id): void {
    this.append(this.records.send(message(id, body)));
  }

  join(consumer: string, instance: string, credit: number): void {
    this.append(this.records.join({ consumer, instance, queue: Q, credit }));
  }

  /** Assignments so far: [message id, consumer, deliveries]. */
  assigned(): Array<[string, string, number]> {
    return this.log
      .map((e) => e.op)
      .filter((op): op is Extract<QueueOp, { op: 'assign' }> => op.op === 'assign')
      .map((op) => [op.message.id, op.consumer, op.deliveries]);
  }

  ops(kind: QueueOp['op']): QueueOp[] {
    return this.log.map((e) => e.op).filter((op) => op.op === kind);
  }
}

function message(id: string, body: string): Outgoing {
  return { id, destination: Q, headers: [['x', '1']], body: Buffer.from(body) };
}

function decode(record: ProducedRecord, offset: number, now: number): QueueOp {
  const consumed: ConsumedRecord = {
    topic: record.topic,
    partition: 0,
    offset: String(offset),
    key: record.key === null ? null : Buffer.from(record.key),
    value: record.value,
    timestamp: now,
    headers: record.headers.map(([n, v]) => [n, Buffer.from(v)] as const),
  };
  const op = decodeQueueRecord(consumed);
  if (!op) throw new Error('not a queue record');
  return op;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('the owner of a queue partition', () => {
  it('gives each message to one consumer, round robin among those with room', async () => {
    const log = new Log();
    log.join('b/1', 'b', 10);
    log.join('c/1', 'c', 10);
    for (let i = 0; i < 4; i++) log.send(`m${i}`);
    await settle();
    expect(log.assigned()).toEqual([
      ['m0', 'b/1', 1],
      ['m1', 'c/1', 1],
      ['m2', 'b/1', 1],
      ['m3', 'c/1', 1],
    ]);
  });

  it('waits while nobody consumes, and respects each consumer credit (prefetch-count)', async () => {
    const log = new Log();
    for (let i = 0; i < 3; i++) log.send(`m${i}`);
    await settle();
    expect(log.assigned()).toEqual([]);
    expect(log.owner.depth(Q)).toBe(3);
    log.join('b/1', 'b', 1);
    await settle();
    expect(log.assigned()).toEqual([['m0', 'b/1', 1]]);
    log.append(log.records.settle(Q, 'b/1', ['m0'], true));
    await settle();
    expect(log.assigned().map((a) => a[0])).toEqual(['m0', 'm1']);
    expect(log.owner.depth(Q)).toBe(1);
  });

  it('a NACK gives the message to another consumer, redelivered; the worn out go to the dead letter queue', async () => {
    const log = new Log();
    log.join('b/1', 'b', 10);
    log.join('c/1', 'c', 10);
    log.send('m0');
    await settle();
    expect(log.assigned()).toEqual([['m0', 'b/1', 1]]);
    log.append(log.records.settle(Q, 'b/1', ['m0'], false));
    await settle();
    expect(log.assigned().at(-1)).toEqual(['m0', 'c/1', 2]);
    log.append(log.records.settle(Q, 'c/1', ['m0'], false));
    await settle();
    expect(log.assigned().at(-1)).toEqual(['m0', 'b/1', 3]);
    log.append(log.records.settle(Q, 'b/1', ['m0'], false));
    await settle();
    const dead = log.ops('send').at(-1) as Extract<QueueOp, { op: 'send' }>;
    expect(dead.queue).toBe('/queue/DLQ');
    expect(dead.message.headers).toContainEqual(['original-destination', Q]);
    expect(dead.message.headers).toContainEqual(['delivery-count', '3']);
    expect(log.ops('drop')).toHaveLength(1);
    expect(log.owner.depth(Q)).toBe(0);
    // The dead letter waits in the DLQ, in the same partition: an id of its own, not taken
    // for a copy of the original.
    expect(dead.message.id).toBe('m0.dead');
    expect(log.owner.depth('/queue/DLQ')).toBe(1);
  });

  it('a consumer that leaves, or whose instance goes quiet, gives back what it held, in order', async () => {
    const log = new Log();
    log.join('b/1', 'b', 10);
    log.join('c/1', 'c', 10);
    for (let i = 0; i < 4; i++) log.send(`m${i}`);
    await settle();
    log.append(log.records.leave(Q, 'b/1'));
    await settle();
    // m0 and m2 were b's: to c now, in their order, redelivered.
    expect(log.assigned().slice(4)).toEqual([
      ['m0', 'c/1', 2],
      ['m2', 'c/1', 2],
    ]);
    // c's instance says nothing for longer than the timeout: a new consumer gets all.
    log.join('d/1', 'd', 10);
    await settle();
    log.now += 5_000;
    log.append(
      log.records.alive(0, 'd', [{ consumer: 'd/1', instance: 'd', queue: Q, credit: 10 }]),
    );
    await settle();
    log.owner.tick(log.now);
    await settle();
    expect(
      log
        .assigned()
        .filter((a) => a[1] === 'd/1')
        .map((a) => a[0]),
    ).toEqual(['m0', 'm1', 'm2', 'm3']);
  });

  it('an instance that no longer lists a consumer in its heart-beat has lost it', async () => {
    const log = new Log();
    log.join('b/1', 'b', 10);
    log.join('c/1', 'c', 10);
    log.send('m0');
    await settle();
    expect(log.assigned()).toEqual([['m0', 'b/1', 1]]);
    log.append(log.records.alive(0, 'b', []));
    await settle();
    expect(log.assigned().at(-1)).toEqual(['m0', 'c/1', 2]);
  });

  it('an ACK consumes the message wherever it is; a copy of a SEND written twice is taken once', async () => {
    const log = new Log();
    log.send('m0');
    log.send('m0');
    await settle();
    expect(log.owner.depth(Q)).toBe(1);
    log.append(log.records.settle(Q, 'x/1', ['m0'], true));
    await settle();
    expect(log.owner.depth(Q)).toBe(0);
  });

  it('a full queue is said full (SENDs refused everywhere), and past twice the limit drops its oldest to the dead letters', async () => {
    const log = new Log({ maxQueueMessages: 2 });
    for (let i = 0; i < 5; i++) log.send(`m${i}`);
    await settle();
    expect(log.ops('full')).toMatchObject([{ queue: Q, full: true }]);
    // What got past the refusal meanwhile is kept up to twice the limit.
    expect(log.owner.depth(Q)).toBe(4);
    const dead = log.ops('send') as Array<Extract<QueueOp, { op: 'send' }>>;
    expect(dead.filter((op) => op.queue === '/queue/DLQ').map((op) => op.message.id)).toEqual([
      'm0.dead',
    ]);
    log.join('b/1', 'b', 10);
    await settle();
    expect(log.owner.depth(Q)).toBe(0);
    expect(log.ops('full')).toMatchObject([
      { queue: Q, full: true },
      { queue: Q, full: false },
    ]);
  });

  it('a successor rebuilt from the low watermark decides as the first owner would have', async () => {
    const log = new Log();
    log.join('b/1', 'b', 2);
    for (let i = 0; i < 5; i++) log.send(`m${i}`);
    await settle();
    log.append(log.records.settle(Q, 'b/1', ['m0'], true));
    await settle();
    expect(log.assigned().map((a) => a[0])).toEqual(['m0', 'm1', 'm2']);
    // b's join pins the watermark until its instance's next heart-beat.
    expect(log.owner.lowWatermark()).toBe(0n);
    log.append(
      log.records.alive(0, 'b', [{ consumer: 'b/1', instance: 'b', queue: Q, credit: 2 }]),
    );
    await settle();
    // The first owner dies; a successor starts from the committed low watermark: m1's SEND.
    const from = Number(log.owner.lowWatermark());
    expect(from).toBe(2);
    const successor = new OwnedPartition(0, BigInt(from), POLICY, log.records, () => {});
    log.replay(successor, from);
    expect(successor.depth(Q)).toBe(2);
    const decided: ProducedRecord[] = [];
    const live = new OwnedPartition(0, BigInt(from), POLICY, log.records, (r) => decided.push(r));
    log.replay(live, from);
    live.goLive(log.now);
    // Nothing decided again: b still holds m1 and m2 (credit 2), m3 and m4 wait.
    expect(decided).toEqual([]);
    live.apply(
      decode(log.records.settle(Q, 'b/1', ['m1'], true), log.log.length, log.now),
      BigInt(log.log.length),
      log.now,
    );
    expect(decided.map((r) => decode(r, 0, 0))).toMatchObject([
      { op: 'assign', consumer: 'b/1', deliveries: 1, message: { id: 'm3' } },
    ]);
  });

  it('a rebuilding owner decides nothing until it is live', async () => {
    const log = new Log({}, false);
    log.join('b/1', 'b', 10);
    log.send('m0');
    await settle();
    expect(log.assigned()).toEqual([]);
    log.owner.goLive(log.now);
    await settle();
    expect(log.assigned()).toEqual([['m0', 'b/1', 1]]);
  });
});
