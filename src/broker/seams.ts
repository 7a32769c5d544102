/**
 * The seams between the broker and a cluster (DESIGN.md "Layers"), split by
 * concern the way aedes keeps `mq` apart from `persistence`:
 *
 * - {@link MessageBus}: publish a message to every instance, each delivers it;
 * - {@link DurableLog}: what user queues and resumes need to survive an
 *   instance (consumption records, how far back this instance has seen);
 * - {@link Registry}: which instances a user has sessions on.
 *
 * The broker depends on these interfaces only. The embedded default
 * ({@link LocalFanout} in `local-fanout.ts`) implements all three in
 * process; `stompbus/kafka` implements them on Kafka. No import runs from
 * the broker to a cluster implementation.
 */
import type { Message, Outgoing, Position } from './message.js';

/** Publishes messages to every instance, this one included. */
export interface MessageBus {
  /**
   * Publishes a SEND's message. Every instance's {@link BusSink.deliver} gets
   * it back with a position. Returns (or resolves) once the message is safe,
   * i.e. when a RECEIPT may be sent; rejects with a coded error otherwise.
   */
  publish(message: Outgoing): void | Promise<void>;
  /**
   * Optional (a bus that fetches by interest): `destination` got its first
   * local subscription (`on`) or lost its last one.
   */
  interest?(destination: string, on: boolean): void;
  /**
   * Optional: makes `destination`'s messages reach this instance before a
   * subscription to it is made, and with `resumeAfter` what a resume after
   * it needs; undefined when they already do, else a promise that resolves
   * when they do (the SUBSCRIBE and the frames behind it wait). Never rejects.
   */
  reach?(destination: string, resumeAfter?: Position): Promise<void> | undefined;
}

/** What user queues and resumes need to outlive one instance. */
export interface DurableLog {
  /** Records that a user-queue message was consumed here, for every instance. */
  consumed(message: Message): void;
  /**
   * The first position `n` of `epoch` from which this instance has seen every
   * message of `destination`; undefined for an epoch it does not know.
   */
  coveredFrom(destination: string, epoch: string): number | undefined;
}

/** The connection registry: who is connected where. */
export interface Registry {
  /** This instance's name in the registry. */
  readonly instanceId: string;
  /** A session of some user came or went here (the registry may announce it). */
  usersChanged(): void;
  /** The instances where `user` has a session now, this one included. */
  whereIs(user: string): string[];
}

/** What the bus hands back to this instance's broker. */
export interface BusSink {
  /** A positioned message, for this instance's subscribers (and history). */
  deliver(message: Message): void;
}

/** What the durable log hands back: another instance consumed a user-queue message. */
export interface LogSink {
  consumed(destination: string, messageId: string): void;
}

/** What the registry asks of this instance's broker. */
export interface RegistrySink {
  /** Users with a session on this instance now. */
  localUsers(): Iterable<string>;
}

/** Everything a {@link Fanout} reports to the broker of this instance. */
export type FanoutSink = BusSink & LogSink & RegistrySink;

/**
 * One cluster backend: the three seams, started and stopped together (a
 * Kafka backend feeds all three from one consumer). `createBroker({ fanout })`
 * takes one; the default is the in-process {@link LocalFanout}.
 */
export interface Fanout {
  readonly bus: MessageBus;
  readonly log: DurableLog;
  readonly registry: Registry;
  /** Starts; what it reads goes to `sink`. Embedded: synchronous in effect. */
  start(sink: FanoutSink): Promise<void>;
  /** Whether the backend can take messages now (Kafka connected, history read back). */
  readonly ready: boolean;
  /** Stops; queued work is flushed where possible. */
  stop(): Promise<void>;
}
