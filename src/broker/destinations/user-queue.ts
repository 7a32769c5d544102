import { destinationUser } from '../destination.js';
import type { Letter } from '../mailbox.js';
import type { Message, Outgoing } from '../message.js';
import { EncodedMessage } from '../message-frame.js';
import type { Pending, Subscription } from '../subscription.js';
import {
  belowPendingLimit,
  type Destination,
  type DestinationContext,
  type DestinationType,
  handOut,
  whenAll,
} from './destination.js';

/**
 * `/user/<name>/queue/…`: a user's own queue. Messages travel through the
 * bus (every instance keeps the same mailboxes) and wait in the user's
 * mailbox until consumed: written out in `auto` mode, acknowledged in the
 * client modes (STOMP 1.2 "SUBSCRIBE ack Header"). Every session of the user
 * is offered each message; the subscription follows its connection's pace
 * and `prefetch-count` instead of being disconnected.
 */
export class UserQueue implements Destination {
  messagesIn = 0;
  messagesOut = 0;
  private readonly subs = new Set<Subscription>();

  constructor(
    readonly name: string,
    private readonly context: DestinationContext,
  ) {}

  get idle(): boolean {
    return this.subs.size === 0;
  }

  get depth(): number {
    return this.context.mailboxes.waiting(this.name, Date.now()).length;
  }

  get subscribers(): number {
    return this.subs.size;
  }

  send(message: Outgoing): void | Promise<void> {
    return this.context.bus.publish(message);
  }

  deliver(message: Message): void {
    // Also when read back at start-up: a letter not consumed yet is due.
    const letter = this.context.mailboxes.add(message, Date.now());
    this.messagesIn++;
    const ready: Subscription[] = [];
    for (const sub of this.subs) {
      // One with older letters still to take gets this one after them.
      if (sub.behind || !sub.ready) sub.behind = true;
      else ready.push(sub);
    }
    this.offer(ready, letter);
  }

  /** A user's dead letters stay theirs, kept and shared like any user-queue message. */
  deadLetter(message: Outgoing): void {
    const sent = this.context.bus.publish({ ...message, id: this.context.messageId() });
    // Cluster mode with Kafka down: the dead letter is lost (the bus logs it).
    (sent as Promise<void> | undefined)?.catch(() => {});
  }

  subscribe(sub: Subscription): undefined {
    this.subs.add(sub);
    this.fill(sub);
    return undefined;
  }

  /** What the subscription held goes to another session with room, or waits. */
  unsubscribe(sub: Subscription): void {
    this.subs.delete(sub);
    // Dead-lettered on the way: recorded, with no frame to answer.
    const waits: Promise<void>[] = [];
    for (const pending of sub.takeUnacked()) {
      const letter = this.letterOf(pending);
      if (!letter) continue;
      letter.holders--;
      if (letter.holders > 0) continue;
      if (letter.deliveries >= this.context.options.maxDeliveries) {
        this.consume(letter, true, waits);
        continue;
      }
      for (const other of this.subs) {
        if (other.behind || !other.ready) continue;
        this.offer([other], letter);
        break;
      }
    }
    whenAll(waits);
  }

  /** Consumes what was acknowledged; resolves once the log has every consumption (cluster mode). */
  ack(sub: Subscription, settled: readonly Pending[]): void | Promise<void> {
    const waits: Promise<void>[] = [];
    for (const pending of settled) {
      const letter = this.letterOf(pending);
      if (letter) this.consume(letter, false, waits);
    }
    this.fill(sub);
    return whenAll(waits);
  }

  /**
   * NACK: offered again to the same subscription, until `maxDeliveries`, then
   * dead-lettered (consumed here: resolves once the log has it).
   */
  nack(sub: Subscription, settled: readonly Pending[]): void | Promise<void> {
    const waits: Promise<void>[] = [];
    for (const pending of settled) {
      // Consumed meanwhile by another session: nothing to redeliver.
      const letter = this.letterOf(pending);
      if (!letter) continue;
      if (letter.deliveries >= this.context.options.maxDeliveries) {
        letter.holders--;
        this.consume(letter, true, waits);
      } else {
        letter.deliveries++;
        handOut(this.context, sub, letter, true);
      }
    }
    return whenAll(waits);
  }

  drained(sub: Subscription): void {
    if (sub.behind) this.fill(sub);
  }

  /** The kept letter a delivery was, while it is not consumed. */
  private letterOf(pending: Pending): Letter | undefined {
    return this.context.mailboxes.letter(this.name, pending.message.id);
  }

  /**
   * Offers the waiting letters to one subscription, oldest first, while it
   * has room; the rest waits for its drain or its acks.
   */
  private fill(sub: Subscription): void {
    sub.behind = false;
    for (const letter of this.context.mailboxes.waiting(this.name, Date.now())) {
      if (letter.holders > 0) continue;
      if (!sub.ready) {
        sub.behind = true;
        return;
      }
      this.offer([sub], letter);
    }
  }

  /** One offer is one delivery, however many sessions of the user take it. */
  private offer(subs: readonly Subscription[], letter: Letter): void {
    const { message } = letter;
    if (subs.length === 0 || !this.context.mailboxes.letter(this.name, message.id)) return;
    let consumers: Subscription[] | undefined;
    const redelivered = letter.deliveries > 0;
    letter.deliveries++;
    const encoded = new EncodedMessage(message);
    for (const sub of subs) {
      if (!belowPendingLimit(this.context, sub)) continue;
      this.messagesOut++;
      if (sub.ackMode === 'auto') {
        sub.consumer.deliver(sub, encoded, undefined, redelivered, undefined);
        consumers ??= [];
        consumers.push(sub);
      } else {
        letter.holders++;
        handOut(this.context, sub, letter, redelivered, encoded);
      }
    }
    if (!consumers) return;
    const waits: Promise<void>[] = [];
    this.consume(letter, false, waits);
    const recorded = whenAll(waits);
    // Written out is consumed: whoever took it waits for the record at its DISCONNECT.
    if (recorded) for (const sub of consumers) sub.consumer.recording?.(recorded);
  }

  /**
   * Forgets a consumed letter here and, through the log, on every instance;
   * adds to `waits` the log's promise when it records asynchronously.
   */
  private consume(letter: Letter, failed: boolean, waits?: Promise<void>[]): void {
    const { message } = letter;
    if (!this.context.mailboxes.remove(message.destination, message.id)) return;
    const recorded = this.context.log.consumed(message);
    if (recorded) waits?.push(recorded);
    if (failed) this.context.deadLetter(letter, `/user/${destinationUser(this.name)}/queue/DLQ`);
  }
}

/** Users' queues. */
export const USER_QUEUE: DestinationType = {
  resumable: false,
  create: (name, context) => new UserQueue(name, context),
  keep: (message, context) => {
    context.mailboxes.add(message, Date.now());
  },
};
