import { describe, expect, it } from 'vitest';
import { bodyText, getHeader } from '../../src/frame/index.js';
import { skipKafka, startCluster } from '../helpers/cluster.js';
import { RawClient } from '../helpers/raw-client.js';

if (skipKafka) {
  console.warn(
    '!!! cluster-batching.spec.ts SKIPPED: no Kafka broker (see spec/kafka-global-setup.ts)',
  );
}

/** Well past Kafka's default `message.max.bytes` (1 MiB) when they go in one produce request. */
const SENDS = 600;
const BODY = 'b'.repeat(4096);
/** Generous for CI: a few MB through Kafka take well under a second. */
const TIMEOUT_MS = 20_000;

/**
 * Two instances, a subscriber to `destination` on the second; `count` SENDs to it, the last
 * with a receipt, in one WebSocket message to the first (the broker parses them all in one
 * event-loop turn). Resolves once every MESSAGE arrived, with no ERROR to the publisher.
 */
async function burst(destination: string, count: number, body: (i: number) => string) {
  const { instances } = await startCluster(2);
  const [one, two] = instances as [(typeof instances)[0], (typeof instances)[0]];
  const subscriber = await RawClient.ws(two.url);
  await subscriber.connect();
  subscriber.send(`SUBSCRIBE\nid:0\ndestination:${destination}\nreceipt:sub\n\n\0`);
  await subscriber.receipt('sub');

  const publisher = await RawClient.ws(one.url);
  await publisher.connect();
  let frames = '';
  for (let i = 0; i < count; i++) {
    const receipt = i === count - 1 ? 'receipt:last\n' : '';
    const text = body(i);
    frames += `SEND\ndestination:${destination}\n${receipt}content-length:${Buffer.byteLength(text)}\n\n${text}\0`;
  }
  publisher.send(frames);
  await publisher.receipt('last', TIMEOUT_MS);
  expect(publisher.all('ERROR')).toEqual([]);
  await subscriber.waitFor(
    () => subscriber.all('MESSAGE').length >= count || undefined,
    TIMEOUT_MS,
    `${count} MESSAGE frames`,
  );
  const messages = subscriber.all('MESSAGE');
  publisher.destroy();
  subscriber.destroy();
  return messages;
}

describe.skipIf(skipKafka)('cluster mode: produce batches', () => {
  it('splits a burst of SENDs larger than one Kafka record batch may be, so none of them fails', async () => {
    const messages = await burst('/topic/burst', SENDS, () => BODY);
    expect(messages).toHaveLength(SENDS);
  });

  it('slows a publisher far ahead of Kafka down (backpressure), never refuses it: 12,000 SENDs in one WebSocket message, past the instance-wide 10,000 waiting for Kafka', async () => {
    // Read in one go: at most --max-pending-sends (512) of them wait for Kafka at a time.
    const count = 12_000;
    const messages = await burst('/topic/far-ahead', count, (i) => `${i}`);
    expect(messages.map((m) => bodyText(m))).toEqual(
      Array.from({ length: count }, (_, i) => `${i}`),
    );
  });

  it('answers a SEND Kafka refuses for good (larger than its message.max.bytes) with ERROR at once, not after the send timeout, and holds nothing up', async () => {
    const { instances } = await startCluster(1);
    const server = instances[0] as (typeof instances)[0];
    const subscriber = await RawClient.ws(server.url);
    await subscriber.connect();
    subscriber.send('SUBSCRIBE\nid:0\ndestination:/topic/big\nreceipt:sub\n\n\0');
    await subscriber.receipt('sub');

    // 1.5 MiB: within stompbus's body limit (4 MiB), past Kafka's default message.max.bytes (1 MiB).
    const big = 'x'.repeat(1.5 * 1024 * 1024);
    const publisher = await RawClient.ws(server.url);
    await publisher.connect();
    const sentAt = Date.now();
    publisher.send(
      `SEND\ndestination:/topic/big\nreceipt:big\ncontent-length:${big.length}\n\n${big}\0`,
    );
    const other = await RawClient.ws(server.url);
    await other.connect();
    other.send('SEND\ndestination:/topic/big\nreceipt:small\n\nsmall\0');
    const error = await publisher.expectErrorAndClose(TIMEOUT_MS);
    // The default --kafka-send-timeout is 30 s: a refusal is not waited out.
    expect(Date.now() - sentAt).toBeLessThan(15_000);
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_CLUSTER_UNAVAILABLE');
    expect(getHeader(error, 'receipt-id')).toBe('big');
    await other.receipt('small', TIMEOUT_MS);
    const message = await subscriber.next('MESSAGE', TIMEOUT_MS);
    expect(bodyText(message)).toBe('small');
    expect(subscriber.all('MESSAGE')).toHaveLength(1);
    for (const c of [other, subscriber]) c.destroy();
  });
});
