import type { Message, Position } from './message.js';
import type { EncodedMessage } from './message-frame.js';

/** STOMP 1.2 "SUBSCRIBE ack Header" modes. */
export type AckMode = 'auto' | 'client' | 'client-individual';

/** The map of every auto-ack subscription: nothing is ever added to it. */
const NO_ACKS = new Map<string, Pending>();

/** A message sent to a subscription and not yet acknowledged. */
export interface Pending {
  readonly message: Message;
  /** How many times it has been delivered, this delivery included. */
  deliveries: number;
}

/** The side of a session the broker delivers to. */
export interface Consumer {
  /**
   * Sends one MESSAGE frame. `ackId` is set in the client ack modes; `resume`
   * is the `x-resume` outcome the first MESSAGE after a resume carries.
   */
  deliver(
    sub: Subscription,
    encoded: EncodedMessage,
    ackId: string | undefined,
    redelivered: boolean,
    resume: string | undefined,
  ): void;
  /** False while the connection's unsent output is above its high-water mark (no side effect). */
  readonly writable: boolean;
  /**
   * Optional: true once the consumer is leaving (its DISCONNECT waits for its
   * RECEIPT): queues offer it nothing more, since it acknowledges nothing
   * any more and what it consumes would only delay its RECEIPT.
   */
  readonly leaving?: boolean;
  /** A topic message found the consumer above its high-water mark: disconnect it. */
  overflow(): void;
  /** The consumer holds more than `limit` unacknowledged messages: disconnect it. */
  tooManyPending(limit: number): void;
  /**
   * Optional: a message written to this consumer in `auto` mode was consumed,
   * and `done` resolves once that is durable (cluster mode); the consumer's
   * DISCONNECT RECEIPT waits for it.
   */
  recording?(done: Promise<void>): void;
}

/** A resume being replayed as fast as the connection takes it; live messages queue behind. */
export interface Replaying {
  readonly items: Array<Message | undefined>;
  /** The next item to send. */
  at: number;
  /** The `x-resume` outcome, until the first MESSAGE has carried it. */
  mark: string | undefined;
}

/** What a SUBSCRIBE asks for, as the router needs it. */
export interface SubscriptionSpec {
  /** Who receives the messages. */
  readonly consumer: Consumer;
  /** The client's subscription id. */
  readonly id: string;
  /** The routing name subscribed to (`/user/<login>/…` for user destinations). */
  readonly destination: string;
  readonly ackMode: AckMode;
  /** Most unacknowledged messages at once (queues and user queues); 0 means no limit. */
  readonly prefetch: number;
  /** The consumer's encoding of what every MESSAGE of this subscription starts with. */
  readonly head: Buffer;
}

/**
 * One SUBSCRIBE of one connection, made by the router. The session owns the
 * subscription; its destination owns the delivery state below (`seen`,
 * `replaying`, `behind`): nobody else writes it.
 */
export class Subscription {
  readonly consumer: Consumer;
  readonly id: string;
  readonly ackMode: AckMode;
  readonly prefetch: number;
  readonly head: Buffer;
  /**
   * Unacknowledged deliveries by ack id, in delivery order. Auto-ack
   * subscriptions never hold any and share one empty map (memory per idle
   * connection matters).
   */
  readonly unacked: Map<string, Pending>;
  /** After a resume: the newest position the client has; live messages up to it are skipped. */
  seen: Position | undefined;
  /** A resume still being replayed. */
  replaying: Replaying | undefined;
  /** A user queue has letters this subscription could not take yet (no room): live ones wait too. */
  behind = false;

  /** The routing name subscribed to. */
  readonly destination: string;

  constructor(spec: SubscriptionSpec) {
    this.destination = spec.destination;
    this.consumer = spec.consumer;
    this.id = spec.id;
    this.ackMode = spec.ackMode;
    this.prefetch = spec.prefetch;
    this.head = spec.head;
    this.unacked = spec.ackMode === 'auto' ? NO_ACKS : new Map();
  }

  /**
   * Whether a live message comes after {@link seen} (and so is delivered).
   * Positions of one destination only grow, so the first one past it ends the check.
   */
  after(message: Message): boolean {
    const position = message.position;
    const seen = this.seen;
    if (position && seen && position.epoch === seen.epoch && position.n <= seen.n) return false;
    this.seen = undefined;
    return true;
  }

  /** Whether a queue may give this subscription another message now. */
  get ready(): boolean {
    return (
      this.consumer.writable &&
      this.consumer.leaving !== true &&
      (this.ackMode === 'auto' || this.prefetch === 0 || this.unacked.size < this.prefetch)
    );
  }

  /**
   * Removes and returns the deliveries an ACK or NACK of `ackId` covers: just
   * that one in `client-individual` mode, it and every earlier one in `client`
   * mode (STOMP 1.2 "SUBSCRIBE ack Header": client acks are cumulative).
   * Returns undefined when `ackId` is not pending here.
   */
  settle(ackId: string): Pending[] | undefined {
    const pending = this.unacked.get(ackId);
    if (!pending) return undefined;
    if (this.ackMode === 'client-individual') {
      this.unacked.delete(ackId);
      return [pending];
    }
    const settled: Pending[] = [];
    for (const [id, p] of this.unacked) {
      this.unacked.delete(id);
      settled.push(p);
      if (id === ackId) break;
    }
    return settled;
  }

  /** Takes every unacknowledged delivery away (the subscription ends). */
  takeUnacked(): Pending[] {
    if (this.unacked.size === 0) return [];
    const all = [...this.unacked.values()];
    this.unacked.clear();
    return all;
  }
}
