import { StompError } from '../../errors.js';
import type { Message, Outgoing } from '../message.js';
import type { SharedQueues } from '../seams.js';
import type { Pending, Subscription } from '../subscription.js';
import {
  type Destination,
  type DestinationContext,
  type DestinationType,
  handOut,
} from './destination.js';

/**
 * Most messages an `auto` consumer without `prefetch-count` is given before
 * it has written the earlier ones out: its instance says "consumed" only once
 * the connection takes more, so a slow reader holds back its share instead of
 * piling up in memory.
 */
export const AUTO_CREDIT = 256;

/**
 * `/queue/…` shared by every instance (cluster mode, docs/cluster-queues.md):
 * SENDs go to the backend, which gives each message to one consumer
 * anywhere; this side tells it about the local consumers and what they do
 * (ACK, NACK, leaving) and hands over the messages given to them. Ack modes
 * as in STOMP 1.2 "SUBSCRIBE ack Header"; `auto` consumption is recorded
 * once the MESSAGE is written out.
 */
export class SharedQueue implements Destination {
  messagesIn = 0;
  messagesOut = 0;
  private readonly consumers = new Map<string, Subscription>();
  private readonly ids = new Map<Subscription, string>();
  /** Per `auto` consumer: messages written out, their consumption not recorded yet. */
  private readonly written = new Map<string, string[]>();
  private flushing = false;

  constructor(
    readonly name: string,
    private readonly context: DestinationContext,
    private readonly queues: SharedQueues,
  ) {}

  get idle(): boolean {
    return this.consumers.size === 0;
  }

  get depth(): number {
    return this.queues.depth(this.name) ?? 0;
  }

  get subscribers(): number {
    return this.consumers.size;
  }

  send(message: Outgoing): Promise<void> {
    // Full cluster-wide: refused here, as a local queue would (its owner said so).
    if (this.queues.full(this.name)) {
      throw new StompError('STOMP_ERR_QUEUE_FULL', { detail: this.name });
    }
    this.messagesIn++;
    return this.queues.send(message);
  }

  deliver(): void {
    // Shared queues' messages come through `assigned`, never through the bus.
  }

  deadLetter(message: Outgoing): void {
    this.queues.send(message).catch(() => {});
  }

  subscribe(sub: Subscription): undefined {
    const id = this.queues.consumerId();
    this.consumers.set(id, sub);
    this.ids.set(sub, id);
    const { maxPendingAcks } = this.context.options;
    const credit =
      sub.prefetch > 0
        ? Math.min(sub.prefetch, maxPendingAcks)
        : sub.ackMode === 'auto'
          ? AUTO_CREDIT
          : maxPendingAcks;
    this.queues.join(this.name, id, credit);
    return undefined;
  }

  /** What it held goes back to the queue (the backend knows what): consumption written out is recorded first. */
  unsubscribe(sub: Subscription): void {
    const id = this.ids.get(sub);
    if (id === undefined) return;
    this.flush(id, true);
    this.consumers.delete(id);
    this.ids.delete(sub);
    sub.takeUnacked();
    this.queues.leave(this.name, id);
  }

  /** A message the backend gave to one of this instance's consumers. */
  assigned(consumer: string, message: Message, deliveries: number): void {
    const sub = this.consumers.get(consumer);
    // Gone, or its DISCONNECT is waiting: the owner gives it to another consumer once it leaves.
    if (!sub || sub.consumer.leaving) return;
    this.messagesOut++;
    const pending: Pending = { message, deliveries };
    handOut(this.context, sub, pending, deliveries > 1);
    if (sub.ackMode === 'auto') {
      let list = this.written.get(consumer);
      if (!list) {
        list = [];
        this.written.set(consumer, list);
      }
      list.push(message.id);
      this.scheduleFlush();
    }
  }

  ack(sub: Subscription, settled: readonly Pending[]): Promise<void> | undefined {
    return this.settle(sub, settled, true);
  }

  nack(sub: Subscription, settled: readonly Pending[]): Promise<void> | undefined {
    return this.settle(sub, settled, false);
  }

  drained(sub: Subscription): void {
    const id = this.ids.get(sub);
    if (id !== undefined && this.written.has(id)) this.flush(id, false);
  }

  private settle(sub: Subscription, settled: readonly Pending[], consumed: boolean) {
    const id = this.ids.get(sub);
    if (id === undefined || settled.length === 0) return undefined;
    const ids = settled.map((p) => p.message.id);
    return this.queues.settle(this.name, id, ids, consumed);
  }

  /** One consumption record per consumer for what was written out in one turn. */
  private scheduleFlush(): void {
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      for (const id of [...this.written.keys()]) this.flush(id, false);
    });
  }

  /**
   * Records the consumption of what `consumer` wrote out, once its connection
   * takes more (or, `force`, now: it is leaving).
   */
  private flush(consumer: string, force: boolean): void {
    const list = this.written.get(consumer);
    const sub = this.consumers.get(consumer);
    if (!list || !sub) return;
    if (!force && !sub.consumer.writable && !sub.consumer.leaving) return;
    this.written.delete(consumer);
    const recorded = this.queues.settle(this.name, consumer, list, true);
    recorded.catch(() => {});
    // A DISCONNECT's RECEIPT waits for it.
    sub.consumer.recording?.(recorded);
  }
}

/** The type of `/queue/…` when the backend shares queues. */
export function sharedQueueType(queues: SharedQueues): DestinationType {
  return {
    resumable: false,
    create: (name, context) => new SharedQueue(name, context, queues),
    keep: () => {},
  };
}
