/**
 * The records on their way to Kafka. SENDs arriving in one event-loop turn go
 * out as one produce request, and only one request is in flight at a time:
 * what arrives meanwhile forms the next batch, and a retried request can
 * never overtake a later one, so one destination keeps one order.
 */
import { StompError } from '../errors.js';
import { type ProducedRecord, withTimeout } from './kafka-client.js';
import type { KafkaFanoutOptions } from './kafka-options.js';
import { describe, type Log, unavailable } from './notices.js';
import { recordSize } from './records.js';

/** What a {@link ProduceQueue} needs. */
export interface ProduceQueueOptions
  extends Pick<
    KafkaFanoutOptions,
    'maxPendingRecords' | 'maxBatchRecords' | 'maxBatchBytes' | 'publishTimeoutMs'
  > {
  /** Sends one produce request; resolves when Kafka acknowledged every record of it. */
  readonly send: (records: readonly ProducedRecord[]) => Promise<void>;
  readonly log: Log;
  /** A request succeeded after failures: Kafka is back (waits for it may end early). */
  readonly onRecovered: () => void;
  /** A request was acknowledged, `seconds` after it was sent. */
  readonly onProduced?: (seconds: number) => void;
}

interface Pending {
  readonly record: ProducedRecord;
  readonly at: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** Batches records into produce requests, one request at a time. */
export class ProduceQueue {
  private queue: Pending[] = [];
  private inFlight = 0;
  private flushing: Promise<void> | undefined;
  private flushScheduled = false;
  /** Records failed since the last success, for the log. */
  private failures = 0;
  private lastFailureLog = 0;

  constructor(private readonly options: ProduceQueueOptions) {}

  /** Records waiting for Kafka: queued or in the request in flight. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  /** Queues a record for the next produce request; resolves once Kafka acknowledged it. */
  push(record: ProducedRecord): Promise<void> {
    const result = new Promise<void>((resolve, reject) => {
      this.queue.push({ record, at: Date.now(), resolve, reject });
    });
    this.scheduleFlush();
    return result;
  }

  /**
   * {@link push} for a SEND: refused at once when `maxPendingRecords` already
   * wait, so that a Kafka that is down or slow costs bounded memory and the
   * client hears about it now rather than after the publish timeout.
   */
  offer(record: ProducedRecord): Promise<void> {
    const { maxPendingRecords } = this.options;
    if (this.pending >= maxPendingRecords) {
      return Promise.reject(unavailable(`${maxPendingRecords} messages already wait for Kafka`));
    }
    return this.push(record);
  }

  /**
   * Waits (at most `flushMs`) for the request in flight and what queued up
   * behind it, then fails what is still queued with STOMP_ERR_SHUTDOWN.
   */
  async stop(flushMs: number): Promise<void> {
    // What was queued in this very turn (the registry's leave announcement,
    // last SENDs) goes out now instead of failing for want of a flush.
    if (!this.flushing && this.queue.length > 0) {
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
      });
    }
    const flushed = this.flushing ?? Promise.resolve();
    await withTimeout(flushed, flushMs, 'flush').catch(() => {});
    for (const pending of this.queue.splice(0)) {
      pending.reject(new StompError('STOMP_ERR_SHUTDOWN'));
    }
  }

  private scheduleFlush(): void {
    if (this.flushing || this.flushScheduled) return;
    this.flushScheduled = true;
    // One event-loop turn of SENDs goes out as one request.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushing ??= this.flush().finally(() => {
        this.flushing = undefined;
        if (this.queue.length > 0) this.scheduleFlush();
      });
    });
  }

  /** Sends the queue, batch after batch, each once the one before it is answered. */
  private async flush(): Promise<void> {
    const { publishTimeoutMs } = this.options;
    while (this.queue.length > 0) {
      const now = Date.now();
      const batch: Pending[] = [];
      for (const pending of this.queue.splice(0, this.batchLength())) {
        if (now - pending.at < publishTimeoutMs) batch.push(pending);
        else pending.reject(unavailable('Kafka did not take the message in time'));
      }
      if (batch.length === 0) continue;
      this.inFlight = batch.length;
      const started = performance.now();
      const sent = this.send(batch.map((p) => p.record));
      try {
        await withTimeout(sent, publishTimeoutMs, 'the Kafka produce request');
        this.options.onProduced?.((performance.now() - started) / 1000);
        this.produced();
        for (const pending of batch) pending.resolve();
      } catch (error) {
        this.produceFailed(error, batch.length);
        for (const pending of batch) pending.reject(unavailable(describe(error), error));
        // The request may still be pending: never two at once.
        await sent.catch(() => {});
      } finally {
        this.inFlight = 0;
      }
    }
  }

  /** The request, a rejection even when `send` throws (no client yet), so its records get an answer. */
  private send(records: readonly ProducedRecord[]): Promise<void> {
    try {
      return this.options.send(records);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** How many queued records the next request takes: at least one. */
  private batchLength(): number {
    const { maxBatchRecords, maxBatchBytes } = this.options;
    const end = Math.min(this.queue.length, maxBatchRecords);
    let bytes = 0;
    for (let i = 0; i < end; i++) {
      bytes += recordSize((this.queue[i] as Pending).record);
      if (bytes > maxBatchBytes) return Math.max(1, i);
    }
    return end;
  }

  private produced(): void {
    if (this.failures === 0) return;
    this.options.log('info', `producing again (${this.failures} messages failed meanwhile)`, {
      kafka: 'back',
      failed: this.failures,
    });
    this.failures = 0;
    this.options.onRecovered();
  }

  /** Logs the first failure after a success, then at most one line per 5 s. */
  private produceFailed(error: unknown, count: number): void {
    this.failures += count;
    const now = Date.now();
    if (this.failures === count || now - this.lastFailureLog > 5_000) {
      this.lastFailureLog = now;
      this.options.log(
        'error',
        `produce failed (${describe(error)}); ${this.failures} message(s) answered with ERROR so far`,
        { kafka: 'lost', error: describe(error), failed: this.failures },
      );
    }
  }
}
