/**
 * Issue 14 on the Kafka fan-out (in memory; the real Kafka runs
 * spec/e2e/cluster-acks.spec.ts): a consumption is acknowledged only once
 * Kafka has its record, and a user-queue SUBSCRIBE waits until its instance
 * has read the users topic up to where it ended at the SUBSCRIBE.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMessage } from '../../src/broker/message.js';
import { Harness, outcome, outgoing, sleep, until } from './harness.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  vi.restoreAllMocks();
  await h.stopAll();
});

const INBOX = '/user/bob/queue/inbox';

/** A user-queue message as a mailbox keeps it. */
const kept = (destination = INBOX) =>
  createMessage(outgoing(destination), { epoch: 'p0', n: 0 }, 0);

/** Whether a promise has settled, after the turns already due. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await sleep(20);
  return done;
}

describe('KafkaFanout: consumption acknowledged by Kafka', () => {
  it('resolves a consumption only once Kafka has acknowledged its record', async () => {
    const a = await h.start();
    const release = h.kafka.holdProduce();
    const recorded = a.fanout.log.consumed(kept()) as Promise<void>;
    expect(recorded).toBeInstanceOf(Promise);
    await until(() => h.requestsTo(`${h.topic}.users`).length === 1);
    expect(await settled(recorded)).toBe(false);
    release();
    expect(await outcome(recorded)).toBe('ok');
    expect(h.kafka.records(`${h.topic}.users`)).toHaveLength(1);
  });

  it('rejects a consumption Kafka did not take within sendTimeoutMs with STOMP_ERR_CLUSTER_UNAVAILABLE, warning once', async () => {
    const a = await h.start({ sendTimeoutMs: 200 });
    h.kafka.fail();
    const first = outcome(a.fanout.log.consumed(kept()));
    const second = outcome(a.fanout.log.consumed(kept()));
    expect(await first).toBe('STOMP_ERR_CLUSTER_UNAVAILABLE');
    expect(await second).toBe('STOMP_ERR_CLUSTER_UNAVAILABLE');
    expect(h.lines.filter((l) => l.includes('could not record consumption'))).toHaveLength(1);
  });

  it('rejects a consumption after stop with STOMP_ERR_SHUTDOWN', async () => {
    const a = await h.start();
    await a.fanout.stop();
    expect(await outcome(a.fanout.log.consumed(kept()))).toBe('STOMP_ERR_SHUTDOWN');
  });
});

describe('KafkaFanout: read-your-writes for user queues', () => {
  it('holds a user-queue SUBSCRIBE until the consumption recorded before it has been read here', async () => {
    const a = await h.start();
    const b = await h.start();
    const message = kept();
    h.kafka.pauseDelivery();
    // The ACK's RECEIPT on a: Kafka has the record, b has not read it.
    await a.fanout.log.consumed(message);
    const reached = b.fanout.bus.reach?.(INBOX);
    expect(reached).toBeInstanceOf(Promise);
    const consumedWhenReached = (reached as Promise<void>).then(() => [...b.sink.consumedIds]);
    expect(await settled(reached as Promise<void>)).toBe(false);
    h.kafka.pauseDelivery(false);
    expect(await consumedWhenReached).toEqual([[INBOX, message.id]]);
  });

  it('lets a user-queue SUBSCRIBE go at once (one offsets request) when nothing is left to read', async () => {
    const a = await h.start();
    await a.fanout.bus.publish(outgoing(INBOX));
    await until(() => a.sink.delivered.length === 1);
    const started = Date.now();
    await a.fanout.bus.reach?.(INBOX);
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('asks Kafka the end once for the SUBSCRIBEs that came while a request was in flight', async () => {
    const a = await h.start();
    const asked = vi.spyOn(h.kafka, 'latestOffsets');
    const all = Array.from({ length: 20 }, (_, i) => a.fanout.bus.reach?.(`/user/u${i}/queue/q`));
    await Promise.all(all);
    // The first one now, every other one in the request after it.
    expect(asked.mock.calls.length).toBe(2);
  });

  it('serves a SUBSCRIBE after the start timeout when the records are not read by then, and says so', async () => {
    const a = await h.start({ startTimeoutMs: 300 });
    const b = await h.start({ startTimeoutMs: 300 });
    h.kafka.pauseDelivery();
    await a.fanout.log.consumed(kept());
    const started = Date.now();
    await b.fanout.bus.reach?.(INBOX);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(b.sink.consumedIds).toEqual([]);
    expect(
      h.lines.some((l) => /warn: SUBSCRIBE to \/user\/bob\/queue\/inbox served after/.test(l)),
    ).toBe(true);
    h.kafka.pauseDelivery(false);
  });

  it('does not hold a SUBSCRIBE to a topic (without interest), nor one while Kafka is unreachable', async () => {
    const a = await h.start({ interest: 'all' });
    expect(a.fanout.bus.reach?.('/topic/x')).toBeUndefined();
    expect(a.fanout.bus.reach?.('/user/bob/topic/x')).toBeUndefined();
    const b = h.create();
    expect(b.fanout.bus.reach?.(INBOX)).toBeUndefined();
  });

  it('lets waiting SUBSCRIBEs go when the instance stops', async () => {
    const a = await h.start();
    const b = await h.start();
    h.kafka.pauseDelivery();
    await a.fanout.log.consumed(kept());
    const reached = b.fanout.bus.reach?.(INBOX) as Promise<void>;
    await sleep(20);
    await b.fanout.stop();
    expect(await settled(reached)).toBe(true);
    h.kafka.pauseDelivery(false);
  });
});
