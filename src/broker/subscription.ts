import type { Message, Position } from './message.js';

/** STOMP 1.2 "SUBSCRIBE ack Header" modes. */
export type AckMode = 'auto' | 'client' | 'client-individual';

/** The map of every auto-ack subscription: the broker never adds to it. */
const NO_ACKS = new Map<string, Pending>();

/** A message sent to a subscription and not yet acknowledged. */
export interface Pending {
  readonly message: Message;
  /** How many times it has been delivered, this delivery included. */
  deliveries: number;
}

/** The side of a session the broker delivers to. */
export interface Consumer {
  /** Sends one MESSAGE frame. `ackId` is set in the client ack modes. */
  deliver(
    sub: Subscription,
    message: Message,
    ackId: string | undefined,
    redelivered: boolean,
  ): void;
  /** False while the connection's unsent output is above its high-water mark. */
  readonly writable: boolean;
  /** A topic message found the consumer above its high-water mark: disconnect it. */
  overflow(): void;
  /** The consumer holds more unacknowledged messages than allowed: disconnect it. */
  tooManyPending(): void;
}

/** One SUBSCRIBE of one connection. */
export class Subscription {
  /**
   * Unacknowledged deliveries by ack id, in delivery order. Auto-ack
   * subscriptions never hold any and share one empty map (memory per idle
   * connection matters).
   */
  readonly unacked: Map<string, Pending>;
  /** The consumer's encoding of what every MESSAGE of this subscription starts with. */
  head: Buffer | undefined;
  /** After a resume: the newest position the client has; live messages up to it are skipped. */
  seen: Position | undefined;
  /** After a resume, until the first MESSAGE carries it: whether the replay missed nothing. */
  resumed: 'complete' | 'incomplete' | undefined;
  /**
   * A resume still being replayed, as fast as the connection takes it; live
   * messages queue behind it. `backlogAt` is the next to send.
   */
  backlog: Array<Message | undefined> | undefined;
  backlogAt = 0;
  /** A user queue has letters this subscription could not take yet (no room): live ones wait too. */
  behind = false;

  constructor(
    /** Who receives the messages. */
    readonly consumer: Consumer,
    /** The client's subscription id. */
    readonly id: string,
    /** The destination subscribed to. */
    readonly destination: string,
    /** The ack mode. */
    readonly ackMode: AckMode,
    /** Most unacknowledged messages at once (queues only); 0 means no limit. */
    readonly prefetch: number,
  ) {
    this.unacked = ackMode === 'auto' ? NO_ACKS : new Map();
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
}
