/**
 * The rules of topics and queues (src/broker/router.ts and destinations/),
 * driven in memory: sessions over duplex pairs, app messages through
 * `broker.publish`. The e2e specs keep the same rules honest over sockets.
 */
import { describe, expect, it } from 'vitest';
import type { StompError } from '../../src/errors.js';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import type { StompBroker } from '../../src/stomp-broker.js';
import {
  type MemoryClient,
  memoryClient,
  type PairEnd,
  testBroker,
  waitUntil,
} from '../helpers/duplex-pair.js';

const code = (frame: Frame) => getHeader(frame, 'message');
const bodies = (frames: Frame[]) => frames.map(bodyText);

let receipts = 0;

/** A connected client subscribed (receipt awaited) to `destination` as `id`. */
async function subscriber(
  broker: StompBroker,
  destination: string,
  {
    id = 'sub',
    headers = '',
    client,
  }: { id?: string; headers?: string; client?: MemoryClient } = {},
): Promise<MemoryClient> {
  const c = client ?? memoryClient(broker);
  if (!client) await c.connect();
  const receipt = `s${++receipts}`;
  c.send(`SUBSCRIBE\nid:${id}\ndestination:${destination}\n${headers}receipt:${receipt}\n\n\0`);
  await c.receipt(receipt);
  return c;
}

/** Waits until every frame the broker wrote to `client` before now has arrived. */
async function sync(client: MemoryClient): Promise<void> {
  const receipt = `sync${++receipts}`;
  client.send(`SEND\ndestination:/topic/sync\nreceipt:${receipt}\n\n\0`);
  await client.receipt(receipt);
}

const ack = (frame: Frame | undefined) => getHeader(frame as Frame, 'ack');

describe('topics', () => {
  it('delivers every message to every subscriber, each under its own subscription id', async () => {
    const broker = testBroker();
    const subs = [
      await subscriber(broker, '/topic/news', { id: 'a' }),
      await subscriber(broker, '/topic/news', { id: 'b' }),
      await subscriber(broker, '/topic/news', { id: 'c' }),
    ];
    await broker.publish('/topic/news', 'breaking', {
      'content-type': 'text/plain;charset=utf-8',
      'x-trace': 'abc',
    });
    const got = await Promise.all(subs.map(async (s) => (await s.messages(1))[0] as Frame));
    expect(got.map((m) => getHeader(m, 'subscription'))).toEqual(['a', 'b', 'c']);
    expect(new Set(got.map((m) => getHeader(m, 'message-id'))).size).toBe(1);
    for (const m of got) {
      expect(bodyText(m)).toBe('breaking');
      expect(getHeader(m, 'destination')).toBe('/topic/news');
      expect(getHeader(m, 'message-id')).toMatch(/.+/);
      expect(getHeader(m, 'content-type')).toBe('text/plain;charset=utf-8');
      expect(getHeader(m, 'content-length')).toBe('8');
      expect(getHeader(m, 'x-trace')).toBe('abc');
      expect(getHeader(m, 'x-position')).toMatch(/.+-[0-9]+$/);
      expect(getHeader(m, 'ack')).toBeUndefined();
    }
  });

  it('delivers only to the subscribers of the destination published to', async () => {
    const broker = testBroker();
    const a = await subscriber(broker, '/topic/a');
    const b = await subscriber(broker, '/topic/b');
    await broker.publish('/topic/a', 'for a');
    await broker.publish('/topic/b', 'for b');
    expect(bodies(await a.messages(1))).toEqual(['for a']);
    expect(bodies(await b.messages(1))).toEqual(['for b']);
    await Promise.all([sync(a), sync(b)]);
    expect(a.all('MESSAGE')).toHaveLength(1);
    expect(b.all('MESSAGE')).toHaveLength(1);
  });

  it('delivers a message published while nobody subscribes to nobody who subscribes later', async () => {
    const broker = testBroker();
    await broker.publish('/topic/late', 'gone');
    const client = await subscriber(broker, '/topic/late');
    await broker.publish('/topic/late', 'live');
    expect(bodies(await client.messages(1))).toEqual(['live']);
    await sync(client);
    expect(client.all('MESSAGE')).toHaveLength(1);
  });

  it('stops delivering to a subscription after its UNSUBSCRIBE', async () => {
    const broker = testBroker();
    const client = await subscriber(broker, '/topic/u', { id: 'one' });
    await subscriber(broker, '/topic/u', { id: 'two', client });
    client.send('UNSUBSCRIBE\nid:one\nreceipt:u\n\n\0');
    await client.receipt('u');
    await broker.publish('/topic/u', 'after');
    const [m] = await client.messages(1);
    expect(getHeader(m as Frame, 'subscription')).toBe('two');
    await sync(client);
    expect(client.all('MESSAGE')).toHaveLength(1);
  });

  it('redelivers a NACKed topic message to the same subscription, then dead-letters it', async () => {
    const broker = testBroker({ maxDeliveries: 2 });
    const client = await subscriber(broker, '/queue/DLQ', { id: 'dlq' });
    await subscriber(broker, '/topic/t', { id: 't', headers: 'ack:client-individual\n', client });
    await broker.publish('/topic/t', 'flaky', { 'x-kind': 'flaky' });
    const [first] = await client.messages(1, 't');
    client.send(`NACK\nid:${ack(first)}\n\n\0`);
    const [, again] = await client.messages(2, 't');
    expect(getHeader(again as Frame, 'redelivered')).toBe('true');
    expect(getHeader(again as Frame, 'message-id')).toBe(getHeader(first as Frame, 'message-id'));
    client.send(`NACK\nid:${ack(again)}\n\n\0`);
    const [dead] = await client.messages(1, 'dlq');
    expect(bodyText(dead as Frame)).toBe('flaky');
    expect(getHeader(dead as Frame, 'original-destination')).toBe('/topic/t');
    expect(getHeader(dead as Frame, 'delivery-count')).toBe('2');
    expect(getHeader(dead as Frame, 'x-kind')).toBe('flaky');
  });

  it('disconnects a topic subscriber holding more than maxPendingAcks with STOMP_ERR_SLOW_CONSUMER', async () => {
    const broker = testBroker({ maxPendingAcks: 2 });
    const client = await subscriber(broker, '/topic/p', { headers: 'ack:client\n' });
    for (const body of ['1', '2', '3']) await broker.publish('/topic/p', body);
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_SLOW_CONSUMER');
    expect(bodies(client.all('MESSAGE'))).toEqual(['1', '2']);
  });

  it('disconnects a topic subscriber that does not read with STOMP_ERR_SLOW_CONSUMER, and serves one that reads', async () => {
    const pair = { highWaterMark: 1024 };
    const broker = testBroker({ highWaterMark: 4096, closeTimeoutMs: 10_000 });
    const errors: StompError[] = [];
    broker.on('error', ({ error }) => errors.push(error));
    const reader = memoryClient(broker, pair);
    await reader.connect();
    await subscriber(broker, '/topic/fast', { client: reader });
    const stalled = memoryClient(broker, pair);
    await stalled.connect();
    await subscriber(broker, '/topic/fast', { client: stalled });
    stalled.pauseReading();
    const body = 'x'.repeat(1000);
    for (let i = 0; i < 200 && errors.length === 0; i++) {
      await broker.publish('/topic/fast', body);
      await reader.messages(i + 1);
    }
    expect(errors.map((e) => e.code)).toEqual(['STOMP_ERR_SLOW_CONSUMER']);
    stalled.resumeReading();
    expect(code(await stalled.expectErrorAndClose())).toBe('STOMP_ERR_SLOW_CONSUMER');
    // The reader got every message and goes on.
    await broker.publish('/topic/fast', 'after');
    await reader.waitFor(() => reader.all('MESSAGE').some((m) => bodyText(m) === 'after'));
    expect(reader.all('ERROR')).toHaveLength(0);
  });
});

describe('queues', () => {
  it('gives each message to exactly one consumer, round robin among consumers', async () => {
    const broker = testBroker();
    const a = await subscriber(broker, '/queue/work');
    const b = await subscriber(broker, '/queue/work');
    for (let i = 0; i < 6; i++) await broker.publish('/queue/work', `m${i}`);
    expect(bodies(await a.messages(3))).toEqual(['m0', 'm2', 'm4']);
    expect(bodies(await b.messages(3))).toEqual(['m1', 'm3', 'm5']);
    await Promise.all([sync(a), sync(b)]);
    expect(a.all('MESSAGE')).toHaveLength(3);
    expect(b.all('MESSAGE')).toHaveLength(3);
    expect(broker.queueDepth('/queue/work')).toBe(0);
  });

  it('holds messages while no consumer and hands them out in order on SUBSCRIBE', async () => {
    const broker = testBroker();
    for (let i = 0; i < 5; i++) await broker.publish('/queue/held', `m${i}`);
    expect(broker.queueDepth('/queue/held')).toBe(5);
    const client = memoryClient(broker);
    await client.connect();
    client.send('SUBSCRIBE\nid:1\ndestination:/queue/held\n\n\0');
    const got = await client.messages(5);
    expect(bodies(got)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(got.map((m) => getHeader(m, 'redelivered'))).toEqual(Array(5).fill(undefined));
    expect(broker.queueDepth('/queue/held')).toBe(0);
  });

  it('reports no depth for a queue nobody used', () => {
    const broker = testBroker();
    expect(broker.queueDepth('/queue/never')).toBe(0);
  });

  it('redelivers a NACKed queue message marked redelivered:true with the same message-id', async () => {
    const broker = testBroker();
    const client = await subscriber(broker, '/queue/n', { headers: 'ack:client-individual\n' });
    await broker.publish('/queue/n', 'job');
    const [first] = await client.messages(1);
    expect(getHeader(first as Frame, 'redelivered')).toBeUndefined();
    expect(ack(first)).toMatch(/.+/);
    client.send(`NACK\nid:${ack(first)}\n\n\0`);
    const [, again] = await client.messages(2);
    expect(bodyText(again as Frame)).toBe('job');
    expect(getHeader(again as Frame, 'redelivered')).toBe('true');
    expect(getHeader(again as Frame, 'message-id')).toBe(getHeader(first as Frame, 'message-id'));
    expect(ack(again)).not.toBe(ack(first));
  });

  it('redelivers unacknowledged queue messages after the consumer disconnects', async () => {
    const broker = testBroker();
    const a = await subscriber(broker, '/queue/r', { headers: 'ack:client\n' });
    await broker.publish('/queue/r', 'm1');
    await broker.publish('/queue/r', 'm2');
    await a.messages(2);
    const b = await subscriber(broker, '/queue/r', { headers: 'ack:client\n' });
    a.destroy();
    const got = await b.messages(2);
    expect(bodies(got)).toEqual(['m1', 'm2']);
    expect(got.map((m) => getHeader(m, 'redelivered'))).toEqual(['true', 'true']);
  });

  it('redelivers unacknowledged queue messages when their consumer is closed with an ERROR', async () => {
    const broker = testBroker();
    const a = await subscriber(broker, '/queue/e', { headers: 'ack:client-individual\n' });
    await broker.publish('/queue/e', 'kept');
    await a.messages(1);
    const b = await subscriber(broker, '/queue/e');
    a.send('UNSUBSCRIBE\nid:nope\n\n\0');
    expect(code(await a.expectErrorAndClose())).toBe('STOMP_ERR_UNKNOWN_SUBSCRIPTION');
    const [m] = await b.messages(1);
    expect(bodyText(m as Frame)).toBe('kept');
    expect(getHeader(m as Frame, 'redelivered')).toBe('true');
  });

  it('puts unacknowledged messages back, in order, on UNSUBSCRIBE', async () => {
    const broker = testBroker();
    const client = await subscriber(broker, '/queue/back', { id: 'one', headers: 'ack:client\n' });
    for (const body of ['a', 'b', 'c']) await broker.publish('/queue/back', body);
    await client.messages(3, 'one');
    client.send('UNSUBSCRIBE\nid:one\nreceipt:u\n\n\0');
    await client.receipt('u');
    expect(broker.queueDepth('/queue/back')).toBe(3);
    await subscriber(broker, '/queue/back', { id: 'two', client });
    const got = await client.messages(3, 'two');
    expect(bodies(got)).toEqual(['a', 'b', 'c']);
    expect(got.map((m) => getHeader(m, 'redelivered'))).toEqual(['true', 'true', 'true']);
  });

  it('dead-letters to /queue/DLQ after maxDeliveries, with original-destination and delivery-count', async () => {
    const broker = testBroker({ maxDeliveries: 2 });
    const client = await subscriber(broker, '/queue/DLQ', { id: 'dlq' });
    await subscriber(broker, '/queue/poison', {
      id: 'p',
      headers: 'ack:client-individual\n',
      client,
    });
    await broker.publish('/queue/poison', 'bad', { 'x-kind': 'poison' });
    for (let n = 1; n <= 2; n++) {
      const got = await client.messages(n, 'p');
      client.send(`NACK\nid:${ack(got[n - 1])}\n\n\0`);
    }
    const [dead] = await client.messages(1, 'dlq');
    expect(bodyText(dead as Frame)).toBe('bad');
    expect(getHeader(dead as Frame, 'destination')).toBe('/queue/DLQ');
    expect(getHeader(dead as Frame, 'original-destination')).toBe('/queue/poison');
    expect(getHeader(dead as Frame, 'delivery-count')).toBe('2');
    expect(getHeader(dead as Frame, 'x-kind')).toBe('poison');
    await sync(client);
    expect(client.all('MESSAGE').filter((m) => getHeader(m, 'subscription') === 'p')).toHaveLength(
      2,
    );
    expect(broker.queueDepth('/queue/poison')).toBe(0);
  });

  it('dead-letters a message whose last allowed delivery ended with its consumer', async () => {
    const broker = testBroker({ maxDeliveries: 1 });
    const a = await subscriber(broker, '/queue/once', { headers: 'ack:client\n' });
    await broker.publish('/queue/once', 'one shot');
    await a.messages(1);
    a.destroy();
    await waitUntil(() => broker.queueDepth('/queue/DLQ') === 1, 5000, 'the dead letter');
    expect(broker.queueDepth('/queue/once')).toBe(0);
    const dlq = await subscriber(broker, '/queue/DLQ');
    const [dead] = await dlq.messages(1);
    expect(bodyText(dead as Frame)).toBe('one shot');
    expect(getHeader(dead as Frame, 'delivery-count')).toBe('1');
  });

  it('dead-letters to the configured deadLetterQueue', async () => {
    const broker = testBroker({ maxDeliveries: 1, deadLetterQueue: '/queue/failed' });
    const client = await subscriber(broker, '/queue/j', { headers: 'ack:client-individual\n' });
    await broker.publish('/queue/j', 'x');
    const [m] = await client.messages(1);
    client.send(`NACK\nid:${ack(m)}\nreceipt:n\n\n\0`);
    await client.receipt('n');
    expect(broker.queueDepth('/queue/failed')).toBe(1);
    expect(broker.queueDepth('/queue/DLQ')).toBe(0);
  });

  it('drops dead letters when deadLetterQueue is empty', async () => {
    const broker = testBroker({ maxDeliveries: 1, deadLetterQueue: '' });
    const client = await subscriber(broker, '/queue/j', { headers: 'ack:client-individual\n' });
    await broker.publish('/queue/j', 'x');
    const [m] = await client.messages(1);
    client.send(`NACK\nid:${ack(m)}\nreceipt:n\n\n\0`);
    await client.receipt('n');
    await sync(client);
    expect(client.all('MESSAGE')).toHaveLength(1);
    expect(broker.queueDepth('/queue/j')).toBe(0);
    expect(broker.queueDepth('/queue/DLQ')).toBe(0);
  });

  it('keeps the newest dead letters when the dead-letter queue is full', async () => {
    const broker = testBroker({ maxDeliveries: 1, maxQueueMessages: 1 });
    const a = await subscriber(broker, '/queue/d', { headers: 'ack:client-individual\n' });
    await broker.publish('/queue/d', 'older');
    await broker.publish('/queue/d', 'newer');
    await a.messages(2);
    a.destroy();
    await waitUntil(() => broker.queueDepth('/queue/DLQ') === 1, 5000, 'a dead letter');
    const dlq = await subscriber(broker, '/queue/DLQ');
    expect(bodies(await dlq.messages(1))).toEqual(['newer']);
  });

  it('gives a consumer at most prefetch-count unacknowledged messages, the next one on ACK', async () => {
    const broker = testBroker();
    const client = await subscriber(broker, '/queue/p', {
      headers: 'ack:client-individual\nprefetch-count:2\n',
    });
    for (let i = 0; i < 5; i++) await broker.publish('/queue/p', `m${i}`);
    expect(broker.queueDepth('/queue/p')).toBe(3);
    const firstTwo = await client.messages(2);
    await sync(client);
    expect(client.all('MESSAGE')).toHaveLength(2);
    client.send(`ACK\nid:${ack(firstTwo[0])}\n\n\0`);
    expect(bodies(await client.messages(3))).toEqual(['m0', 'm1', 'm2']);
    expect(broker.queueDepth('/queue/p')).toBe(2);
  });

  it('passes messages a consumer has no room for (prefetch-count) to the others', async () => {
    const broker = testBroker();
    const slow = await subscriber(broker, '/queue/share', {
      headers: 'ack:client-individual\nprefetch-count:1\n',
    });
    const fast = await subscriber(broker, '/queue/share');
    for (let i = 0; i < 4; i++) await broker.publish('/queue/share', `m${i}`);
    expect(bodies(await slow.messages(1))).toEqual(['m0']);
    expect(bodies(await fast.messages(3))).toEqual(['m1', 'm2', 'm3']);
    expect(broker.queueDepth('/queue/share')).toBe(0);
  });

  it('refuses a prefetch-count that is not a number with STOMP_ERR_INVALID_HEADER', async () => {
    const broker = testBroker();
    const client = memoryClient(broker);
    await client.connect();
    client.send('SUBSCRIBE\nid:1\ndestination:/queue/p\nprefetch-count:lots\n\n\0');
    expect(code(await client.expectErrorAndClose())).toBe('STOMP_ERR_INVALID_HEADER');
  });

  it('stops handing queue messages to a consumer that does not read, until it drains', async () => {
    const broker = testBroker({ highWaterMark: 4096 });
    const client = memoryClient(broker, { highWaterMark: 1024 });
    await client.connect();
    await subscriber(broker, '/queue/slow', { client });
    client.pauseReading();
    const body = 'q'.repeat(1000);
    for (let i = 0; i < 40; i++) await broker.publish('/queue/slow', `${i} ${body}`);
    const waiting = broker.queueDepth('/queue/slow');
    expect(waiting).toBeGreaterThan(0);
    expect(waiting).toBeLessThan(40);
    // The output backs up in the server's end of the connection...
    const serverEnd = (client.stream as PairEnd).peer;
    await waitUntil(() => serverEnd.writableLength > 0, 5000, 'output to back up');
    await broker.publish('/queue/slow', `40 ${body}`);
    // ...and the queue keeps the rest instead of disconnecting the consumer.
    expect(broker.queueDepth('/queue/slow')).toBe(waiting + 1);
    expect(broker.sessions.size).toBe(1);
    client.resumeReading();
    const got = await client.messages(41);
    expect(got.map((m) => bodyText(m).split(' ')[0])).toEqual(
      Array.from({ length: 41 }, (_, i) => String(i)),
    );
    expect(broker.queueDepth('/queue/slow')).toBe(0);
    expect(client.all('ERROR')).toHaveLength(0);
  });
});

describe('acknowledgement modes (STOMP 1.2 "SUBSCRIBE ack Header")', () => {
  it('acknowledges cumulatively in client mode', async () => {
    const broker = testBroker();
    const a = await subscriber(broker, '/queue/c', { headers: 'ack:client\n' });
    for (const body of ['a', 'b', 'c']) await broker.publish('/queue/c', body);
    const got = await a.messages(3);
    a.send(`ACK\nid:${ack(got[1])}\nreceipt:ack\n\n\0`);
    await a.receipt('ack');
    const b = await subscriber(broker, '/queue/c');
    a.destroy();
    expect(bodies(await b.messages(1))).toEqual(['c']);
    await sync(b);
    expect(b.all('MESSAGE')).toHaveLength(1);
  });

  it('refuses an ACK of a message a cumulative ACK already settled with STOMP_ERR_UNKNOWN_ACK', async () => {
    const broker = testBroker();
    const client = await subscriber(broker, '/queue/c', { headers: 'ack:client\n' });
    for (const body of ['a', 'b']) await broker.publish('/queue/c', body);
    const got = await client.messages(2);
    client.send(`ACK\nid:${ack(got[1])}\n\n\0ACK\nid:${ack(got[0])}\nreceipt:again\n\n\0`);
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_UNKNOWN_ACK');
    expect(getHeader(error, 'receipt-id')).toBe('again');
  });

  it('rejects cumulatively in client mode: a NACK puts back that message and every earlier one', async () => {
    const broker = testBroker();
    const client = await subscriber(broker, '/queue/cn', { headers: 'ack:client\n' });
    for (const body of ['a', 'b', 'c']) await broker.publish('/queue/cn', body);
    const got = await client.messages(3);
    client.send(`NACK\nid:${ack(got[1])}\n\n\0`);
    const again = (await client.messages(5)).slice(3);
    expect(bodies(again)).toEqual(['a', 'b']);
    expect(again.map((m) => getHeader(m, 'redelivered'))).toEqual(['true', 'true']);
  });

  it('acknowledges one message at a time in client-individual mode', async () => {
    const broker = testBroker();
    const a = await subscriber(broker, '/queue/ci', { headers: 'ack:client-individual\n' });
    for (const body of ['a', 'b', 'c']) await broker.publish('/queue/ci', body);
    const got = await a.messages(3);
    a.send(`ACK\nid:${ack(got[1])}\nreceipt:r\n\n\0`);
    await a.receipt('r');
    const b = await subscriber(broker, '/queue/ci');
    a.destroy();
    expect(bodies(await b.messages(2))).toEqual(['a', 'c']);
  });

  it('consumes a queue message once written out in auto mode', async () => {
    const broker = testBroker();
    const a = await subscriber(broker, '/queue/auto');
    await broker.publish('/queue/auto', 'once');
    const [m] = await a.messages(1);
    expect(ack(m)).toBeUndefined();
    const b = await subscriber(broker, '/queue/auto');
    a.destroy();
    await waitUntil(() => broker.sessions.size === 1, 5000, 'the consumer to be gone');
    await broker.publish('/queue/auto', 'second');
    expect(bodies(await b.messages(1))).toEqual(['second']);
  });

  it("refuses an ACK of another connection's message with STOMP_ERR_UNKNOWN_ACK", async () => {
    const broker = testBroker();
    const owner = await subscriber(broker, '/queue/mine', { headers: 'ack:client-individual\n' });
    const other = await subscriber(broker, '/queue/other', { headers: 'ack:client-individual\n' });
    await broker.publish('/queue/mine', 'x');
    const [m] = await owner.messages(1);
    other.send(`ACK\nid:${ack(m)}\n\n\0`);
    expect(code(await other.expectErrorAndClose())).toBe('STOMP_ERR_UNKNOWN_ACK');
    owner.send(`ACK\nid:${ack(m)}\nreceipt:ok\n\n\0`);
    await owner.receipt('ok');
    expect(owner.all('ERROR')).toHaveLength(0);
  });

  it('accepts the STOMP 1.1 form of ACK: message-id and subscription, no ack header on MESSAGE', async () => {
    const broker = testBroker();
    const client = memoryClient(broker);
    await client.connect({ 'accept-version': '1.1' });
    await subscriber(broker, '/queue/v11', {
      id: 's11',
      headers: 'ack:client-individual\n',
      client,
    });
    await broker.publish('/queue/v11', 'old');
    const [m] = await client.messages(1);
    expect(ack(m)).toBeUndefined();
    const messageId = getHeader(m as Frame, 'message-id');
    client.send(`ACK\nmessage-id:${messageId}\nsubscription:s11\nreceipt:r\n\n\0`);
    await client.receipt('r');
    client.send(`ACK\nmessage-id:${messageId}\nsubscription:s11\nreceipt:again\n\n\0`);
    expect(code(await client.expectErrorAndClose())).toBe('STOMP_ERR_UNKNOWN_ACK');
  });
});

describe('queue limits', () => {
  it('refuses a SEND to a full queue with STOMP_ERR_QUEUE_FULL, answering its receipt', async () => {
    const broker = testBroker({ maxQueueMessages: 2 });
    const client = memoryClient(broker);
    await client.connect();
    for (let i = 1; i <= 3; i++)
      client.send(`SEND\ndestination:/queue/full\nreceipt:${i}\n\nm${i}\0`);
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_QUEUE_FULL');
    expect(getHeader(error, 'receipt-id')).toBe('3');
    expect(client.all('RECEIPT').map((r) => getHeader(r, 'receipt-id'))).toEqual(['1', '2']);
    expect(broker.queueDepth('/queue/full')).toBe(2);
  });

  it('rejects broker.publish to a full queue with STOMP_ERR_QUEUE_FULL', async () => {
    const broker = testBroker({ maxQueueMessages: 2 });
    await broker.publish('/queue/full', 'a');
    await broker.publish('/queue/full', 'b');
    await expect(broker.publish('/queue/full', 'c')).rejects.toMatchObject({
      code: 'STOMP_ERR_QUEUE_FULL',
    });
    expect(broker.queueDepth('/queue/full')).toBe(2);
  });

  it('counts only waiting messages against maxQueueMessages', async () => {
    const broker = testBroker({ maxQueueMessages: 1 });
    const client = await subscriber(broker, '/queue/flow');
    for (let i = 0; i < 5; i++) await broker.publish('/queue/flow', `m${i}`);
    expect(bodies(await client.messages(5))).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
  });
});

describe('broker.publish', () => {
  it.each([
    '/exchange/x',
    '/queue/',
    '/topic/',
    'queue/x',
    '/user/queue/inbox',
    '/user/bob',
    '/user//queue/x',
    '',
  ])('rejects the destination %j with STOMP_ERR_INVALID_DESTINATION', async (destination) => {
    const broker = testBroker();
    await expect(broker.publish(destination, 'x')).rejects.toMatchObject({
      code: 'STOMP_ERR_INVALID_DESTINATION',
    });
  });

  it('passes on app headers, never the transport headers of a SEND', async () => {
    const broker = testBroker();
    const client = await subscriber(broker, '/topic/h');
    await broker.publish('/topic/h', 'b', {
      'content-type': 'application/json',
      'x-app': '1',
      receipt: 'r',
      transaction: 't',
      'message-id': 'forged',
      destination: '/topic/elsewhere',
      'content-length': '99',
      subscription: 'forged',
      ack: 'forged',
    });
    const [m] = await client.messages(1);
    const names = (m as Frame).headers.map(([name]) => name);
    expect(getHeader(m as Frame, 'content-type')).toBe('application/json');
    expect(getHeader(m as Frame, 'x-app')).toBe('1');
    expect(getHeader(m as Frame, 'message-id')).not.toBe('forged');
    expect(getHeader(m as Frame, 'subscription')).toBe('sub');
    expect(getHeader(m as Frame, 'content-length')).toBe('1');
    expect(names).not.toContain('receipt');
    expect(names).not.toContain('transaction');
    expect(names).not.toContain('ack');
    expect(names.filter((n) => n === 'destination')).toHaveLength(1);
    expect(names.filter((n) => n === 'subscription')).toHaveLength(1);
  });

  it('keeps a binary body byte for byte', async () => {
    const broker = testBroker();
    const client = await subscriber(broker, '/queue/bin');
    const bytes = new Uint8Array([0, 1, 0, 255, 10, 0]);
    await broker.publish('/queue/bin', bytes);
    const [m] = await client.messages(1);
    expect(Array.from((m as Frame).body)).toEqual(Array.from(bytes));
    expect(getHeader(m as Frame, 'content-length')).toBe('6');
  });
});
