import type { Replay } from '../history.js';
import type { Message, Outgoing, Position } from '../message.js';
import { EncodedMessage } from '../message-frame.js';
import type { Pending, Subscription } from '../subscription.js';
import {
  belowPendingLimit,
  type Destination,
  type DestinationContext,
  type DestinationType,
  handOut,
} from './destination.js';

/** How long replayed messages' encodings stay shared after the last replay, ms. */
const REPLAY_CACHE_MS = 10_000;

/**
 * `/topic/…` and `/user/<name>/topic/…`: every subscriber gets every
 * message, through the bus so that all instances see one order. Recent
 * messages are kept in the history for subscribers that resume after a
 * position. A consumer that cannot keep up is disconnected (slow consumer on
 * topics: docs/configuration.md, "Memory stays bounded").
 */
export class Topic implements Destination {
  messagesIn = 0;
  messagesOut = 0;
  private readonly subs = new Set<Subscription>();
  /**
   * Encodings of replayed messages, shared by the replays of a reconnect
   * storm (many clients resuming from about the same place, one after the
   * other), dropped a while after the last replay: kept messages hold no
   * encoding for long.
   */
  private replayed: WeakMap<Message, EncodedMessage> | undefined;
  private replays = 0;
  private forget: NodeJS.Timeout | undefined;

  constructor(
    readonly name: string,
    private readonly context: DestinationContext,
  ) {}

  get idle(): boolean {
    return this.subs.size === 0;
  }

  get depth(): number {
    return 0;
  }

  get subscribers(): number {
    return this.subs.size;
  }

  send(message: Outgoing): void | Promise<void> {
    return this.context.bus.publish(message);
  }

  deliver(message: Message): void {
    TOPIC.keep(message, this.context);
    if (message.replayed) return;
    this.messagesIn++;
    // One encoding per fan-out, shared by every subscriber, gone after it:
    // the history keeps the message, not its bytes.
    let encoded: EncodedMessage | undefined;
    let delivered = 0;
    for (const sub of this.subs) {
      if (sub.seen && !sub.after(message)) continue;
      if (sub.replaying) {
        this.queueBehind(sub, message);
        continue;
      }
      encoded ??= new EncodedMessage(message);
      if (this.deliverLive(sub, encoded, undefined)) delivered++;
    }
    this.messagesOut += delivered;
  }

  deadLetter(message: Outgoing): void {
    // A dead letter sent on to a topic: published like a SEND (lost if the cluster is down).
    (this.context.bus.publish(message) as Promise<void> | undefined)?.catch(() => {});
  }

  subscribe(sub: Subscription, resumeAfter?: Position): Replay | undefined {
    if (this.subs.size === 0) this.context.bus.interest?.(this.name, true);
    this.subs.add(sub);
    if (!resumeAfter) return undefined;
    const covered = this.context.log.coveredFrom(this.name, resumeAfter.epoch);
    const replay = this.context.history.replay(this.name, resumeAfter, covered, Date.now());
    // Live messages this instance has not delivered yet may be ones the
    // client saw elsewhere (another instance ahead of this one): skip them.
    sub.seen = replay.messages.at(-1)?.position ?? resumeAfter;
    sub.replaying = {
      items: [...replay.messages],
      at: 0,
      mark: replay.complete ? 'complete' : 'incomplete',
    };
    this.replays++;
    clearTimeout(this.forget);
    this.drainReplay(sub);
    return replay;
  }

  unsubscribe(sub: Subscription): void {
    if (this.subs.delete(sub) && this.subs.size === 0)
      this.context.bus.interest?.(this.name, false);
    if (sub.replaying) this.replayDone(sub);
    sub.takeUnacked();
  }

  ack(): void {}

  /** NACK: delivered to the same subscription again, until `maxDeliveries`, then dead-lettered. */
  nack(sub: Subscription, settled: readonly Pending[]): void {
    for (const pending of settled) {
      if (pending.deliveries >= this.context.options.maxDeliveries) {
        this.context.deadLetter(pending, this.context.options.deadLetterQueue);
      } else {
        pending.deliveries++;
        handOut(this.context, sub, pending, true);
      }
    }
  }

  drained(sub: Subscription): void {
    if (sub.replaying) this.drainReplay(sub);
  }

  /** Sends a resume's replay while the connection has room; the rest continues on drain. */
  private drainReplay(sub: Subscription): void {
    const replaying = sub.replaying;
    if (!replaying) return;
    const { items } = replaying;
    while (replaying.at < items.length) {
      if (!sub.consumer.writable) return;
      const message = items[replaying.at] as Message;
      items[replaying.at++] = undefined;
      if (!this.deliverLive(sub, this.encodingOf(message), replaying.mark)) return;
      replaying.mark = undefined;
    }
    // A replay of nothing: the first live MESSAGE carries the outcome.
    if (replaying.mark === undefined) this.replayDone(sub);
  }

  /** A replayed message's encoding, shared with the other replays of these seconds. */
  private encodingOf(message: Message): EncodedMessage {
    this.replayed ??= new WeakMap();
    let encoded = this.replayed.get(message);
    if (!encoded) {
      encoded = new EncodedMessage(message);
      this.replayed.set(message, encoded);
    }
    return encoded;
  }

  private replayDone(sub: Subscription): void {
    if (!sub.replaying) return;
    sub.replaying = undefined;
    if (--this.replays > 0) return;
    clearTimeout(this.forget);
    this.forget = setTimeout(() => {
      if (this.replays === 0) this.replayed = undefined;
    }, REPLAY_CACHE_MS);
    this.forget.unref();
  }

  /** A live message for a subscription still replaying: after the replay; bounded. */
  private queueBehind(sub: Subscription, message: Message): void {
    const replaying = sub.replaying as NonNullable<Subscription['replaying']>;
    replaying.items.push(message);
    const bound = Math.max(1_000, 2 * this.context.options.historyMaxMessages);
    if (replaying.items.length - replaying.at > bound) sub.consumer.overflow();
    else this.drainReplay(sub);
  }

  /** One topic delivery; a consumer too far behind is disconnected instead. */
  private deliverLive(sub: Subscription, encoded: EncodedMessage, resume: string | undefined) {
    if (!sub.consumer.writable) {
      sub.consumer.overflow();
      return false;
    }
    if (!belowPendingLimit(this.context, sub)) return false;
    if (sub.ackMode === 'auto') sub.consumer.deliver(sub, encoded, undefined, false, resume);
    else
      handOut(
        this.context,
        sub,
        { message: encoded.message, deliveries: 1 },
        false,
        encoded,
        resume,
      );
    return true;
  }
}

/** Topics and user topics. */
export const TOPIC: DestinationType = {
  resumable: true,
  create: (name, context) => new Topic(name, context),
  keep: (message, context) => context.history.append(message, Date.now()),
  // Through the bus, so that every instance (this one too) delivers it in one order.
  sendStateless: (message, context) => context.bus.publish(message),
};
