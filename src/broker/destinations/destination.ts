import type { History, Replay } from '../history.js';
import type { Mailboxes } from '../mailbox.js';
import type { Message, Outgoing, Position } from '../message.js';
import { EncodedMessage } from '../message-frame.js';
import type { BrokerOptions } from '../options.js';
import type { DurableLog, MessageBus } from '../seams.js';
import type { DestinationCounters } from '../stats.js';
import type { Pending, Subscription } from '../subscription.js';

/**
 * One destination of one kind (topic, queue, user queue, ...): how a SEND to
 * it is accepted, how a message reaches its subscribers, and what ACK and
 * NACK mean there. The router dispatches to this interface and never asks
 * what kind a destination is.
 */
export interface Destination extends DestinationCounters {
  /** The routing name. */
  readonly name: string;
  /** Local subscriptions (for metrics and the console). */
  readonly subscribers: number;
  /** Nothing is held here any more (no subscriber, nothing waiting): the router forgets it. */
  readonly idle: boolean;
  /** Messages waiting here for a consumer (for tests and metrics). */
  readonly depth: number;
  /**
   * Accepts a SEND. Returns (or resolves) once the message is safe; throws a
   * coded error when it cannot be taken.
   */
  send(message: Outgoing): void | Promise<void>;
  /** A message from the bus for this destination's local subscribers. */
  deliver(message: Message): void;
  /** A failed message from elsewhere (`original-destination` set) to keep as a dead letter. */
  deadLetter(message: Outgoing): void;
  /**
   * Adds a subscription and hands it what waits for it. With `resumeAfter`
   * (resumable kinds only), replays what was kept after that position.
   */
  subscribe(sub: Subscription, resumeAfter?: Position): Replay | undefined;
  /** Removes a subscription; what it held unacknowledged goes back. */
  unsubscribe(sub: Subscription): void;
  /**
   * The client acknowledged these deliveries (settled from `sub`). A promise
   * when what that consumed is recorded asynchronously (a user queue in
   * cluster mode): the ACK's RECEIPT waits for it.
   */
  ack(sub: Subscription, settled: readonly Pending[]): void | Promise<void>;
  /** The client rejected these deliveries; a promise as for {@link ack} (dead letters consumed). */
  nack(sub: Subscription, settled: readonly Pending[]): void | Promise<void>;
  /** The subscription's connection has room again. */
  drained(sub: Subscription): void;
  /**
   * Optional (queues shared by every instance): the backend gave `message`
   * to `consumer`, one of this destination's local consumers; `deliveries`
   * counts this delivery.
   */
  assigned?(consumer: string, message: Message, deliveries: number): void;
}

/** A kind of destination: how to make one, and what to keep of a message nobody here subscribes to. */
export interface DestinationType {
  /** Whether a SUBSCRIBE may resume after a position. */
  readonly resumable: boolean;
  create(name: string, context: DestinationContext): Destination;
  /** Keeps a message for a destination with no local subscriber (history, offline mailbox). */
  keep(message: Message, context: DestinationContext): void;
  /**
   * Sends to a destination that has no state here (no local subscriber):
   * what `create(…).send(message)` would do, without making the destination
   * only to forget it again. Types whose send needs no state define it.
   */
  readonly sendStateless?: (message: Outgoing, context: DestinationContext) => void | Promise<void>;
}

/** What destinations share: limits, the cluster seams, the kept messages, ids. */
export interface DestinationContext {
  readonly options: BrokerOptions;
  readonly bus: MessageBus;
  readonly log: DurableLog;
  readonly history: History;
  readonly mailboxes: Mailboxes;
  /** A fresh `message-id`. */
  messageId(): string;
  /** A fresh `ack` id. */
  ackId(): string;
  /**
   * Moves a message that failed `maxDeliveries` times to `target`'s dead
   * letters, with `original-destination` and `delivery-count` headers.
   */
  deadLetter(pending: Pending, target: string): void;
}

/**
 * One delivery to one subscription, tracked for its ACK in the client modes.
 * `pending.deliveries` must already count this delivery.
 */
export function handOut(
  context: DestinationContext,
  sub: Subscription,
  pending: Pending,
  redelivered: boolean,
  encoded = new EncodedMessage(pending.message),
  resume?: string,
): void {
  let ackId: string | undefined;
  if (sub.ackMode !== 'auto') {
    ackId = context.ackId();
    sub.unacked.set(ackId, pending);
  }
  sub.consumer.deliver(sub, encoded, ackId, redelivered, resume);
}

/** Whether `sub` may take one more unacknowledged message; disconnects it otherwise. */
export function belowPendingLimit(context: DestinationContext, sub: Subscription): boolean {
  if (sub.ackMode === 'auto' || sub.unacked.size < context.options.maxPendingAcks) return true;
  sub.consumer.tooManyPending(context.options.maxPendingAcks);
  return false;
}

/**
 * What several records being made come to: nothing to wait for, or one
 * promise that resolves when all of them are durable (and rejects with the
 * first failure).
 */
export function whenAll(waits: readonly Promise<void>[]): void | Promise<void> {
  if (waits.length === 0) return;
  const all = waits.length === 1 ? (waits[0] as Promise<void>) : Promise.all(waits).then(() => {});
  // A caller with no frame to answer (a subscription ending) lets it go: not unhandled.
  all.catch(() => {});
  return all;
}
