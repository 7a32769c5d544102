/**
 * The records on their way to Kafka. SENDs arriving in one event-loop turn go
 * out as one produce request, and only one request is in flight at a time:
 * what arrives meanwhile forms the next batch, and a retried request can
 * never overtake a later one, so one destination keeps one order.
 *
 * A request starts no sooner than `produceIntervalMs` after the one before it
 * started, unless a full batch (`maxBatchRecords` or `maxBatchBytes`) is
 * waiting: under steady traffic fewer, fuller requests, for Kafka and for the
 * instance; a record after a quiet spell goes out in the next event-loop turn.
 *
 * A request that fails because Kafka is away (restarting, a leader moving,
 * not connected yet) is tried again, with its records still first in line,
 * until each record's deadline (`sendTimeoutMs` after it was queued): a short
 * outage only delays the RECEIPTs. What waits is bounded in records and bytes
 * ({@link ProduceQueue.offer}) and in time; only what passes a bound fails
 * with STOMP_ERR_CLUSTER_UNAVAILABLE. A request Kafka refuses for good (a
 * record too large, say) fails at once. A retried request that Kafka had in
 * fact written before its answer was lost writes its records twice: the
 * consumer drops the second copy (see `duplicates.ts`).
 */
import { StompError } from '../errors.js';
import { DelayCounter } from './delays.js';
import { isPermanent, type ProducedRecord } from './kafka-client.js';
import type { KafkaFanoutOptions } from './kafka-options.js';
import { describe, type Log, unavailable } from './notices.js';
import { recordSize } from './records.js';

/** What a {@link ProduceQueue} needs. */
export interface ProduceQueueOptions
  extends Pick<
    KafkaFanoutOptions,
    | 'maxPendingRecords'
    | 'maxPendingBytes'
    | 'maxBatchRecords'
    | 'maxBatchBytes'
    | 'sendTimeoutMs'
    | 'retryInitialMs'
    | 'produceIntervalMs'
  > {
  /** Sends one produce request; resolves when Kafka acknowledged every record of it. */
  readonly send: (records: readonly ProducedRecord[]) => Promise<void>;
  readonly log: Log;
  /** A request succeeded after failures: Kafka is back (waits for it may end early). */
  readonly onRecovered: () => void;
  /** A request was acknowledged, `seconds` after it was sent. */
  readonly onProduced?: (seconds: number) => void;
}

/**
 * Longest wait between two tries of a failed request, ms (the first waits
 * `retryInitialMs`, at most this; kafkajs also waits within each try): Kafka
 * back is noticed within about a second.
 */
const RETRY_MAX_MS = 1_000;
/** At most one log line per this many ms while requests keep failing. */
const LOG_EVERY_MS = 5_000;
/** Longest `produceIntervalMs` taken (`--kafka-produce-interval`), ms. */
export const MAX_PRODUCE_INTERVAL_MS = 1_000;

interface Pending {
  readonly record: ProducedRecord;
  readonly size: number;
  readonly timeoutMs: number;
  /** When this record is given up on, ms since 1970. */
  readonly deadline: number;
  /** When it was queued (`performance.now()`). */
  readonly queuedAt: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
  settled: boolean;
}

/** Batches records into produce requests, one request at a time, retried until their deadline. */
export class ProduceQueue {
  private queue: Pending[] = [];
  /** Records (and their bytes) not answered yet: queued or in the request in flight. */
  private count = 0;
  private bytes = 0;
  private flushing: Promise<void> | undefined;
  private flushScheduled = false;
  private sweeper: NodeJS.Timeout | undefined;
  /** Ends the flush loop's wait now: a retry's backoff, or the interval when {@link pacing}. */
  private endWait: (() => void) | undefined;
  /** The flush loop waits for `produceIntervalMs` (not for a retry). */
  private pacing = false;
  /**
   * When the last request started (`performance.now()`); undefined before the first and
   * after a failed one (a retry does not wait for the interval).
   */
  private lastStart: number | undefined;
  /** `produceIntervalMs`, within 0 and {@link MAX_PRODUCE_INTERVAL_MS}. */
  private readonly intervalMs: number;
  private stopping = false;
  /** stop() was called: what is queued goes out without the interval's waits. */
  private draining = false;
  /** When requests started failing (undefined: the last one succeeded). */
  private failingSince: number | undefined;
  /** Records given up on since the last success, for the log. */
  private expired = 0;
  private lastFailureLog = 0;
  /** Each acknowledged record's wait, from queued to Kafka's ack. */
  readonly waits = new DelayCounter();

  constructor(private readonly options: ProduceQueueOptions) {
    const interval = Number(options.produceIntervalMs);
    this.intervalMs = interval > 0 ? Math.min(interval, MAX_PRODUCE_INTERVAL_MS) : 0;
  }

  /** Records waiting for Kafka: queued or in the request in flight. */
  get pending(): number {
    return this.count;
  }

  /** Bytes (as {@link recordSize} counts them) of the records waiting for Kafka. */
  get pendingBytes(): number {
    return this.bytes;
  }

  /**
   * Queues a record for the next produce request; resolves once Kafka
   * acknowledged it, rejects once `timeoutMs` (default `sendTimeoutMs`) passed
   * without that.
   */
  push(record: ProducedRecord, timeoutMs = this.options.sendTimeoutMs): Promise<void> {
    const size = recordSize(record);
    const result = new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const queuedAt = performance.now();
      this.queue.push({
        record,
        size,
        timeoutMs,
        deadline,
        queuedAt,
        resolve,
        reject,
        settled: false,
      });
    });
    this.count++;
    this.bytes += size;
    this.startSweeping();
    if (this.pacing && this.fullBatchWaits()) this.endWait?.();
    this.scheduleFlush();
    return result;
  }

  /**
   * {@link push} for a SEND: refused at once when `maxPendingRecords` records
   * or `maxPendingBytes` bytes already wait (one record alone is always
   * taken), so that a Kafka that is down or slow costs bounded memory.
   */
  offer(record: ProducedRecord): Promise<void> {
    const { maxPendingRecords, maxPendingBytes } = this.options;
    if (this.count >= maxPendingRecords) {
      return Promise.reject(unavailable(`${maxPendingRecords} messages already wait for Kafka`));
    }
    if (this.count > 0 && this.bytes + recordSize(record) > maxPendingBytes) {
      return Promise.reject(unavailable(`${maxPendingBytes} bytes already wait for Kafka`));
    }
    return this.push(record);
  }

  /** Kafka is reachable again (connected): the next try goes now rather than after its wait. */
  wake(): void {
    this.endWait?.();
  }

  /**
   * Waits (at most `flushMs`) for the request in flight and what queued up
   * behind it, then fails what is still queued with STOMP_ERR_SHUTDOWN; the
   * request in flight is answered when Kafka answers it, and not tried again.
   */
  async stop(flushMs: number): Promise<void> {
    // What was queued in this very turn (the registry's leave announcement,
    // last SENDs) goes out now instead of failing for want of a flush.
    this.draining = true;
    if (this.pacing) this.endWait?.();
    if (!this.flushing && this.queue.length > 0) this.startFlush();
    const flushed = this.flushing ?? Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, flushMs);
    });
    await Promise.race([flushed, timeout]);
    clearTimeout(timer);
    this.stopping = true;
    this.wake();
    const shutdown = new StompError('STOMP_ERR_SHUTDOWN');
    for (const pending of this.queue.splice(0)) this.settle(pending, shutdown);
    if (this.count === 0) this.stopSweeping();
  }

  private scheduleFlush(): void {
    if (this.flushing || this.flushScheduled || this.stopping) return;
    this.flushScheduled = true;
    // One event-loop turn of SENDs goes out as one request.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushing ?? this.startFlush();
    });
  }

  private startFlush(): void {
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
      if (this.queue.length > 0) this.scheduleFlush();
    });
  }

  /** Sends the queue, batch after batch, each once the one before it is answered. */
  private async flush(): Promise<void> {
    const first = Math.min(this.options.retryInitialMs, RETRY_MAX_MS);
    let delay = first;
    while (this.queue.length > 0) {
      if (this.mustWait()) await this.paced();
      const batch = this.takeBatch();
      if (batch.length === 0) continue;
      let error: unknown;
      const started = performance.now();
      this.lastStart = started;
      try {
        await this.send(batch.map((p) => p.record));
      } catch (caught) {
        error = caught ?? new Error('produce failed');
      }
      if (error === undefined) {
        const acked = performance.now();
        this.options.onProduced?.((acked - started) / 1000);
        this.produced();
        for (const pending of batch) {
          if (!pending.settled) this.waits.add(acked - pending.queuedAt);
          this.settle(pending);
        }
        delay = first;
        continue;
      }
      const open = batch.filter((p) => !p.settled);
      this.lastStart = undefined;
      this.produceFailed(error, open.length);
      if (isPermanent(error) || this.stopping) {
        const failure = this.stopping
          ? new StompError('STOMP_ERR_SHUTDOWN')
          : unavailable(describe(error), error);
        for (const pending of open) this.settle(pending, failure);
        continue;
      }
      // Still first in line: nothing queued behind them may overtake them.
      this.queue.unshift(...open);
      this.sweep();
      await this.retryWait(delay);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }

  /** Whether the next request must wait for the interval (checked without awaiting). */
  private mustWait(): boolean {
    return (
      this.intervalMs > 0 &&
      this.lastStart !== undefined &&
      !this.draining &&
      this.lastStart + this.intervalMs > performance.now() &&
      !this.fullBatchWaits()
    );
  }

  /**
   * Waits until `produceIntervalMs` after the last request's start, or less when a full
   * batch comes meanwhile, stop() or {@link wake} is called.
   */
  private async paced(): Promise<void> {
    this.pacing = true;
    await this.waitFor((this.lastStart ?? 0) + this.intervalMs - performance.now());
    this.pacing = false;
  }

  /**
   * Whether the queue holds a whole request's worth of records or bytes. Only asked between
   * requests, when {@link bytes} counts the queued records alone.
   */
  private fullBatchWaits(): boolean {
    const { maxBatchRecords, maxBatchBytes } = this.options;
    return this.queue.length >= maxBatchRecords || this.bytes >= maxBatchBytes;
  }

  /** The next request's records, oldest first (at least one), bounded by records and bytes. */
  private takeBatch(): Pending[] {
    const { maxBatchRecords, maxBatchBytes } = this.options;
    const batch: Pending[] = [];
    let bytes = 0;
    while (this.queue.length > 0 && batch.length < maxBatchRecords) {
      const next = this.queue[0] as Pending;
      if (next.settled) {
        this.queue.shift();
        continue;
      }
      if (batch.length > 0 && bytes + next.size > maxBatchBytes) break;
      this.queue.shift();
      batch.push(next);
      bytes += next.size;
    }
    return batch;
  }

  /** The request, a rejection even when `send` throws (not connected), so its records get an answer. */
  private send(records: readonly ProducedRecord[]): Promise<void> {
    try {
      return this.options.send(records);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Waits `ms` before the next try, or less when {@link wake} or stop() is called. */
  private retryWait(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return this.waitFor(ms);
  }

  /** Waits `ms`, or less when {@link endWait} is called meanwhile. */
  private waitFor(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.endWait = undefined;
        resolve();
      };
      const timer = setTimeout(end, ms);
      this.endWait = end;
    });
  }

  /** Answers a record once: resolved, or rejected with `error`. */
  private settle(pending: Pending, error?: unknown): void {
    if (pending.settled) return;
    pending.settled = true;
    this.count--;
    this.bytes -= pending.size;
    if (error === undefined) pending.resolve();
    else pending.reject(error);
    if (this.count === 0) this.stopSweeping();
  }

  /**
   * Fails the queued records whose deadline passed, so that no client waits
   * much past `sendTimeoutMs`. Records in the request in flight are answered
   * when Kafka (or kafkajs's request timeout) answers it: it may still
   * succeed, and a failed SEND must be one Kafka did not take.
   */
  private sweep(): void {
    const now = Date.now();
    if (!this.queue.some((p) => p.deadline <= now)) return;
    this.queue = this.queue.filter((pending) => {
      if (pending.settled) return false;
      if (pending.deadline > now) return true;
      this.expired++;
      const detail = `Kafka did not take the message within ${pending.timeoutMs} ms`;
      this.settle(pending, unavailable(detail));
      return false;
    });
  }

  private startSweeping(): void {
    if (this.sweeper) return;
    // Deadlines are kept to within a twentieth of the timeout (10 to 250 ms).
    const every = Math.min(250, Math.max(10, Math.floor(this.options.sendTimeoutMs / 20)));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  private stopSweeping(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private produced(): void {
    if (this.failingSince === undefined) return;
    const outage = Date.now() - this.failingSince;
    this.options.log(
      'info',
      `producing again after ${outage} ms (${this.expired} records given up meanwhile)`,
      { kafka: 'back', outageMs: outage, expired: this.expired },
    );
    this.failingSince = undefined;
    this.expired = 0;
    this.options.onRecovered();
  }

  /** Logs the first failure after a success, then at most one line per {@link LOG_EVERY_MS}. */
  private produceFailed(error: unknown, count: number): void {
    const now = Date.now();
    const first = this.failingSince === undefined;
    this.failingSince ??= now;
    if (!first && now - this.lastFailureLog < LOG_EVERY_MS) return;
    this.lastFailureLog = now;
    const what = isPermanent(error)
      ? `${count} message(s) refused`
      : `${this.count} record(s) wait, retried for up to ${this.options.sendTimeoutMs} ms each` +
        (this.expired > 0 ? `; ${this.expired} given up so far` : '');
    this.options.log('error', `produce failed (${describe(error)}); ${what}`, {
      kafka: 'lost',
      error: describe(error),
      waiting: this.count,
      expired: this.expired,
    });
  }
}
