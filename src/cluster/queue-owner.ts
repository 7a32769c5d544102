/**
 * The owner's side of cluster-wide queues (docs/cluster-queues.md): the
 * state of every queue of one partition of the queues topic, rebuilt from
 * the partition's records and, once caught up with its end, the decisions:
 * which consumer gets which message (written back as `assign` records),
 * what goes back to the queue when a consumer NACKs or goes, what is
 * dead-lettered. Nothing here talks to Kafka: {@link QueueOwnership} feeds
 * it records and produces what it decides.
 */
import type { Outgoing } from '../broker/message.js';
import type { Header } from '../frame/frame.js';
import { Duplicates } from './duplicates.js';
import type { ProducedRecord } from './kafka-client.js';
import type { ConsumerInfo, QueueOp, QueueRecords } from './queue-records.js';

/** The limits an owner applies. */
export interface OwnerPolicy {
  /**
   * Most messages waiting in one queue: from there on every instance refuses
   * SENDs to it (`STOMP_ERR_QUEUE_FULL`); what gets past the refusal while it
   * spreads is kept up to twice as many, past that the oldest is dead-lettered.
   */
  readonly maxQueueMessages: number;
  /** Deliveries of one message before it is dead-lettered. */
  readonly maxDeliveries: number;
  /** Where dead letters go; empty drops them. */
  readonly deadLetterQueue: string;
  /** Oldest a waiting message may get, ms; older ones are dead-lettered. */
  readonly maxAgeMs: number;
  /** A consumer whose instance has not said it is alive for this long is gone, ms. */
  readonly aliveTimeoutMs: number;
}

/** One message of a queue, as the owner tracks it. */
interface Held {
  readonly message: Outgoing;
  /** The offset of its `send` record: the partition must be read from there to know it. */
  readonly offset: bigint;
  /** When it was sent (the record's timestamp), ms since 1970. */
  readonly at: number;
  deliveries: number;
  /** The consumer holding it now; undefined while it waits. */
  holder: string | undefined;
  /** The consumer that NACKed it last: others are tried first. */
  avoid: string | undefined;
}

/** One consumer, as the owner tracks it. */
interface ConsumerState {
  info: ConsumerInfo;
  /** Ids of the messages it holds, in the order given. */
  readonly held: Set<string>;
  /** When its instance last said it is there (a record's timestamp), ms since 1970. */
  seenAt: number;
  /** The offset of that record. */
  offset: bigint;
  /**
   * False for a consumer known only from an `assign` (a successor reading from a
   * watermark after its join): it holds what it was given but gets nothing new
   * until its instance's heart-beat names it, and is gone if none does in time.
   */
  known: boolean;
}

/** Message ids in line, oldest first: taking the first is cheap, putting some back in front copies. */
class Line {
  private items: string[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  first(): string | undefined {
    return this.items[this.head];
  }

  push(id: string): void {
    this.items.push(id);
  }

  shift(): string | undefined {
    if (this.head >= this.items.length) return undefined;
    const id = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return id;
  }

  /** Puts `ids` in front, in their order. */
  unshift(ids: readonly string[]): void {
    this.items = [...ids, ...this.items.slice(this.head)];
    this.head = 0;
  }

  remove(id: string): void {
    const index = this.items.indexOf(id, this.head);
    if (index >= 0) this.items.splice(index, 1);
  }

  *[Symbol.iterator](): IterableIterator<string> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i] as string;
  }
}

/** One queue of the partition. */
class OwnedQueue {
  /** Every message not yet consumed, by id. */
  readonly messages = new Map<string, Held>();
  /** The ids of the waiting ones, oldest first (redeliveries go to the front). */
  readonly waiting = new Line();
  /** Consumers in the order they came. */
  readonly consumers: string[] = [];
  next = 0;
  /** While full (SENDs refused): when that was last said, ms since 1970. */
  fullSaidAt: number | undefined;

  constructor(readonly name: string) {}

  get depth(): number {
    return this.waiting.length;
  }
}

/** What an owner counts (for the metrics and the benchmark). */
export interface OwnerCounters {
  assigned: number;
  redelivered: number;
  deadLettered: number;
}

/** The queues of one partition: their state, and (once live) their dispatch. */
export class OwnedPartition {
  private readonly queues = new Map<string, OwnedQueue>();
  private readonly consumers = new Map<string, ConsumerState>();
  private readonly sends = new Duplicates();
  /** Queues changed by the records applied since the last dispatch. */
  private readonly touched = new Set<OwnedQueue>();
  /** The offset after the last record applied. */
  next: bigint;
  /** Caught up with the partition's end: decisions are made (before, only records applied). */
  live = false;

  constructor(
    readonly partition: number,
    from: bigint,
    private readonly policy: OwnerPolicy,
    private readonly records: QueueRecords,
    private readonly produce: (record: ProducedRecord) => void,
    private readonly counters: OwnerCounters = { assigned: 0, redelivered: 0, deadLettered: 0 },
    /** The owner's clock, ms since 1970. */
    private readonly clock: () => number = Date.now,
  ) {
    this.next = from;
  }

  /** Messages waiting in `queue` (not given to a consumer). */
  depth(queue: string): number {
    return this.queues.get(queue)?.depth ?? 0;
  }

  /** Every queue of the partition with what waits there and its consumers (metrics). */
  *stats(): Iterable<{ queue: string; depth: number; held: number; consumers: number }> {
    for (const q of this.queues.values()) {
      yield {
        queue: q.name,
        depth: q.depth,
        held: q.messages.size - q.depth,
        consumers: q.consumers.length,
      };
    }
  }

  /** Applies one record of the partition (in offset order); a live owner dispatches after. */
  apply(op: QueueOp, offset: bigint, timestamp: number): void {
    if (offset < this.next) return;
    this.next = offset + 1n;
    switch (op.op) {
      case 'send':
        this.onSend(op.message, offset, timestamp);
        break;
      case 'assign':
        this.onAssign(op.queue, op.consumer, op.deliveries, op.message.id, timestamp, offset);
        break;
      case 'join':
        this.upsert(op.info, timestamp, offset);
        break;
      case 'leave':
        this.remove(op.consumer);
        break;
      case 'alive':
        this.onAlive(op.instance, op.consumers, timestamp, offset);
        break;
      case 'ack':
      case 'drop':
        for (const id of op.ids) this.resolve(op.queue, id);
        break;
      case 'nack':
        this.onNack(op.queue, op.consumer, op.ids);
        break;
      case 'full':
        break;
    }
    if (this.live) this.dispatch();
  }

  /** The partition's end is reached: from now on the owner decides. */
  goLive(now: number): void {
    if (this.live) return;
    this.live = true;
    for (const q of this.queues.values()) this.touched.add(q);
    this.tick(now);
  }

  /**
   * The time-based part: consumers whose instance went quiet are gone, waiting
   * messages past the age bound and worn-out ones are dead-lettered.
   */
  tick(now: number): void {
    if (!this.live) return;
    for (const state of [...this.consumers.values()]) {
      if (state.seenAt < now - this.policy.aliveTimeoutMs) this.remove(state.info.consumer);
    }
    const oldest = now - this.policy.maxAgeMs;
    for (const q of this.queues.values()) {
      const expired: string[] = [];
      for (const id of q.waiting) {
        const held = q.messages.get(id) as Held;
        if (held.at < oldest || held.deliveries >= this.policy.maxDeliveries) expired.push(id);
      }
      for (const id of expired) this.deadLetter(q, q.messages.get(id) as Held, 'expired');
      if (q.depth >= this.policy.maxQueueMessages) this.sayFull(q, now);
    }
    this.dispatch();
  }

  /**
   * Where this partition must be read from to rebuild this state: the oldest
   * message not consumed, and the last word of each consumer.
   */
  lowWatermark(): bigint {
    let low = this.next;
    for (const q of this.queues.values()) {
      for (const held of q.messages.values()) if (held.offset < low) low = held.offset;
    }
    for (const state of this.consumers.values()) if (state.offset < low) low = state.offset;
    return low;
  }

  private queue(name: string): OwnedQueue {
    let q = this.queues.get(name);
    if (!q) {
      q = new OwnedQueue(name);
      this.queues.set(name, q);
    }
    this.touched.add(q);
    return q;
  }

  private forgetIfIdle(q: OwnedQueue): void {
    if (q.messages.size > 0 || q.consumers.length > 0) return;
    this.checkRoom(q);
    this.queues.delete(q.name);
  }

  private onSend(message: Outgoing, offset: bigint, at: number): void {
    // A copy written by a retried produce request (ids are unique across queues).
    if (this.sends.repeated(this.records.topic, this.partition, message.id)) return;
    const q = this.queue(message.destination);
    if (q.messages.has(message.id)) return;
    q.messages.set(message.id, {
      message,
      offset,
      at,
      deliveries: 0,
      holder: undefined,
      avoid: undefined,
    });
    q.waiting.push(message.id);
    if (!this.live) return;
    if (q.depth >= this.policy.maxQueueMessages) this.sayFull(q, this.clock());
    if (q.depth > 2 * this.policy.maxQueueMessages) {
      const oldest = q.messages.get(q.waiting.first() as string) as Held;
      this.deadLetter(q, oldest, 'overflow');
    }
  }

  /** Tells every instance to refuse SENDs to `q` (again every second while it stays full). */
  private sayFull(q: OwnedQueue, now: number): void {
    if (q.fullSaidAt !== undefined && now - q.fullSaidAt < 1_000) return;
    q.fullSaidAt = now;
    this.produce(this.records.full(q.name, true));
  }

  /** Full queues with room again (under 90% of the limit) take SENDs again. */
  private checkRoom(q: OwnedQueue): void {
    if (q.fullSaidAt === undefined || q.depth >= 0.9 * this.policy.maxQueueMessages) return;
    q.fullSaidAt = undefined;
    this.produce(this.records.full(q.name, false));
  }

  private onAssign(
    queue: string,
    consumer: string,
    deliveries: number,
    id: string,
    at: number,
    offset: bigint,
  ): void {
    const q = this.queues.get(queue);
    const held = q?.messages.get(id);
    if (!q || !held) return;
    if (held.holder === consumer && held.deliveries === deliveries) return;
    let state = this.consumers.get(consumer);
    if (!state) {
      if (this.live) {
        // Given (by an owner before this one) to a consumer that has left since: it waits again.
        this.release(q, held);
        held.deliveries = Math.max(held.deliveries, deliveries);
        q.waiting.unshift([id]);
        this.touched.add(q);
        return;
      }
      const info = { consumer, instance: '', queue, credit: 0 };
      state = { info, held: new Set(), seenAt: at, offset, known: false };
      this.consumers.set(consumer, state);
    }
    this.release(q, held);
    held.deliveries = Math.max(held.deliveries, deliveries);
    held.holder = consumer;
    state.held.add(id);
  }

  private onAlive(
    instance: string,
    listed: readonly ConsumerInfo[],
    at: number,
    offset: bigint,
  ): void {
    const present = new Set<string>();
    for (const info of listed) {
      present.add(info.consumer);
      this.upsert(info, at, offset);
    }
    // Its consumers of this partition's queues it no longer lists have left.
    for (const state of [...this.consumers.values()]) {
      if (state.info.instance === instance && !present.has(state.info.consumer)) {
        this.remove(state.info.consumer);
      }
    }
  }

  private onNack(queue: string, consumer: string, ids: readonly string[]): void {
    const q = this.queues.get(queue);
    if (!q) return;
    const back: Held[] = [];
    for (const id of ids) {
      const held = q.messages.get(id);
      if (!held || held.holder !== consumer) continue;
      this.release(q, held);
      held.avoid = consumer;
      back.push(held);
    }
    this.requeue(q, back);
  }

  private upsert(info: ConsumerInfo, recordAt: number, offset: bigint): void {
    // Live, the owner's own clock says when it heard (other machines' clocks may be off);
    // rebuilding, the record's time is all there is.
    const at = this.live ? this.clock() : recordAt;
    const state = this.consumers.get(info.consumer);
    if (state) {
      state.info = info;
      state.seenAt = Math.max(state.seenAt, at);
      state.offset = offset;
      if (!state.known) {
        state.known = true;
        this.queue(info.queue).consumers.push(info.consumer);
      }
      return;
    }
    this.consumers.set(info.consumer, { info, held: new Set(), seenAt: at, offset, known: true });
    this.queue(info.queue).consumers.push(info.consumer);
  }

  /** A consumer left or its instance went quiet: what it held goes back, marked redelivered. */
  private remove(consumer: string): void {
    const state = this.consumers.get(consumer);
    if (!state) return;
    this.consumers.delete(consumer);
    const q = this.queue(state.info.queue);
    const index = q.consumers.indexOf(consumer);
    if (index >= 0) q.consumers.splice(index, 1);
    const back: Held[] = [];
    for (const id of state.held) {
      const held = q.messages.get(id);
      if (held) {
        held.holder = undefined;
        back.push(held);
      }
    }
    state.held.clear();
    this.requeue(q, back);
    this.forgetIfIdle(q);
  }

  /** Back to the front of the queue in their original order; the worn out are dead-lettered (live). */
  private requeue(q: OwnedQueue, back: Held[]): void {
    if (back.length === 0) return;
    back.sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
    const again: string[] = [];
    for (const held of back) {
      if (this.live && held.deliveries >= this.policy.maxDeliveries) {
        this.deadLetter(q, held, 'max-deliveries', false);
      } else {
        again.push(held.message.id);
      }
    }
    if (again.length > 0) q.waiting.unshift(again);
    this.touched.add(q);
  }

  /** Takes a message off its holder (or out of the waiting line). */
  private release(q: OwnedQueue, held: Held): void {
    if (held.holder !== undefined) {
      this.consumers.get(held.holder)?.held.delete(held.message.id);
      held.holder = undefined;
      this.touched.add(q);
    } else {
      q.waiting.remove(held.message.id);
    }
  }

  /** Consumed (ACK, auto), or dropped by an owner: gone from the queue. */
  private resolve(queue: string, id: string): void {
    const q = this.queues.get(queue);
    const held = q?.messages.get(id);
    if (!q || !held) return;
    this.release(q, held);
    q.messages.delete(id);
    this.touched.add(q);
    this.forgetIfIdle(q);
  }

  /** Moves a message to the dead letter queue (a cluster queue too) and drops it here. */
  private deadLetter(q: OwnedQueue, held: Held, reason: string, waiting = true): void {
    const { message } = held;
    const target = this.policy.deadLetterQueue;
    if (target && target !== q.name) {
      const headers: Header[] = [
        ...message.headers,
        ['original-destination', q.name],
        ['delivery-count', String(held.deliveries)],
        ['x-dead-letter-reason', reason],
      ];
      // An id of its own: the dead letter may share the partition (and its duplicate check) with
      // the original. Derived, so that the same dead letter keeps the same id.
      const id = `${message.id}.dead`;
      this.produce(this.records.send({ ...message, id, destination: target, headers }));
      this.counters.deadLettered++;
    }
    this.produce(this.records.drop(q.name, [message.id]));
    if (waiting) this.release(q, held);
    q.messages.delete(message.id);
    this.touched.add(q);
  }

  /**
   * Gives waiting messages to consumers with room, round robin, each message
   * preferably to another consumer than the one that NACKed it.
   */
  private dispatch(): void {
    if (this.touched.size === 0) return;
    const queues = [...this.touched];
    this.touched.clear();
    for (const q of queues) {
      while (q.waiting.length > 0 && q.consumers.length > 0) {
        const id = q.waiting.first() as string;
        const held = q.messages.get(id) as Held;
        const consumer = this.pick(q, held.avoid);
        if (!consumer) break;
        q.waiting.shift();
        held.deliveries++;
        held.holder = consumer.info.consumer;
        held.avoid = undefined;
        consumer.held.add(id);
        this.counters.assigned++;
        if (held.deliveries > 1) this.counters.redelivered++;
        this.produce(this.records.assign(q.name, held.holder, held.deliveries, held.message));
      }
      this.checkRoom(q);
      this.forgetIfIdle(q);
    }
  }

  private pick(q: OwnedQueue, avoid: string | undefined): ConsumerState | undefined {
    const n = q.consumers.length;
    for (let i = 0; i < n; i++) {
      const index = (q.next + i) % n;
      const state = this.consumers.get(q.consumers[index] as string);
      if (!state || state.held.size >= state.info.credit) continue;
      // The one that NACKed it gets it again only when it is the only consumer.
      if (state.info.consumer === avoid && n > 1) continue;
      q.next = (index + 1) % n;
      return state;
    }
    return undefined;
  }
}
