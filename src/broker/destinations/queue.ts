import { StompError } from '../../errors.js';
import { createMessage, type Outgoing } from '../message.js';
import type { Pending, Subscription } from '../subscription.js';
import type { Destination, DestinationContext, DestinationType } from './destination.js';
import { handOut } from './destination.js';

/**
 * `/queue/…` on this instance: each message goes to exactly one consumer,
 * round robin among those with room (writable, and under `prefetch-count`);
 * it waits while nobody consumes, and comes back, marked redelivered, on NACK
 * or when its consumer goes (docs/protocol.md, "destinations").
 */
export class Queue implements Destination {
  messagesIn = 0;
  messagesOut = 0;
  private readonly consumers: Subscription[] = [];
  private items: Pending[] = [];
  private head = 0;
  private next = 0;

  constructor(
    readonly name: string,
    private readonly context: DestinationContext,
  ) {}

  get idle(): boolean {
    return this.depth === 0 && this.consumers.length === 0;
  }

  /** Messages waiting for a consumer. */
  get depth(): number {
    return this.items.length - this.head;
  }

  get subscribers(): number {
    return this.consumers.length;
  }

  send(message: Outgoing): void {
    if (this.depth >= this.context.options.maxQueueMessages) {
      throw new StompError('STOMP_ERR_QUEUE_FULL', { detail: this.name });
    }
    this.items.push({ message: createMessage(message), deliveries: 0 });
    this.messagesIn++;
    this.dispatch();
  }

  deliver(): void {
    // Queues are per instance: the bus never carries their messages.
  }

  /** A full dead-letter queue drops its oldest message to make room. */
  deadLetter(message: Outgoing): void {
    if (this.depth >= this.context.options.maxQueueMessages) this.shift();
    this.items.push({ message: createMessage(message), deliveries: 0 });
    this.messagesIn++;
    this.dispatch();
  }

  subscribe(sub: Subscription): undefined {
    this.consumers.push(sub);
    this.dispatch();
    return undefined;
  }

  unsubscribe(sub: Subscription): void {
    const index = this.consumers.indexOf(sub);
    if (index >= 0) this.consumers.splice(index, 1);
    this.requeue(sub.takeUnacked());
  }

  ack(): void {
    this.dispatch();
  }

  nack(_sub: Subscription, settled: readonly Pending[]): void {
    this.requeue(settled);
  }

  drained(): void {
    this.dispatch();
  }

  private dispatch(): void {
    while (this.depth > 0) {
      const sub = this.nextReady();
      if (!sub) return;
      const pending = this.shift() as Pending;
      pending.deliveries++;
      this.messagesOut++;
      handOut(this.context, sub, pending, pending.deliveries > 1);
    }
  }

  /** Puts messages back at the front, in their original order; dead-letters the worn out. */
  private requeue(list: readonly Pending[]): void {
    const back: Pending[] = [];
    for (const pending of list) {
      if (pending.deliveries >= this.context.options.maxDeliveries) {
        this.context.deadLetter(pending, this.context.options.deadLetterQueue);
      } else {
        back.push(pending);
      }
    }
    if (back.length === 0) return;
    this.compact();
    this.items.unshift(...back);
    this.dispatch();
  }

  /** The next consumer that is ready, round robin; undefined if none is. */
  private nextReady(): Subscription | undefined {
    const n = this.consumers.length;
    for (let i = 0; i < n; i++) {
      const sub = this.consumers[(this.next + i) % n] as Subscription;
      if (sub.ready) {
        this.next = (this.next + i + 1) % n;
        return sub;
      }
    }
    return undefined;
  }

  private shift(): Pending | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head] as Pending;
    this.items[this.head++] = undefined as unknown as Pending;
    if (this.head > 1024 && this.head * 2 > this.items.length) this.compact();
    return item;
  }

  private compact(): void {
    if (this.head === 0) return;
    this.items = this.items.slice(this.head);
    this.head = 0;
  }
}

/** Per-instance queues. */
export const QUEUE: DestinationType = {
  resumable: false,
  create: (name, context) => new Queue(name, context),
  keep: () => {},
};
