import { describe, expect, it } from 'vitest';
import { PermanentProduceError, type ProducedRecord } from '../../src/cluster/kafka-client.js';
import {
  MAX_PRODUCE_INTERVAL_MS,
  ProduceQueue,
  type ProduceQueueOptions,
} from '../../src/cluster/produce-queue.js';
import { recordSize } from '../../src/cluster/records.js';
import { outcome, until } from './harness.js';

/** A record of `bytes` body bytes, named by its key. */
function record(key: string, bytes = 10): ProducedRecord {
  return { topic: 't', key, value: Buffer.alloc(bytes), headers: [] };
}

const keys = (records: readonly ProducedRecord[]) => records.map((r) => r.key);

/** A send that answers only when the spec says so, one request at a time. */
class FakeKafka {
  readonly requests: ProducedRecord[][] = [];
  /** When each request was made (`performance.now()`). */
  readonly at: number[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private answers: Array<(error?: Error) => void> = [];

  send = (records: readonly ProducedRecord[]): Promise<void> => {
    this.requests.push([...records]);
    this.at.push(performance.now());
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise<void>((resolve, reject) => {
      this.answers.push((error) => {
        this.inFlight--;
        if (error) reject(error);
        else resolve();
      });
    });
  };

  /** Answers the oldest request still open. */
  answer(error?: Error): void {
    const next = this.answers.shift();
    if (!next) throw new Error('no request to answer');
    next(error);
  }

  /** Waits until `count` requests were made. */
  async requested(count: number): Promise<void> {
    await until(() => this.requests.length >= count);
  }
}

function queueOn(kafka: FakeKafka, options: Partial<ProduceQueueOptions> = {}) {
  const lines: string[] = [];
  let recovered = 0;
  const queue = new ProduceQueue({
    maxPendingRecords: 1_000,
    maxPendingBytes: 1_000_000_000,
    maxBatchRecords: 100,
    maxBatchBytes: 1_000_000,
    sendTimeoutMs: 5_000,
    retryInitialMs: 5,
    produceIntervalMs: 0,
    send: kafka.send,
    log: (level, message) => lines.push(`${level}: ${message}`),
    onRecovered: () => recovered++,
    ...options,
  });
  return { queue, lines, recoveries: () => recovered };
}

describe('ProduceQueue', () => {
  it('sends the records pushed in one event-loop turn as one request', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka);
    const done = ['a', 'b', 'c'].map((k) => queue.push(record(k)));
    await kafka.requested(1);
    expect(keys(kafka.requests[0] ?? [])).toEqual(['a', 'b', 'c']);
    kafka.answer();
    await Promise.all(done);
  });

  it('never has two requests in flight: what arrives meanwhile forms the next batch', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka);
    const first = queue.push(record('a'));
    await kafka.requested(1);
    const later = ['b', 'c'].map((k) => queue.push(record(k)));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(kafka.requests).toHaveLength(1);
    expect(queue.pending).toBe(3);
    kafka.answer();
    await first;
    await kafka.requested(2);
    expect(keys(kafka.requests[1] ?? [])).toEqual(['b', 'c']);
    kafka.answer();
    await Promise.all(later);
    expect(kafka.maxInFlight).toBe(1);
    expect(queue.pending).toBe(0);
  });

  it('counts the wait of each acknowledged record from queued to the ack, a retried one with its outage', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka);
    const first = queue.push(record('a'));
    await kafka.requested(1);
    kafka.answer();
    await first;
    expect(queue.waits.count).toBe(1);
    // b's first request fails after 60 ms, its second is answered at once: b's wait is
    // timed from its push, so it holds the failed try too (a request's own duration would not).
    const second = queue.push(record('b'));
    await kafka.requested(2);
    await new Promise((resolve) => setTimeout(resolve, 60));
    kafka.answer(new Error('broker down'));
    await kafka.requested(3);
    kafka.answer();
    await second;
    expect(queue.waits.count).toBe(2);
    expect(queue.waits.sum).toBeGreaterThanOrEqual(0.06);
    // Counted in the buckets too: one at most 25 ms (a), one past 50 ms (b).
    const { bounds, counts } = queue.waits;
    const upTo = (seconds: number) =>
      bounds.reduce((n, bound, i) => (bound <= seconds ? n + (counts[i] ?? 0) : n), 0);
    expect(upTo(0.025)).toBe(1);
    expect(upTo(0.05)).toBe(1);
    // A record Kafka refuses is not counted: it was never acknowledged.
    const refused = outcome(queue.push(record('c')));
    await kafka.requested(4);
    kafka.answer(new PermanentProduceError('too large'));
    expect(await refused).not.toBe('ok');
    expect(queue.waits.count).toBe(2);
  });

  it('bounds a request by maxBatchRecords', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, { maxBatchRecords: 4 });
    const done = Array.from({ length: 10 }, (_, i) => queue.push(record(`r${i}`)));
    for (let i = 1; i <= 3; i++) {
      await kafka.requested(i);
      kafka.answer();
    }
    await Promise.all(done);
    expect(kafka.requests.map((r) => r.length)).toEqual([4, 4, 2]);
  });

  it('bounds a request by maxBatchBytes, and sends a larger record alone', async () => {
    const kafka = new FakeKafka();
    const size = recordSize(record('a', 100));
    const { queue } = queueOn(kafka, { maxBatchBytes: 2 * size });
    const done = [
      queue.push(record('a', 100)),
      queue.push(record('b', 100)),
      queue.push(record('c', 100)),
      queue.push(record('big', 10 * size)),
      queue.push(record('d', 100)),
    ];
    for (let i = 1; i <= 4; i++) {
      await kafka.requested(i);
      kafka.answer();
    }
    await Promise.all(done);
    expect(kafka.requests.map(keys)).toEqual([['a', 'b'], ['c'], ['big'], ['d']]);
  });

  it('fails a queued record Kafka does not take within sendTimeoutMs; one in flight gets what Kafka answers', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, { sendTimeoutMs: 50 });
    const inFlight = outcome(queue.push(record('a')));
    await kafka.requested(1);
    const started = Date.now();
    const queued = queue.push(record('b'));
    await expect(queued).rejects.toMatchObject({ code: 'STOMP_ERR_CLUSTER_UNAVAILABLE' });
    await expect(queued).rejects.toThrow(/Kafka did not take the message within 50 ms/);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(queue.pending).toBe(1);
    // Never two requests at once, and the late answer still counts.
    expect(kafka.requests).toHaveLength(1);
    kafka.answer();
    expect(await inFlight).toBe('ok');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(kafka.requests).toHaveLength(1);
    expect(queue.pending).toBe(0);
  });

  it('fails a record whose request fails after its deadline, without trying it again', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, { sendTimeoutMs: 50 });
    const late = outcome(queue.push(record('a')));
    await kafka.requested(1);
    await new Promise((resolve) => setTimeout(resolve, 80));
    kafka.answer(new Error('request timed out'));
    expect(await late).toBe('STOMP_ERR_CLUSTER_UNAVAILABLE');
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(kafka.requests).toHaveLength(1);
  });

  it('refuses an offer at once when maxPendingRecords records wait, but still takes a push', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, { maxPendingRecords: 2 });
    const taken = [queue.offer(record('a')), queue.offer(record('b'))];
    const refused = await outcome(queue.offer(record('c')));
    expect(refused).toBe('STOMP_ERR_CLUSTER_UNAVAILABLE');
    await expect(queue.offer(record('c'))).rejects.toThrow(/2 messages already wait for Kafka/);
    const pushed = queue.push(record('d'));
    await kafka.requested(1);
    kafka.answer();
    await Promise.all([...taken, pushed]);
    expect(kafka.requests.map(keys)).toEqual([['a', 'b', 'd']]);
  });

  it('refuses an offer at once when maxPendingBytes bytes wait, though one record alone always goes', async () => {
    const kafka = new FakeKafka();
    const size = recordSize(record('a', 100));
    const { queue } = queueOn(kafka, { maxPendingBytes: 2 * size });
    const huge = queue.offer(record('huge', 10 * size));
    await kafka.requested(1);
    expect(queue.pendingBytes).toBeGreaterThan(2 * size);
    await expect(queue.offer(record('a', 100))).rejects.toThrow(/bytes already wait for Kafka/);
    kafka.answer();
    await huge;
    const taken = [queue.offer(record('a', 100)), queue.offer(record('b', 100))];
    expect(await outcome(queue.offer(record('c', 100)))).toBe('STOMP_ERR_CLUSTER_UNAVAILABLE');
    await kafka.requested(2);
    kafka.answer();
    await Promise.all(taken);
    expect(queue.pendingBytes).toBe(0);
  });

  it('tries a failed request again with its records first in line, so a short outage only delays them', async () => {
    const kafka = new FakeKafka();
    const { queue, lines, recoveries } = queueOn(kafka);
    const first = ['a', 'b'].map((k) => outcome(queue.push(record(k))));
    await kafka.requested(1);
    const later = outcome(queue.push(record('c')));
    kafka.answer(new Error('broker down'));
    await kafka.requested(2);
    kafka.answer(new Error('broker down'));
    await kafka.requested(3);
    expect(kafka.requests.map(keys)).toEqual([
      ['a', 'b'],
      ['a', 'b', 'c'],
      ['a', 'b', 'c'],
    ]);
    kafka.answer();
    expect(await Promise.all([...first, later])).toEqual(['ok', 'ok', 'ok']);
    expect(kafka.maxInFlight).toBe(1);
    // Logged once while failing, once on recovery.
    expect(lines.filter((l) => l.startsWith('error: produce failed'))).toEqual([
      'error: produce failed (broker down); 3 record(s) wait, retried for up to 5000 ms each',
    ]);
    expect(
      lines.some((l) =>
        /^info: producing again after \d+ ms \(0 records given up meanwhile\)$/.test(l),
      ),
    ).toBe(true);
    expect(recoveries()).toBe(1);
  });

  it('keeps trying a request whose send throws (not connected yet) until the records time out', async () => {
    let connected = false;
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, {
      sendTimeoutMs: 200,
      send: (records) => {
        if (!connected) throw new Error('not connected to Kafka');
        return kafka.send(records);
      },
    });
    const lost = outcome(queue.push(record('a')));
    expect(await lost).toBe('STOMP_ERR_CLUSTER_UNAVAILABLE');
    const waited = outcome(queue.push(record('b')));
    await new Promise((resolve) => setTimeout(resolve, 50));
    connected = true;
    queue.wake();
    await kafka.requested(1);
    kafka.answer();
    expect(await waited).toBe('ok');
    expect(kafka.requests.map(keys)).toEqual([['b']]);
  });

  it('ends the wait before the next try on wake()', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, { retryInitialMs: 60_000 });
    const sent = outcome(queue.push(record('a')));
    await kafka.requested(1);
    kafka.answer(new Error('broker down'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(kafka.requests).toHaveLength(1);
    // Without wake() the next try would come after a second (the longest wait).
    const woken = Date.now();
    queue.wake();
    await kafka.requested(2);
    expect(Date.now() - woken).toBeLessThan(500);
    kafka.answer();
    expect(await sent).toBe('ok');
  });

  it('fails the records of a request Kafka refuses for good at once, and goes on with the next', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, { maxBatchRecords: 1 });
    const refused = queue.push(record('big'));
    const next = outcome(queue.push(record('a')));
    await kafka.requested(1);
    kafka.answer(
      new PermanentProduceError('The request included a message larger than the max message size'),
    );
    await expect(refused).rejects.toMatchObject({ code: 'STOMP_ERR_CLUSTER_UNAVAILABLE' });
    await expect(refused).rejects.toThrow(/larger than the max message size/);
    await kafka.requested(2);
    kafka.answer();
    expect(await next).toBe('ok');
    expect(kafka.requests.map(keys)).toEqual([['big'], ['a']]);
  });

  it('stops by waiting for the request in flight, then fails what is still queued with STOMP_ERR_SHUTDOWN', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, { maxBatchRecords: 1 });
    const inFlight = outcome(queue.push(record('a')));
    await kafka.requested(1);
    const queued = [outcome(queue.push(record('b'))), outcome(queue.push(record('c')))];
    await queue.stop(50);
    expect(await Promise.all(queued)).toEqual(['STOMP_ERR_SHUTDOWN', 'STOMP_ERR_SHUTDOWN']);
    kafka.answer();
    expect(await inFlight).toBe('ok');
  });

  it('stops with what the request in flight and the records behind it were answered', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka);
    const first = outcome(queue.push(record('a')));
    await kafka.requested(1);
    const second = outcome(queue.push(record('b')));
    const stopped = queue.stop(1_000);
    kafka.answer();
    await kafka.requested(2);
    kafka.answer();
    await stopped;
    expect(await Promise.all([first, second])).toEqual(['ok', 'ok']);
  });
});

describe('ProduceQueue with produceIntervalMs', () => {
  /** Long against a timer's lateness on a busy machine; the bounds below are fractions of it. */
  const INTERVAL_MS = 400;

  it('starts a request no sooner than the interval after the one before started', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, { produceIntervalMs: INTERVAL_MS });
    const first = queue.push(record('a'));
    await kafka.requested(1);
    kafka.answer();
    await first;
    // Answered at once, and b is waiting: it still waits for the interval.
    const second = queue.push(record('b'));
    const third = queue.push(record('c'));
    await kafka.requested(2);
    kafka.answer();
    await Promise.all([second, third]);
    expect(kafka.requests.map(keys)).toEqual([['a'], ['b', 'c']]);
    const gap = (kafka.at[1] as number) - (kafka.at[0] as number);
    expect(gap).toBeGreaterThanOrEqual(INTERVAL_MS - 2);
  });

  it('counts the interval from start to start: after an answer slower than it, the next request goes at once', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, { produceIntervalMs: INTERVAL_MS });
    const first = queue.push(record('a'));
    await kafka.requested(1);
    const second = queue.push(record('b'));
    await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS + 50));
    expect(kafka.requests).toHaveLength(1);
    const answered = performance.now();
    kafka.answer();
    await first;
    await kafka.requested(2);
    expect((kafka.at[1] as number) - answered).toBeLessThan(INTERVAL_MS / 2);
    kafka.answer();
    await second;
  });

  it('tries a failed request again after the retry wait, not after the interval', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, {
      produceIntervalMs: MAX_PRODUCE_INTERVAL_MS,
      retryInitialMs: 5,
    });
    const first = outcome(queue.push(record('a')));
    await kafka.requested(1);
    const failed = performance.now();
    kafka.answer(new Error('broker down'));
    await kafka.requested(2);
    expect((kafka.at[1] as number) - failed).toBeLessThan(MAX_PRODUCE_INTERVAL_MS / 2);
    kafka.answer();
    expect(await first).toBe('ok');
  });

  it('sends the first record, and one after a quiet spell, in the next event-loop turn', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, { produceIntervalMs: INTERVAL_MS });
    const pushed = performance.now();
    const first = queue.push(record('a'));
    await kafka.requested(1);
    expect((kafka.at[0] as number) - pushed).toBeLessThan(INTERVAL_MS / 2);
    kafka.answer();
    await first;
    await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS + 50));
    const again = performance.now();
    const later = queue.push(record('b'));
    await kafka.requested(2);
    expect((kafka.at[1] as number) - again).toBeLessThan(INTERVAL_MS / 2);
    kafka.answer();
    await later;
  });

  it('sends a full batch without waiting, also one that fills up during the wait', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, {
      produceIntervalMs: MAX_PRODUCE_INTERVAL_MS,
      maxBatchRecords: 3,
    });
    const first = queue.push(record('a'));
    await kafka.requested(1);
    kafka.answer();
    await first;
    // Two records: not a full batch, so they wait for the interval…
    const waiting = ['b', 'c'].map((k) => queue.push(record(k)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(kafka.requests).toHaveLength(1);
    // …until the third makes one.
    const filled = performance.now();
    const third = queue.push(record('d'));
    await kafka.requested(2);
    expect((kafka.at[1] as number) - filled).toBeLessThan(MAX_PRODUCE_INTERVAL_MS / 2);
    expect(keys(kafka.requests[1] ?? [])).toEqual(['b', 'c', 'd']);
    kafka.answer();
    await Promise.all([...waiting, third]);
    // Four records: a full batch goes at once; a full batch queued behind it while it is out
    // goes as soon as it is answered.
    const more = ['e', 'f', 'g', 'h'].map((k) => queue.push(record(k)));
    await kafka.requested(3);
    more.push(...['i', 'j'].map((k) => queue.push(record(k))));
    kafka.answer();
    await kafka.requested(4);
    expect(kafka.requests.slice(2).map(keys)).toEqual([
      ['e', 'f', 'g'],
      ['h', 'i', 'j'],
    ]);
    kafka.answer();
    await Promise.all(more);
  });

  it('counts a full batch by bytes too', async () => {
    const kafka = new FakeKafka();
    const size = recordSize(record('x', 100));
    const { queue } = queueOn(kafka, {
      produceIntervalMs: MAX_PRODUCE_INTERVAL_MS,
      maxBatchBytes: 2 * size,
    });
    const first = queue.push(record('a', 100));
    await kafka.requested(1);
    kafka.answer();
    await first;
    const waiting = queue.push(record('b', 100));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(kafka.requests).toHaveLength(1);
    const filled = performance.now();
    const second = queue.push(record('c', 100));
    await kafka.requested(2);
    expect((kafka.at[1] as number) - filled).toBeLessThan(MAX_PRODUCE_INTERVAL_MS / 2);
    expect(keys(kafka.requests[1] ?? [])).toEqual(['b', 'c']);
    kafka.answer();
    await Promise.all([waiting, second]);
  });

  it('stops without waiting for the interval: what is queued goes out at once', async () => {
    const kafka = new FakeKafka();
    const { queue } = queueOn(kafka, { produceIntervalMs: MAX_PRODUCE_INTERVAL_MS });
    const first = queue.push(record('a'));
    await kafka.requested(1);
    kafka.answer();
    await first;
    const queued = outcome(queue.push(record('b')));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(kafka.requests).toHaveLength(1);
    const started = performance.now();
    const stopped = queue.stop(5_000);
    await kafka.requested(2);
    kafka.answer();
    await stopped;
    expect(performance.now() - started).toBeLessThan(MAX_PRODUCE_INTERVAL_MS / 2);
    expect(await queued).toBe('ok');
  });
});
