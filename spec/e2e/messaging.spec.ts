import { describe, expect, it } from 'vitest';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer } from '../helpers/server.js';

const bodies = (frames: Frame[]) => frames.map(bodyText);

async function connected(url: string, headers: Record<string, string> = {}) {
  const client = await RawClient.ws(url);
  await client.connect(headers);
  return client;
}

/** Waits until `client` holds `n` MESSAGE frames and returns them. */

describe('topics fan out (STOMP 1.2 "SEND", "MESSAGE")', () => {
  it('delivers every message to every subscriber with the MESSAGE headers of the spec', async () => {
    const server = await startServer();
    const subs = await Promise.all([1, 2, 3].map(() => connected(server.url)));
    for (const s of subs) {
      s.send('SUBSCRIBE\nid:sub-0\ndestination:/topic/news\nreceipt:s\n\n\0');
      await s.receipt('s');
    }
    const pub = await connected(server.url);
    pub.send(
      'SEND\ndestination:/topic/news\ncontent-type:text/plain;charset=utf-8\nx-trace:abc\nreceipt:p\n\nbreaking\0',
    );
    await pub.receipt('p');
    for (const s of subs) {
      const [m] = await s.messages(1);
      expect(getHeader(m!, 'subscription')).toBe('sub-0');
      expect(getHeader(m!, 'destination')).toBe('/topic/news');
      expect(getHeader(m!, 'message-id')).toMatch(/.+/);
      expect(getHeader(m!, 'content-type')).toBe('text/plain;charset=utf-8');
      expect(getHeader(m!, 'content-length')).toBe('8');
      expect(getHeader(m!, 'x-trace')).toBe('abc');
      expect(getHeader(m!, 'ack')).toBeUndefined();
      expect(getHeader(m!, 'receipt')).toBeUndefined();
      expect(bodyText(m!)).toBe('breaking');
    }
  });

  it('handles the frames of one packet in order: SUBSCRIBE then SEND sees its own message', async () => {
    const server = await startServer();
    const client = await connected(server.url);
    client.send(
      'SUBSCRIBE\nid:1\ndestination:/topic/self\n\n\0SEND\ndestination:/topic/self\n\none\0SEND\ndestination:/topic/self\n\ntwo\0',
    );
    expect(bodies(await client.messages(2))).toEqual(['one', 'two']);
  });

  it('keeps a NUL inside a counted body and the sender content-length', async () => {
    const server = await startServer();
    const client = await RawClient.tcp(server.tcpPort as number);
    await client.connect();
    client.send('SUBSCRIBE\nid:1\ndestination:/topic/bin\n\n\0');
    client.send(Buffer.from('SEND\ndestination:/topic/bin\ncontent-length:3\n\na\0b\0'));
    const [m] = await client.messages(1);
    expect(Array.from(m!.body)).toEqual([97, 0, 98]);
    expect(getHeader(m!, 'content-length')).toBe('3');
  });

  it('stops delivering after UNSUBSCRIBE', async () => {
    const server = await startServer();
    const client = await connected(server.url);
    client.send('SUBSCRIBE\nid:1\ndestination:/topic/u\n\n\0SEND\ndestination:/topic/u\n\na\0');
    await client.messages(1);
    client.send('UNSUBSCRIBE\nid:1\nreceipt:u\n\n\0SEND\ndestination:/topic/u\nreceipt:s\n\nb\0');
    await client.receipt('s');
    expect(client.all('MESSAGE')).toHaveLength(1);
  });
});

describe('queues give each message to one consumer', () => {
  it('round-robins among consumers and holds messages while nobody consumes', async () => {
    const server = await startServer();
    const pub = await connected(server.url);
    for (let i = 0; i < 4; i++) pub.send(`SEND\ndestination:/queue/work\n\nearly-${i}\0`);
    pub.send('SEND\ndestination:/queue/work\nreceipt:held\n\nlast-early\0');
    await pub.receipt('held');
    expect(server.broker.queueDepth('/queue/work')).toBe(5);

    const a = await connected(server.url);
    a.send('SUBSCRIBE\nid:a\ndestination:/queue/work\n\n\0');
    expect(bodies(await a.messages(5))).toEqual([
      'early-0',
      'early-1',
      'early-2',
      'early-3',
      'last-early',
    ]);
    const b = await connected(server.url);
    b.send('SUBSCRIBE\nid:b\ndestination:/queue/work\nreceipt:b\n\n\0');
    await b.receipt('b');
    for (let i = 0; i < 6; i++) pub.send(`SEND\ndestination:/queue/work\n\nlive-${i}\0`);
    await a.messages(8);
    await b.messages(3);
    const live = [...a.all('MESSAGE').slice(5), ...b.all('MESSAGE')].map(bodyText).sort();
    expect(live).toEqual(['live-0', 'live-1', 'live-2', 'live-3', 'live-4', 'live-5']);
  });

  it('redelivers a NACKed message, marked redelivered', async () => {
    const server = await startServer();
    const c = await connected(server.url);
    c.send('SUBSCRIBE\nid:1\ndestination:/queue/n\nack:client-individual\n\n\0');
    c.send('SEND\ndestination:/queue/n\n\njob\0');
    const [first] = await c.messages(1);
    expect(getHeader(first!, 'redelivered')).toBeUndefined();
    c.send(`NACK\nid:${getHeader(first!, 'ack')}\nreceipt:n\n\n\0`);
    await c.receipt('n');
    const [, again] = await c.messages(2);
    expect(bodyText(again!)).toBe('job');
    expect(getHeader(again!, 'redelivered')).toBe('true');
    expect(getHeader(again!, 'message-id')).toBe(getHeader(first!, 'message-id'));
  });

  it('gives unacknowledged messages to another consumer when their consumer leaves', async () => {
    const server = await startServer();
    const a = await connected(server.url);
    a.send('SUBSCRIBE\nid:1\ndestination:/queue/r\nack:client\n\n\0');
    a.send('SEND\ndestination:/queue/r\n\nm1\0SEND\ndestination:/queue/r\n\nm2\0');
    await a.messages(2);
    const b = await connected(server.url);
    b.send('SUBSCRIBE\nid:1\ndestination:/queue/r\nack:client\nreceipt:b\n\n\0');
    await b.receipt('b');
    a.destroy();
    const got = await b.messages(2);
    expect(bodies(got)).toEqual(['m1', 'm2']);
    expect(got.map((m) => getHeader(m, 'redelivered'))).toEqual(['true', 'true']);
  });

  it('dead-letters a message after the configured number of deliveries', async () => {
    const server = await startServer({ maxDeliveries: 2 });
    const c = await connected(server.url);
    c.send('SUBSCRIBE\nid:dlq\ndestination:/queue/DLQ\n\n\0');
    c.send('SUBSCRIBE\nid:1\ndestination:/queue/poison\nack:client-individual\n\n\0');
    c.send('SEND\ndestination:/queue/poison\nx-kind:poison\n\nbad\0');
    for (let n = 1; n <= 2; n++) {
      const m = await c.waitFor(() =>
        c
          .all('MESSAGE')
          .filter((f) => getHeader(f, 'subscription') === '1')
          .at(n - 1),
      );
      c.send(`NACK\nid:${getHeader(m, 'ack')}\n\n\0`);
    }
    const dead = await c.waitFor(() =>
      c.all('MESSAGE').find((f) => getHeader(f, 'subscription') === 'dlq'),
    );
    expect(bodyText(dead)).toBe('bad');
    expect(getHeader(dead, 'original-destination')).toBe('/queue/poison');
    expect(getHeader(dead, 'delivery-count')).toBe('2');
    expect(getHeader(dead, 'x-kind')).toBe('poison');
  });

  it('bounds unacknowledged messages per subscription with prefetch-count', async () => {
    const server = await startServer();
    const c = await connected(server.url);
    c.send('SUBSCRIBE\nid:1\ndestination:/queue/p\nack:client-individual\nprefetch-count:2\n\n\0');
    for (let i = 0; i < 5; i++) c.send(`SEND\ndestination:/queue/p\n\n${i}\0`);
    c.send('SEND\ndestination:/topic/sync\nreceipt:sent\n\nx\0');
    await c.receipt('sent');
    const firstTwo = await c.messages(2);
    expect(c.all('MESSAGE')).toHaveLength(2);
    c.send(`ACK\nid:${getHeader(firstTwo[0]!, 'ack')}\n\n\0`);
    await c.messages(3);
    expect(bodies(c.all('MESSAGE'))).toEqual(['0', '1', '2']);
    expect(server.broker.queueDepth('/queue/p')).toBe(2);
  });
});

describe('acknowledgement (STOMP 1.2 "SUBSCRIBE ack Header", "ACK", "NACK")', () => {
  it('acknowledges cumulatively in client mode', async () => {
    const server = await startServer();
    const c = await connected(server.url);
    c.send('SUBSCRIBE\nid:1\ndestination:/queue/c\nack:client\n\n\0');
    for (const b of ['a', 'b', 'c']) c.send(`SEND\ndestination:/queue/c\n\n${b}\0`);
    const got = await c.messages(3);
    for (const m of got) expect(getHeader(m, 'ack')).toMatch(/.+/);
    c.send(`ACK\nid:${getHeader(got[1]!, 'ack')}\nreceipt:ack\n\n\0`);
    await c.receipt('ack');
    // a and b are settled; acking a again is an unknown ack id.
    c.send(`ACK\nid:${getHeader(got[0]!, 'ack')}\nreceipt:again\n\n\0`);
    const error = await c.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_UNKNOWN_ACK');
    expect(getHeader(error, 'receipt-id')).toBe('again');
  });

  it('acknowledges one message at a time in client-individual mode', async () => {
    const server = await startServer();
    const a = await connected(server.url);
    a.send('SUBSCRIBE\nid:1\ndestination:/queue/ci\nack:client-individual\n\n\0');
    for (const b of ['a', 'b', 'c']) a.send(`SEND\ndestination:/queue/ci\n\n${b}\0`);
    const got = await a.messages(3);
    a.send(`ACK\nid:${getHeader(got[1]!, 'ack')}\nreceipt:r\n\n\0`);
    await a.receipt('r');
    const b = await connected(server.url);
    b.send('SUBSCRIBE\nid:1\ndestination:/queue/ci\n\n\0');
    a.destroy();
    expect(bodies(await b.messages(2))).toEqual(['a', 'c']);
  });

  it('accepts the STOMP 1.1 form: message-id and subscription, no ack header on MESSAGE', async () => {
    const server = await startServer();
    const c = await connected(server.url, { 'accept-version': '1.1' });
    c.send('SUBSCRIBE\nid:s11\ndestination:/queue/v11\nack:client-individual\n\n\0');
    c.send('SEND\ndestination:/queue/v11\n\nold\0');
    const [m] = await c.messages(1);
    expect(getHeader(m!, 'ack')).toBeUndefined();
    c.send(`ACK\nmessage-id:${getHeader(m!, 'message-id')}\nsubscription:s11\nreceipt:r\n\n\0`);
    await c.receipt('r');
    expect(c.all('ERROR')).toHaveLength(0);
  });

  it('acknowledges topic messages in client mode and redelivers a NACKed one', async () => {
    const server = await startServer();
    const c = await connected(server.url);
    c.send('SUBSCRIBE\nid:1\ndestination:/topic/tn\nack:client-individual\n\n\0');
    c.send('SEND\ndestination:/topic/tn\n\nt\0');
    const [m] = await c.messages(1);
    c.send(`NACK\nid:${getHeader(m!, 'ack')}\n\n\0`);
    const [, again] = await c.messages(2);
    expect(getHeader(again!, 'redelivered')).toBe('true');
    c.send(`ACK\nid:${getHeader(again!, 'ack')}\nreceipt:done\n\n\0`);
    await c.receipt('done');
  });
});

describe('transactions (STOMP 1.2 "BEGIN", "COMMIT", "ABORT")', () => {
  it('holds SENDs until COMMIT and drops them on ABORT', async () => {
    const server = await startServer();
    const c = await connected(server.url);
    c.send('SUBSCRIBE\nid:1\ndestination:/topic/tx\n\n\0');
    c.send(
      'BEGIN\ntransaction:t1\n\n\0SEND\ndestination:/topic/tx\ntransaction:t1\nreceipt:in\n\nkept\0',
    );
    await c.receipt('in');
    expect(c.all('MESSAGE')).toHaveLength(0);
    c.send('BEGIN\ntransaction:t2\n\n\0SEND\ndestination:/topic/tx\ntransaction:t2\n\ndropped\0');
    c.send('ABORT\ntransaction:t2\nreceipt:aborted\n\n\0');
    await c.receipt('aborted');
    c.send('COMMIT\ntransaction:t1\nreceipt:committed\n\n\0');
    await c.receipt('committed');
    expect(bodies(await c.messages(1))).toEqual(['kept']);
    // A MESSAGE must not carry the transaction header of its SEND.
    expect(getHeader(c.all('MESSAGE')[0]!, 'transaction')).toBeUndefined();
  });

  it('applies ACKs in a transaction only at COMMIT', async () => {
    const server = await startServer();
    const a = await connected(server.url);
    a.send('SUBSCRIBE\nid:1\ndestination:/queue/txa\nack:client-individual\n\n\0');
    a.send('SEND\ndestination:/queue/txa\n\nx\0SEND\ndestination:/queue/txa\n\ny\0');
    const [x, y] = await a.messages(2);
    a.send(`BEGIN\ntransaction:t\n\n\0ACK\nid:${getHeader(x!, 'ack')}\ntransaction:t\n\n\0`);
    a.send(
      `ACK\nid:${getHeader(y!, 'ack')}\ntransaction:t\n\n\0COMMIT\ntransaction:t\nreceipt:c\n\n\0`,
    );
    await a.receipt('c');
    const b = await connected(server.url);
    b.send('SUBSCRIBE\nid:1\ndestination:/queue/txa\n\n\0');
    a.destroy();
    b.send('SEND\ndestination:/queue/txa\n\nz\0');
    expect(bodies(await b.messages(1))).toEqual(['z']);
  });

  it('discards an open transaction when the client disconnects', async () => {
    const server = await startServer();
    const a = await connected(server.url);
    a.send('BEGIN\ntransaction:t\n\n\0SEND\ndestination:/queue/txd\ntransaction:t\n\nlost\0');
    a.send('DISCONNECT\nreceipt:bye\n\n\0');
    await a.receipt('bye');
    await a.closed;
    expect(server.broker.queueDepth('/queue/txd')).toBe(0);
  });

  it('refuses unknown and duplicate transactions', async () => {
    const server = await startServer();
    const a = await connected(server.url);
    a.send('SEND\ndestination:/topic/x\ntransaction:nope\nreceipt:1\n\nx\0');
    const e1 = await a.expectErrorAndClose();
    expect(getHeader(e1, 'message')).toBe('STOMP_ERR_UNKNOWN_TRANSACTION');
    expect(getHeader(e1, 'receipt-id')).toBe('1');
    const b = await connected(server.url);
    b.send('BEGIN\ntransaction:t\n\n\0BEGIN\ntransaction:t\n\n\0');
    expect(getHeader(await b.expectErrorAndClose(), 'message')).toBe(
      'STOMP_ERR_DUPLICATE_TRANSACTION',
    );
  });
});

describe('receipts (STOMP 1.2 "Header receipt")', () => {
  it('answers a receipt on every client frame but CONNECT, in order', async () => {
    const server = await startServer();
    const c = await connected(server.url);
    c.send('SUBSCRIBE\nid:1\ndestination:/queue/rc\nack:client\nreceipt:r1\n\n\0');
    c.send('SEND\ndestination:/queue/rc\nreceipt:r2\n\nm\0');
    const [m] = await c.messages(1);
    const ack = getHeader(m!, 'ack');
    c.send(`NACK\nid:${ack}\nreceipt:r3\n\n\0`);
    const [, again] = await c.messages(2);
    c.send(`ACK\nid:${getHeader(again!, 'ack')}\nreceipt:r4\n\n\0`);
    c.send('BEGIN\ntransaction:t\nreceipt:r5\n\n\0ABORT\ntransaction:t\nreceipt:r6\n\n\0');
    c.send('BEGIN\ntransaction:u\nreceipt:r7\n\n\0COMMIT\ntransaction:u\nreceipt:r8\n\n\0');
    c.send('UNSUBSCRIBE\nid:1\nreceipt:r9\n\n\0DISCONNECT\nreceipt:r10\n\n\0');
    await c.closed;
    const ids = c.all('RECEIPT').map((r) => getHeader(r, 'receipt-id'));
    expect(ids).toEqual(['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'r9', 'r10']);
    // DISCONNECT's RECEIPT is the last frame before the close.
    expect(c.frames.at(-1)?.command).toBe('RECEIPT');
  });

  it('ignores frames after DISCONNECT', async () => {
    const server = await startServer();
    const c = await connected(server.url);
    c.send(
      'DISCONNECT\nreceipt:bye\n\n\0SUBSCRIBE\nid:1\ndestination:/topic/x\nreceipt:late\n\n\0',
    );
    await c.closed;
    expect(c.all('RECEIPT').map((r) => getHeader(r, 'receipt-id'))).toEqual(['bye']);
  });
});
