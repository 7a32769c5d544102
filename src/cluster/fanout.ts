import type { Message } from '../broker/message.js';

/** What the fan-out hands back to the broker of this instance. */
export interface FanoutSink {
  /** A topic or user-destination message, for this instance's subscribers (and history). */
  deliver(message: Message): void;
  /** A user-queue message was consumed somewhere: forget it. */
  consumed(destination: string, messageId: string): void;
  /** Users with a session on this instance now (for the connection registry). */
  localUsers(): Iterable<string>;
}

/**
 * The seam between "a SEND to a topic or user destination was accepted" and
 * "deliver it to the local subscribers". The embedded broker delivers
 * in-process ({@link LocalFanout}); cluster mode goes through Kafka so that
 * every instance delivers every message in one order, and knows what was
 * consumed and who is connected where.
 */
export interface Fanout {
  /** This instance's name in the connection registry. */
  readonly instanceId: string;
  /** Starts the fan-out; what it reads goes to `sink`. */
  start(sink: FanoutSink): Promise<void>;
  /**
   * Publishes a message to every instance, this one included, giving it a
   * position. Returns (or resolves) once the message is safe, i.e. when a
   * RECEIPT may be sent.
   */
  publish(message: Message): void | Promise<void>;
  /** Tells every instance that a user-queue message was consumed here. */
  consumed(message: Message): void;
  /**
   * The first position `n` of `epoch` from which this instance has seen every
   * message of `destination`; undefined for an epoch it does not know.
   */
  coveredFrom(destination: string, epoch: string): number | undefined;
  /** A session of some user came or went here (the registry may publish it). */
  usersChanged(): void;
  /** The instances where `user` has a session now, this one included. */
  whereIs(user: string): string[];
  /** Stops; queued work is flushed where possible. */
  stop(): Promise<void>;
}
