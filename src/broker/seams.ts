/**
 * The seams between the broker and a cluster (docs/architecture.md), split by
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
   * it needs; for a user queue, makes this instance have read every
   * consumption recorded before now (read-your-writes: what was acked on
   * another instance is not handed out here). Undefined when nothing is
   * missing, else a promise that resolves when it is there (the SUBSCRIBE
   * and the frames behind it wait). Never rejects.
   */
  reach?(destination: string, resumeAfter?: Position): Promise<void> | undefined;
}

/**
 * Optional: `/queue/…` shared by every instance (cluster mode's default,
 * docs/cluster-queues.md). Each message goes to one consumer anywhere; the
 * backend decides which and hands it over with {@link FanoutSink.assigned}.
 */
export interface SharedQueues {
  /** A fresh consumer id, unique in the cluster. */
  consumerId(): string;
  /** Puts a SEND's message in the queue; resolves once it is safe (a RECEIPT may go). */
  send(message: Outgoing): Promise<void>;
  /** A local consumer of `queue` starts; `credit`: most messages it holds unsettled at once. */
  join(queue: string, consumer: string, credit: number): void;
  /** It ends: what it held goes back to the queue, marked redelivered. */
  leave(queue: string, consumer: string): void;
  /**
   * It consumed (`consumed`: ACK, or written out in `auto` mode) or rejected
   * (NACK) these messages; resolves once that is durable.
   */
  settle(queue: string, consumer: string, ids: readonly string[], consumed: boolean): Promise<void>;
  /** Messages waiting in `queue` when this instance knows (it owns the queue); else undefined. */
  depth(queue: string): number | undefined;
  /** Whether `queue` is full as far as this instance heard: a SEND to it is refused. */
  full(queue: string): boolean;
}

/** What user queues and resumes need to outlive one instance. */
export interface DurableLog {
  /**
   * Records that a user-queue message was consumed here, for every instance.
   * Returns once the record is durable, or a promise that resolves then (the
   * RECEIPT of the ACK that consumed it waits) and rejects with a coded
   * error when it could not be recorded.
   */
  consumed(message: Message): void | Promise<void>;
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
  /**
   * `user`'s first session here came (`online`) or its last one went (the
   * registry may announce it; a bus reading by interest reads that user's traffic).
   */
  usersChanged(user?: string, online?: boolean): void;
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
  /** Connections open on this instance now (the registry may announce it). */
  connections?(): number;
}

/** What shared queues hand to this instance's broker. */
export interface QueueSink {
  /**
   * `message` of `queue` is given to `consumer`, a consumer of this instance;
   * `deliveries` counts this delivery (more than 1: redelivered).
   */
  assigned?(queue: string, consumer: string, message: Message, deliveries: number): void;
}

/** Everything a {@link Fanout} reports to the broker of this instance. */
export type FanoutSink = BusSink & LogSink & RegistrySink & QueueSink;

/** Whether a backend can serve now and, when not, why (the command's `/readyz`). */
export interface FanoutReadiness {
  readonly ready: boolean;
  /** Why not, in a few words (e.g. `connecting to Kafka`); undefined when ready. */
  readonly reason?: string | undefined;
}

/**
 * One cluster backend: the three seams, started and stopped together (a
 * Kafka backend feeds all three from one consumer). `createBroker({ fanout })`
 * takes one; the default is the in-process {@link LocalFanout}.
 */
export interface Fanout {
  readonly bus: MessageBus;
  readonly log: DurableLog;
  readonly registry: Registry;
  /** Optional: queues shared by every instance; without it each instance has its own. */
  readonly queues?: SharedQueues | undefined;
  /** Starts; what it reads goes to `sink`. Embedded: synchronous in effect. */
  start(sink: FanoutSink): Promise<void>;
  /** Whether the backend can take messages now (Kafka: the producer is connected). */
  readonly ready: boolean;
  /**
   * Whether this instance should be given clients now: the backend connected,
   * consuming, and what resumes need read back. Optional: without it
   * {@link ready} decides.
   */
  readiness?(): FanoutReadiness;
  /** Stops; queued work is flushed where possible. */
  stop(): Promise<void>;
  /** What a cluster backend reports to the metrics and the console; none when embedded. */
  readonly stats?: ClusterStats;
}

/** Another instance as this one last heard of it in the registry. */
export interface InstanceSeen {
  readonly id: string;
  /** Users with a session there. */
  readonly users: number;
  /** Connections open there; undefined when it did not say. */
  readonly connections: number | undefined;
  /** Its consumer lag, records in total; undefined when it did not say. */
  readonly lag: number | undefined;
  /** When its last announcement was read, ms since 1970. */
  readonly seenAt: number;
}

/** One partition's consumer lag. */
export interface PartitionLag {
  readonly topic: string;
  readonly partition: number;
  /** Records between this instance's position and the partition's end, as of the last fetch. */
  readonly lag: number;
}

/** The counters of a cluster backend, read when the metrics are scraped. */
export interface ClusterStats {
  /** This instance's name in the registry. */
  readonly instanceId: string;
  /** Records fetched, by Kafka topic, since start. */
  recordsConsumed(): ReadonlyMap<string, number>;
  /** Consumer lag per topic and partition. */
  lag(): PartitionLag[];
  /** The other instances alive in the registry now. */
  instances(): InstanceSeen[];
  /** Adds a listener of each produce request's latency, in seconds (from send to Kafka's ack). */
  onProduced(listener: (seconds: number) => void): void;
  /**
   * Each record's wait from entering the produce queue to Kafka's ack, since
   * start; a backend without a produce queue leaves it out.
   */
  produceWait?(): DelayCounts;
  /**
   * Each live message record's age when this instance handed it to delivery
   * (the time its batch was handed over minus the record's timestamp), by
   * Kafka topic, since start; optional like {@link produceWait}.
   */
  recordDelay?(): ReadonlyMap<string, DelayCounts>;
  /** Cluster queues: the partitions this instance owns and what its owners did; undefined without. */
  queues?(): QueueOwnerStats | undefined;
}

/** A latency histogram as counted: per bucket, not cumulative. */
export interface DelayCounts {
  /** The buckets' upper bounds, seconds, ascending. */
  readonly bounds: readonly number[];
  /** One count per bound, then one for what is past the last bound. */
  readonly counts: ArrayLike<number>;
  /** Seconds, all delays together. */
  readonly sum: number;
  readonly count: number;
}

/** What the owners of cluster-queue partitions on this instance did since start. */
export interface QueueOwnerStats {
  /** Partitions of the queues topic owned (and rebuilt) now. */
  readonly ownedPartitions: readonly number[];
  /** Messages given to a consumer, redeliveries included. */
  readonly assigned: number;
  /** Of those, redeliveries. */
  readonly redelivered: number;
  /** Messages moved to the dead letter queue. */
  readonly deadLettered: number;
}
