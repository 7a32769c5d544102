/**
 * Read-your-writes for user queues (docs/users-and-resume.md): a SUBSCRIBE to
 * a user queue is served only once this instance has read the users topic's
 * partition of that destination up to its end as of the SUBSCRIBE, so every
 * consumption recorded before it (an ACK whose RECEIPT another instance sent)
 * has removed its letter here too. The end is asked of Kafka (ListOffsets);
 * SUBSCRIBEs arriving while one request is in flight share the next one, a
 * request that started after all of them (one started earlier might not see
 * a write acknowledged before they came).
 */
import type { KafkaClient, Positions } from './kafka-client.js';
import { describe, type Log } from './notices.js';
import type { Offsets } from './offsets.js';
import { partitionFor } from './partitioner.js';
import { userKey } from './records.js';

/** What {@link ReadYourWrites} needs. */
export interface ReadYourWritesOptions {
  /** The users topic (destination = record key). */
  readonly topic: string;
  /** The longest a SUBSCRIBE waits, ms; past it the subscription is made with what was read. */
  readonly timeoutMs: number;
  /** The client, once connected. */
  readonly client: () => KafkaClient | undefined;
  readonly offsets: Pick<Offsets, 'at'>;
  readonly log: Log;
}

/** A SUBSCRIBE waiting until a partition is read up to `end`. */
interface Waiter {
  readonly partition: number;
  readonly end: bigint;
  readonly done: () => void;
}

/** At most one log line per this many ms about SUBSCRIBEs that waited too long. */
const LOG_EVERY_MS = 5_000;

/** Holds SUBSCRIBEs to user queues until this instance has read what was written before them. */
export class ReadYourWrites {
  private readonly waiters = new Set<Waiter>();
  private inFlight: Promise<Positions> | undefined;
  private queued: Promise<Positions> | undefined;
  private stopped = false;
  private lastLog = 0;

  constructor(private readonly options: ReadYourWritesOptions) {}

  /**
   * Undefined when there is nothing to wait for (not connected to Kafka: not
   * held), else a promise that resolves once `destination`'s partition is
   * read up to the end it has now, or after `timeoutMs`. Never rejects.
   */
  reach(destination: string): Promise<void> | undefined {
    if (this.stopped || !this.options.client()) return undefined;
    const started = Date.now();
    return new Promise<void>((resolve) => {
      let settled = false;
      let waiter: Waiter | undefined;
      const timer = setTimeout(() => {
        this.tooLong(destination, started);
        finish();
      }, this.options.timeoutMs);
      timer.unref();
      const finish = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (waiter) this.waiters.delete(waiter);
        resolve();
      };
      this.ends().then(
        (ends) => {
          if (settled) return;
          const partition = partitionFor(userKey(destination), ends.size);
          waiter = { partition, end: ends.get(partition) ?? 0n, done: finish };
          if (this.stopped || this.caughtUp(waiter)) finish();
          else this.waiters.add(waiter);
        },
        (error: unknown) => {
          this.warn(`could not ask Kafka the end of ${this.options.topic} (${describe(error)})`);
          finish();
        },
      );
    });
  }

  /** Records of `partition` of the users topic were read: the SUBSCRIBEs they complete go on. */
  advanced(partition: number): void {
    if (this.waiters.size === 0) return;
    for (const waiter of this.waiters) {
      if (waiter.partition === partition && this.caughtUp(waiter)) waiter.done();
    }
  }

  /** Lets every waiting SUBSCRIBE go (the instance stops). */
  stop(): void {
    this.stopped = true;
    for (const waiter of this.waiters) waiter.done();
  }

  private caughtUp(waiter: Waiter): boolean {
    const at = this.options.offsets.at(this.options.topic, waiter.partition);
    return at !== undefined && at >= waiter.end;
  }

  /** The users topic's end offsets, from a request started now or, with one in flight, after it. */
  private ends(): Promise<Positions> {
    if (this.queued) return this.queued;
    const inFlight = this.inFlight;
    if (!inFlight) return this.request();
    const queued = inFlight.then(
      () => this.request(),
      () => this.request(),
    );
    this.queued = queued;
    return queued;
  }

  private request(): Promise<Positions> {
    this.queued = undefined;
    const client = this.options.client();
    const request = client
      ? client.latestOffsets(this.options.topic)
      : Promise.reject(new Error('not connected to Kafka'));
    this.inFlight = request;
    const clear = () => {
      if (this.inFlight === request) this.inFlight = undefined;
    };
    request.then(clear, clear);
    return request;
  }

  private tooLong(destination: string, started: number): void {
    this.warn(
      `SUBSCRIBE to ${destination} served after ${Date.now() - started} ms without having read ` +
        `${this.options.topic} up to its end; messages acknowledged elsewhere may come again`,
    );
  }

  private warn(message: string): void {
    const now = Date.now();
    if (now - this.lastLog < LOG_EVERY_MS) return;
    this.lastLog = now;
    this.options.log('warn', message);
  }
}
