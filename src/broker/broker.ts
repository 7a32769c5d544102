import { randomBytes } from 'node:crypto';
import type { Fanout } from '../cluster/fanout.js';
import { LocalFanout } from '../cluster/local-fanout.js';
import { StompError } from '../errors.js';
import type { Header } from '../frame/frame.js';
import type { Message } from './message.js';
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
}

/** The defaults of {@link BrokerOptions}. */
export const DEFAULT_BROKER_OPTIONS: Readonly<BrokerOptions> = Object.freeze({
  maxQueueMessages: 10_000,
  maxDeliveries: 5,
  deadLetterQueue: '/queue/DLQ',
  maxPendingAcks: 10_000,
});

/** Whether a destination is a topic (fan-out) or a queue (one consumer each). */
export function destinationKind(destination: string): 'topic' | 'queue' | undefined {
  if (destination.startsWith('/topic/') && destination.length > 7) return 'topic';
  if (destination.startsWith('/queue/') && destination.length > 7) return 'queue';
  return undefined;
}

/**
 * Destinations and delivery, without sockets: topic fan-out, queue dispatch
 * to competing consumers, acks, redelivery and dead letters.
 */
export class Broker {
  readonly options: BrokerOptions;
  private readonly topics = new Map<string, Set<Subscription>>();
  private readonly queues = new Map<string, Queue>();
  private readonly idPrefix = randomBytes(4).toString('hex');
  private messageSeq = 0;
  private ackSeq = 0;

  constructor(
    options: Partial<BrokerOptions> = {},
    private readonly fanout: Fanout = new LocalFanout(),
  ) {
    this.options = { ...DEFAULT_BROKER_OPTIONS, ...options };
  }

  /** Starts the fan-out (Kafka in cluster mode). */
  async start(): Promise<void> {
    await this.fanout.start((message) => this.deliverTopic(message));
  }

  /** Stops the fan-out. */
  async stop(): Promise<void> {
    await this.fanout.stop();
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
    };
    if (kind === 'topic') return this.fanout.publish(message);
    const queue = this.queue(destination);
    if (queue.size >= this.options.maxQueueMessages) {
      throw new StompError('STOMP_ERR_QUEUE_FULL', { detail: destination });
    }
    queue.push({ message, deliveries: 0 });
    this.dispatch(queue);
  }

  /** Registers a subscription and delivers what waits for it. */
  subscribe(sub: Subscription): void {
    if (destinationKind(sub.destination) === 'topic') {
      let subs = this.topics.get(sub.destination);
      if (!subs) {
        subs = new Set();
        this.topics.set(sub.destination, subs);
      }
      subs.add(sub);
      return;
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
    if (!sub.settle(ackId)) return false;
    const queue = this.queues.get(sub.destination);
    if (queue) this.dispatch(queue);
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
    for (const pending of settled) {
      if (pending.deliveries >= this.options.maxDeliveries) this.deadLetter(pending);
      else this.deliverTo(sub, pending, true);
    }
    return true;
  }

  /** Tells the broker that a consumer can take messages again (its output drained). */
  resume(subs: Iterable<Subscription>): void {
    for (const sub of subs) {
      const queue = this.queues.get(sub.destination);
      if (queue) this.dispatch(queue);
    }
  }

  /** Number of messages waiting in a queue (for tests and metrics). */
  queueDepth(destination: string): number {
    return this.queues.get(destination)?.size ?? 0;
  }

  /** Delivers a topic message to every local subscriber of its destination. */
  deliverTopic(message: Message): void {
    const subs = this.topics.get(message.destination);
    if (!subs) return;
    for (const sub of subs) {
      if (!sub.consumer.writable) {
        sub.consumer.overflow();
        continue;
      }
      if (sub.ackMode !== 'auto' && sub.unacked.size >= this.options.maxPendingAcks) {
        sub.consumer.tooManyPending();
        continue;
      }
      if (sub.ackMode === 'auto') sub.consumer.deliver(sub, message, undefined, false);
      else this.deliverTo(sub, { message, deliveries: 0 }, false);
    }
  }

  private deliverTo(sub: Subscription, pending: Pending, redelivered: boolean): void {
    pending.deliveries++;
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
    const dlq = this.options.deadLetterQueue;
    if (!dlq || pending.message.destination === dlq) return;
    const { message } = pending;
    const queue = this.queue(dlq);
    if (queue.size >= this.options.maxQueueMessages) queue.shift();
    queue.push({
      message: {
        id: message.id,
        destination: dlq,
        headers: [
          ...message.headers,
          ['original-destination', message.destination],
          ['delivery-count', String(pending.deliveries)],
        ],
        body: message.body,
      },
      deliveries: 0,
    });
    this.dispatch(queue);
  }

  private dropIfIdle(queue: Queue): void {
    if (queue.size === 0 && queue.consumers.length === 0) this.queues.delete(queue.name);
  }
}
