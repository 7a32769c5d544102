import { randomBytes } from 'node:crypto';
import { StompError } from '../errors.js';
import type { Header } from '../frame/frame.js';
import { type DestinationKind, destinationKind } from './destination.js';
import type {
  Destination,
  DestinationContext,
  DestinationType,
} from './destinations/destination.js';
import { QUEUE } from './destinations/queue.js';
import { sharedQueueType } from './destinations/shared-queue.js';
import { TOPIC } from './destinations/topic.js';
import { USER_QUEUE } from './destinations/user-queue.js';
import { History, type Replay } from './history.js';
import { Mailboxes } from './mailbox.js';
import type { Message, Position } from './message.js';
import { type BrokerOptions, DEFAULT_BROKER_OPTIONS } from './options.js';
import type { DurableLog, MessageBus, SharedQueues } from './seams.js';
import { BrokerStats } from './stats.js';
import type { Pending, Subscription } from './subscription.js';

/**
 * An ACK's or NACK's outcome: false when nothing was pending, true when done,
 * a promise when what it consumed is still being recorded.
 */
export type Settled = boolean | Promise<void>;

/** How often expired history and offline messages are swept, ms. */
const SWEEP_MS = 10_000;

/** The type behind each kind of routing name. */
const TYPES: Readonly<Record<DestinationKind, DestinationType>> = {
  topic: TOPIC,
  'user-topic': TOPIC,
  queue: QUEUE,
  'user-queue': USER_QUEUE,
};

/**
 * Destinations and delivery, without sockets: resolves a routing name to
 * its {@link Destination} (made on first use, forgotten when idle) and
 * dispatches SENDs, subscriptions, acks and the bus's messages to it. What a
 * kind of destination means lives in `destinations/`, not here.
 */
export class Router implements DestinationContext {
  readonly options: BrokerOptions;
  readonly history: History;
  readonly mailboxes: Mailboxes;
  private readonly destinations = new Map<string, Destination>();
  private readonly idPrefix = randomBytes(4).toString('hex');
  private messageSeq = 0;
  private ackSeq = 0;
  private sweeper: NodeJS.Timeout | undefined;
  /** The type behind each kind of routing name here. */
  private readonly types: Readonly<Record<DestinationKind, DestinationType>>;

  constructor(
    options: Partial<BrokerOptions>,
    readonly bus: MessageBus,
    readonly log: DurableLog,
    /** What the broker counts; sessions add to it too. */
    readonly stats = new BrokerStats(),
    /** Queues shared by every instance; without, each instance has its own. */
    queues?: SharedQueues,
  ) {
    this.options = { ...DEFAULT_BROKER_OPTIONS, ...options };
    this.types = queues ? { ...TYPES, queue: sharedQueueType(queues) } : TYPES;
    this.history = new History({
      maxMessages: this.options.historyMaxMessages,
      maxAgeMs: this.options.historyMaxAgeMs,
    });
    this.mailboxes = new Mailboxes({
      maxMessages: this.options.offlineMaxMessages,
      maxAgeMs: this.options.offlineMaxAgeMs,
    });
    this.sweeper = setInterval(() => {
      const now = Date.now();
      this.history.sweep(now);
      this.mailboxes.sweep(now);
    }, SWEEP_MS);
    this.sweeper.unref();
  }

  /** Stops the periodic sweep. */
  close(): void {
    clearInterval(this.sweeper);
  }

  messageId(): string {
    return `${this.idPrefix}-${++this.messageSeq}`;
  }

  ackId(): string {
    return String(++this.ackSeq);
  }

  /**
   * Accepts a message for `destination`. The returned promise, if any,
   * settles when the message is safe (cluster mode: Kafka has it). Throws a
   * coded error when the destination is invalid or full.
   */
  send(destination: string, headers: readonly Header[], body: Uint8Array): void | Promise<void> {
    let target = this.destinations.get(destination);
    if (!target) {
      // The usual case of a publishing instance: nobody here subscribes, so no
      // destination is made for one message and forgotten right after it.
      const type = this.typeOf(destination);
      if (type?.sendStateless) {
        return type.sendStateless({ id: this.messageId(), destination, headers, body }, this);
      }
      target = this.resolve(destination);
    }
    try {
      return target.send({ id: this.messageId(), destination, headers, body });
    } finally {
      this.forgetIfIdle(target);
    }
  }

  /** Whether SUBSCRIBE may resume after a position on this routing name. */
  resumable(destination: string): boolean {
    return this.typeOf(destination)?.resumable ?? false;
  }

  /**
   * What a subscription to `destination` (resuming after `resumeAfter`)
   * must wait for before it is made: undefined, or a promise that never
   * rejects (cluster interest picking up the destination's partition).
   */
  reach(destination: string, resumeAfter?: Position): Promise<void> | undefined {
    return this.bus.reach?.(destination, resumeAfter);
  }

  /**
   * Registers a subscription and hands it what waits for it; with
   * `resumeAfter`, the replay's outcome. The caller keeps `sub` before
   * calling: a delivery here may already end its session.
   */
  subscribe(sub: Subscription, resumeAfter?: Position): Replay | undefined {
    return this.resolve(sub.destination).subscribe(sub, resumeAfter);
  }

  /** Removes a subscription; what it held unacknowledged goes back. */
  unsubscribe(sub: Subscription): void {
    const target = this.of(sub);
    target.unsubscribe(sub);
    this.forgetIfIdle(target);
  }

  /**
   * Acknowledges `ackId` on `sub`: false when it is not pending there, else
   * true, or a promise when what it consumed is recorded asynchronously
   * (cluster mode: resolves once Kafka has the records; the RECEIPT waits).
   */
  ack(sub: Subscription, ackId: string): Settled {
    return this.settle(sub, ackId, true);
  }

  /** Rejects `ackId` on `sub`; answers as {@link ack} does. */
  nack(sub: Subscription, ackId: string): Settled {
    return this.settle(sub, ackId, false);
  }

  /** The subscriptions' connection has room again. */
  drained(subs: Iterable<Subscription>): void {
    for (const sub of subs) this.of(sub).drained(sub);
  }

  /** A message from the bus: to the destination's local subscribers, or kept for later. */
  deliver(message: Message): void {
    const target = this.destinations.get(message.destination);
    if (target) target.deliver(message);
    else this.typeOf(message.destination)?.keep(message, this);
  }

  /** A shared queue's message given to one of this instance's consumers. */
  assigned(queue: string, consumer: string, message: Message, deliveries: number): void {
    this.destinations.get(queue)?.assigned?.(consumer, message, deliveries);
  }

  /** Another instance consumed a user-queue message: forget it here too. */
  consumed(destination: string, messageId: string): void {
    this.mailboxes.remove(destination, messageId);
  }

  deadLetter(pending: Pending, target: string): void {
    const { message } = pending;
    if (!this.options.deadLetterQueue || message.destination === target) return;
    const headers: Header[] = [
      ...message.headers,
      ['original-destination', message.destination],
      ['delivery-count', String(pending.deliveries)],
    ];
    const dlq = this.resolve(target);
    this.stats.deadLetters++;
    dlq.deadLetter({ id: message.id, destination: target, headers, body: message.body });
    this.forgetIfIdle(dlq);
  }

  /** Messages waiting at a destination (for tests and metrics). */
  depth(destination: string): number {
    return this.destinations.get(destination)?.depth ?? 0;
  }

  /** The destinations in use now (for metrics and the console). */
  get active(): IterableIterator<Destination> {
    return this.destinations.values();
  }

  /** How many destinations are in use now. */
  get activeCount(): number {
    return this.destinations.size;
  }

  /** The destination of a routing name, made on first use. */
  private resolve(name: string): Destination {
    let target = this.destinations.get(name);
    if (target) return target;
    const type = this.typeOf(name);
    if (!type) throw new StompError('STOMP_ERR_INVALID_DESTINATION', { detail: name });
    target = type.create(name, this);
    this.destinations.set(name, target);
    return target;
  }

  /** A subscription's destination: never idle, so never forgotten, while subscribed. */
  private of(sub: Subscription): Destination {
    return this.destinations.get(sub.destination) as Destination;
  }

  private settle(sub: Subscription, ackId: string, positive: boolean): Settled {
    const settled = sub.settle(ackId);
    if (!settled) return false;
    const target = this.of(sub);
    const recorded = positive ? target.ack(sub, settled) : target.nack(sub, settled);
    return recorded ?? true;
  }

  private typeOf(name: string): DestinationType | undefined {
    const kind = destinationKind(name);
    return kind && this.types[kind];
  }

  private forgetIfIdle(target: Destination): void {
    if (target.idle && this.destinations.get(target.name) === target) {
      this.destinations.delete(target.name);
    }
  }
}
