import { randomBytes } from 'node:crypto';
import type { Fanout } from '../cluster/fanout.js';
import { LocalFanout } from '../cluster/local-fanout.js';
import { StompError } from '../errors.js';
import type { Header } from '../frame/frame.js';
import { destinationKind, destinationUser } from './destination.js';
import { History, type Replay } from './history.js';
import { type Letter, Mailboxes } from './mailbox.js';
import type { Message, Position } from './message.js';
import { Queue } from './queue.js';
import type { Pending, Subscription } from './subscription.js';

/** Limits and policies of the in-process broker. */
export interface BrokerOptions {
  /** Most messages one queue holds (waiting, not yet delivered). Default 10,000. */
  maxQueueMessages: number;
  /** Deliveries of one message before it is dead-lettered. Default 5. */
  maxDeliveries: number;
  /** Where dead letters go; empty drops them. Default `/queue/DLQ`. */
  deadLetterQueue: string;
  /** Most unacknowledged messages one topic subscription may hold. Default 10,000. */
  maxPendingAcks: number;
  /** History kept per topic (and user topic) destination for resumes: most messages. Default 2,000. */
  historyMaxMessages: number;
  /** History kept per destination: oldest message, ms. Default 10 minutes. */
  historyMaxAgeMs: number;
  /** Messages kept per user for their user queues until consumed: most messages. Default 1,000. */
  offlineMaxMessages: number;
  /** Messages kept per user: oldest message, ms. Default 24 hours. */
  offlineMaxAgeMs: number;
}

/** The defaults of {@link BrokerOptions}. */
export const DEFAULT_BROKER_OPTIONS: Readonly<BrokerOptions> = Object.freeze({
  maxQueueMessages: 10_000,
  maxDeliveries: 5,
  deadLetterQueue: '/queue/DLQ',
  maxPendingAcks: 10_000,
  historyMaxMessages: 2_000,
  historyMaxAgeMs: 10 * 60_000,
  offlineMaxMessages: 1_000,
  offlineMaxAgeMs: 24 * 60 * 60_000,
});

/** How often expired history and offline messages are swept, ms. */
const SWEEP_MS = 10_000;

/**
 * Destinations and delivery, without sockets: topic fan-out, queue dispatch
 * to competing consumers, acks, redelivery and dead letters.
 */
export class Broker {
  readonly options: BrokerOptions;
  /** Topic and user destinations (both kinds) by routing name. */
  private readonly topics = new Map<string, Set<Subscription>>();
  private readonly queues = new Map<string, Queue>();
  private readonly history: History;
  private readonly mailboxes: Mailboxes;
  /** Sessions per user on this instance. */
  private readonly users = new Map<string, number>();
  private readonly idPrefix = randomBytes(4).toString('hex');
  private messageSeq = 0;
  private ackSeq = 0;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    options: Partial<BrokerOptions> = {},
    readonly fanout: Fanout = new LocalFanout(),
  ) {
    this.options = { ...DEFAULT_BROKER_OPTIONS, ...options };
    this.history = new History({
      maxMessages: this.options.historyMaxMessages,
      maxAgeMs: this.options.historyMaxAgeMs,
    });
    this.mailboxes = new Mailboxes({
      maxMessages: this.options.offlineMaxMessages,
      maxAgeMs: this.options.offlineMaxAgeMs,
    });
  }

  /** Starts the fan-out (Kafka in cluster mode). */
  async start(): Promise<void> {
    this.sweeper = setInterval(() => {
      const now = Date.now();
      this.history.sweep(now);
      this.mailboxes.sweep(now);
    }, SWEEP_MS);
    this.sweeper.unref();
    await this.fanout.start({
      deliver: (message) => this.deliver(message),
      consumed: (destination, id) => this.mailboxes.remove(destination, id),
      localUsers: () => this.users.keys(),
    });
  }

  /** Stops the fan-out. */
  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    await this.fanout.stop();
  }

  /** A session of `user` connected here (the connection registry). */
  userConnected(user: string): void {
    const had = this.users.get(user) ?? 0;
    this.users.set(user, had + 1);
    if (had === 0) this.fanout.usersChanged();
  }

  /** A session of `user` ended here. */
  userGone(user: string): void {
    const had = this.users.get(user) ?? 0;
    if (had <= 1) {
      this.users.delete(user);
      this.fanout.usersChanged();
    } else {
      this.users.set(user, had - 1);
    }
  }

  /** The instances where `user` has a session now (cluster-wide in cluster mode). */
  whereIs(user: string): string[] {
    return this.fanout.whereIs(user);
  }

  /** Messages waiting for `user` in their user queues on this instance (tests, metrics). */
  waitingFor(user: string): number {
    return this.mailboxes.count(user);
  }

  /**
   * Accepts a SEND. Topic messages go through the fan-out (the returned
   * promise, if any, settles when the message is safe); queue messages are
   * held here. Throws a coded error when the destination is invalid or full.
   */
  send(destination: string, headers: Header[], body: Uint8Array): void | Promise<void> {
    const kind = destinationKind(destination);
    if (!kind) throw new StompError('STOMP_ERR_INVALID_DESTINATION', { detail: destination });
    const message: Message = {
      id: `${this.idPrefix}-${++this.messageSeq}`,
      destination,
      headers,
      body,
      // Every field up front: one object shape for every message on the hot path.
      position: undefined,
      at: undefined,
      replayed: undefined,
      tails: undefined,
    };
    if (kind !== 'queue') return this.fanout.publish(message);
    const queue = this.queue(destination);
    if (queue.size >= this.options.maxQueueMessages) {
      throw new StompError('STOMP_ERR_QUEUE_FULL', { detail: destination });
    }
    queue.push({ message, deliveries: 0 });
    this.dispatch(queue);
  }

  /**
   * Registers a subscription and delivers what waits for it: a user queue's
   * kept messages; with `resumeAfter`, a topic's retained messages after that
   * position (then the live ones, none twice). Returns the replay's outcome
   * when a resume was asked for.
   */
  subscribe(sub: Subscription, resumeAfter?: Position): Replay | undefined {
    const kind = destinationKind(sub.destination);
    if (kind !== 'queue') {
      let subs = this.topics.get(sub.destination);
      if (!subs) {
        subs = new Set();
        this.topics.set(sub.destination, subs);
      }
      subs.add(sub);
      if (kind === 'user-queue') {
        this.fillMailbox(sub);
        return undefined;
      }
      if (!resumeAfter) return undefined;
      const covered = this.fanout.coveredFrom(sub.destination, resumeAfter.epoch);
      const replay = this.history.replay(sub.destination, resumeAfter, covered, Date.now());
      // Live messages this instance has not delivered yet may be ones the
      // client saw elsewhere (another instance ahead of this one): skip them.
      sub.seen = replay.messages.at(-1)?.position ?? resumeAfter;
      sub.resumed = replay.complete ? 'complete' : 'incomplete';
      sub.backlog = [...replay.messages];
      sub.backlogAt = 0;
      this.drainBacklog(sub);
      return replay;
    }
    const queue = this.queue(sub.destination);
    queue.consumers.push(sub);
    this.dispatch(queue);
  }

  /**
   * Removes a subscription. Its unacknowledged queue messages go back to the
   * front of the queue, marked redelivered, for another consumer.
   */
  unsubscribe(sub: Subscription): void {
    const subs = this.topics.get(sub.destination);
    if (subs) {
      subs.delete(sub);
      if (subs.size === 0) this.topics.delete(sub.destination);
      if (destinationKind(sub.destination) === 'user-queue') this.releaseLetters(sub, subs);
      sub.unacked.clear();
      return;
    }
    const queue = this.queues.get(sub.destination);
    if (!queue) return;
    const index = queue.consumers.indexOf(sub);
    if (index >= 0) queue.consumers.splice(index, 1);
    const pending = [...sub.unacked.values()];
    sub.unacked.clear();
    this.requeue(queue, pending);
    this.dropIfIdle(queue);
  }

  /** Acknowledges `ackId` on `sub`; false when it is not pending there. */
  ack(sub: Subscription, ackId: string): boolean {
    const settled = sub.settle(ackId);
    if (!settled) return false;
    const queue = this.queues.get(sub.destination);
    if (queue) this.dispatch(queue);
    else if (destinationKind(sub.destination) === 'user-queue') {
      for (const pending of settled) this.consume(pending.message);
      this.fillMailbox(sub);
    }
    return true;
  }

  /**
   * Rejects `ackId` on `sub`: queue messages go back to the queue, topic
   * messages are delivered to the same subscription again, until
   * `maxDeliveries`, after which they are dead-lettered. False when not pending.
   */
  nack(sub: Subscription, ackId: string): boolean {
    const settled = sub.settle(ackId);
    if (!settled) return false;
    const queue = this.queues.get(sub.destination);
    if (queue) {
      this.requeue(queue, settled);
      return true;
    }
    const userQueue = destinationKind(sub.destination) === 'user-queue';
    for (const pending of settled) {
      if (userQueue) {
        const letter = pending as Letter;
        letter.holders--;
        // Consumed meanwhile by another session: nothing to redeliver.
        if (!this.mailboxes.has(letter.message.destination, letter.message.id)) continue;
        if (letter.deliveries >= this.options.maxDeliveries) this.consume(letter.message, letter);
        else {
          letter.holders++;
          this.deliverTo(sub, letter, true);
        }
      } else if (pending.deliveries < this.options.maxDeliveries) {
        this.deliverTo(sub, pending, true);
      } else {
        this.deadLetter(pending);
      }
    }
    return true;
  }

  /** Tells the broker that a consumer can take messages again (its output drained). */
  resume(subs: Iterable<Subscription>): void {
    for (const sub of subs) {
      const queue = this.queues.get(sub.destination);
      if (queue) this.dispatch(queue);
      else if (sub.backlog) this.drainBacklog(sub);
      else if (sub.behind) this.fillMailbox(sub);
    }
  }

  /** Number of messages waiting in a queue (for tests and metrics). */
  queueDepth(destination: string): number {
    return this.queues.get(destination)?.size ?? 0;
  }

  /**
   * A message from the fan-out: kept in the history (topics) or the user's
   * mailbox (user queues), and, unless it was only read back at start-up,
   * delivered to every local subscriber of its destination.
   */
  deliver(message: Message): void {
    const now = Date.now();
    if (destinationKind(message.destination) === 'user-queue') {
      // Also when read back at start-up: a letter not consumed yet is due.
      const letter = this.mailboxes.add(message, now);
      const ready: Subscription[] = [];
      for (const sub of this.topics.get(message.destination) ?? []) {
        // One with older letters still to take gets this one after them.
        if (sub.behind || !sub.ready) sub.behind = true;
        else ready.push(sub);
      }
      this.offer(ready, letter);
      return;
    }
    this.history.append(message, now);
    if (message.replayed) return;
    const subs = this.topics.get(message.destination);
    if (!subs) return;
    for (const sub of subs) {
      if (sub.seen && !sub.after(message)) continue;
      if (sub.backlog) this.queueBehind(sub, message);
      else this.deliverLive(sub, message);
    }
    // The history keeps the message, not its encoding: that dies young instead of
    // doubling what every kept message holds (a replay encodes it again).
    message.tails = undefined;
  }

  /** Sends a resume's replay while the connection has room; the rest continues on drain. */
  private drainBacklog(sub: Subscription): void {
    const backlog = sub.backlog;
    if (!backlog) return;
    while (sub.backlogAt < backlog.length) {
      if (!sub.consumer.writable) return;
      const message = backlog[sub.backlogAt] as Message;
      backlog[sub.backlogAt++] = undefined;
      if (!this.deliverLive(sub, message)) return;
    }
    sub.backlog = undefined;
  }

  /** A live message for a subscription still replaying: after the replay; bounded. */
  private queueBehind(sub: Subscription, message: Message): void {
    const backlog = sub.backlog as Array<Message | undefined>;
    backlog.push(message);
    if (backlog.length - sub.backlogAt > Math.max(1_000, 2 * this.options.historyMaxMessages)) {
      sub.consumer.overflow();
    }
  }

  /**
   * Offers a user queue's waiting letters to one subscription, oldest first,
   * while it has room (writable, and `prefetch-count` in the client modes);
   * the rest waits for its drain or its acks.
   */
  private fillMailbox(sub: Subscription): void {
    sub.behind = false;
    for (const letter of this.mailboxes.waiting(sub.destination, Date.now())) {
      if (letter.holders > 0) continue;
      if (!sub.ready) {
        sub.behind = true;
        return;
      }
      this.offer([sub], letter);
    }
  }

  /** One topic delivery; a consumer too far behind is disconnected instead. */
  private deliverLive(sub: Subscription, message: Message): boolean {
    if (!sub.consumer.writable) {
      sub.consumer.overflow();
      return false;
    }
    if (sub.ackMode !== 'auto' && sub.unacked.size >= this.options.maxPendingAcks) {
      sub.consumer.tooManyPending();
      return false;
    }
    if (sub.ackMode === 'auto') sub.consumer.deliver(sub, message, undefined, false);
    else this.deliverTo(sub, { message, deliveries: 0 }, false);
    return true;
  }

  /**
   * A user-queue message to subscriptions of its user (every session gets
   * it). In `auto` mode writing it out consumes it; otherwise the ACK does
   * (STOMP 1.2 "SUBSCRIBE ack Header").
   */
  private offer(subs: readonly Subscription[], letter: Letter): void {
    const { message } = letter;
    if (subs.length === 0 || !this.mailboxes.has(message.destination, message.id)) return;
    let consumed = false;
    const redelivered = letter.deliveries > 0;
    // One offer is one delivery, however many sessions of the user take it.
    letter.deliveries++;
    for (const sub of subs) {
      if (sub.ackMode === 'auto') {
        if (this.deliverLive(sub, message)) consumed = true;
      } else if (sub.unacked.size >= this.options.maxPendingAcks) {
        sub.consumer.tooManyPending();
      } else {
        letter.holders++;
        this.handOut(sub, letter, redelivered);
      }
    }
    if (consumed) this.consume(message);
  }

  /**
   * A subscription of a user queue ended: what it held unacknowledged goes to
   * another session with room, or waits; after `maxDeliveries` it is dead-lettered.
   */
  private releaseLetters(sub: Subscription, others: Set<Subscription>): void {
    for (const pending of sub.unacked.values()) {
      const letter = pending as Letter;
      letter.holders--;
      if (letter.holders > 0 || !this.mailboxes.has(letter.message.destination, letter.message.id))
        continue;
      if (letter.deliveries >= this.options.maxDeliveries) {
        this.consume(letter.message, letter);
        continue;
      }
      for (const other of others) {
        if (other.behind || !other.ready) continue;
        this.offer([other], letter);
        break;
      }
    }
  }

  /**
   * A user-queue message was consumed here: forget it, and tell the other
   * instances. With `deadLetter`, it failed `maxDeliveries` times and goes to
   * the user's own dead-letter queue.
   */
  private consume(message: Message, deadLetter?: Letter): void {
    if (!this.mailboxes.remove(message.destination, message.id)) return;
    this.fanout.consumed(message);
    if (deadLetter) this.deadLetter(deadLetter);
  }

  private deliverTo(sub: Subscription, pending: Pending, redelivered: boolean): void {
    pending.deliveries++;
    this.handOut(sub, pending, redelivered);
  }

  /** Writes one delivery, tracked for its ACK in the client modes. */
  private handOut(sub: Subscription, pending: Pending, redelivered: boolean): void {
    let ackId: string | undefined;
    if (sub.ackMode !== 'auto') {
      ackId = String(++this.ackSeq);
      sub.unacked.set(ackId, pending);
    }
    sub.consumer.deliver(sub, pending.message, ackId, redelivered);
  }

  private queue(destination: string): Queue {
    let queue = this.queues.get(destination);
    if (!queue) {
      queue = new Queue(destination);
      this.queues.set(destination, queue);
    }
    return queue;
  }

  private dispatch(queue: Queue): void {
    while (queue.size > 0) {
      const sub = queue.nextReady();
      if (!sub) return;
      const pending = queue.shift() as Pending;
      this.deliverTo(sub, pending, pending.deliveries > 0);
    }
  }

  private requeue(queue: Queue, list: Pending[]): void {
    const back: Pending[] = [];
    for (const pending of list) {
      if (pending.deliveries >= this.options.maxDeliveries) this.deadLetter(pending);
      else back.push(pending);
    }
    if (back.length > 0) {
      queue.requeue(back);
      this.dispatch(queue);
    }
  }

  /**
   * Moves a message that failed `maxDeliveries` times to the dead-letter
   * queue, with `original-destination` and `delivery-count` headers. A full
   * dead-letter queue drops its oldest message to make room.
   */
  private deadLetter(pending: Pending): void {
    const { message } = pending;
    const headers: Header[] = [
      ...message.headers,
      ['original-destination', message.destination],
      ['delivery-count', String(pending.deliveries)],
    ];
    if (destinationKind(message.destination) === 'user-queue') {
      // A user's dead letters stay that user's: /user/queue/DLQ, kept and
      // shared across the cluster like any user-queue message.
      const own = `/user/${destinationUser(message.destination)}/queue/DLQ`;
      if (!this.options.deadLetterQueue || message.destination === own) return;
      const id = `${this.idPrefix}-${++this.messageSeq}`;
      const sent = this.fanout.publish({ id, destination: own, headers, body: message.body });
      // Cluster mode with Kafka down: the dead letter is lost (the fan-out logs it).
      sent?.catch(() => {});
      return;
    }
    const dlq = this.options.deadLetterQueue;
    if (!dlq || message.destination === dlq) return;
    const queue = this.queue(dlq);
    if (queue.size >= this.options.maxQueueMessages) queue.shift();
    queue.push({
      message: { id: message.id, destination: dlq, headers, body: message.body },
      deliveries: 0,
    });
    this.dispatch(queue);
  }

  private dropIfIdle(queue: Queue): void {
    if (queue.size === 0 && queue.consumers.length === 0) this.queues.delete(queue.name);
  }
}
