import { describe, expect, it } from 'vitest';
import { getHeader } from '../../src/frame/index.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer } from '../helpers/server.js';
import { expectOthersUnaffected } from '../helpers/unaffected.js';

type Server = Awaited<ReturnType<typeof startServer>>;

async function connected(server: Server, over: 'ws' | 'tcp') {
  const client =
    over === 'ws' ? await RawClient.ws(server.url) : await RawClient.tcp(server.tcpPort as number);
  await client.connect();
  return client;
}

/** Malformed input: the ERROR names the code, the connection closes, others go on. */
const MALFORMED: Array<{ name: string; wire: string | Buffer; code: string }> = [
  {
    name: 'garbage bytes',
    wire: Buffer.from([0xde, 0xad, 0xbe, 0xef, 10]),
    code: 'STOMP_ERR_INVALID_COMMAND',
  },
  {
    name: 'a server command sent by a client',
    wire: 'MESSAGE\n\n\0',
    code: 'STOMP_ERR_INVALID_COMMAND',
  },
  {
    name: 'an undefined escape',
    wire: 'SEND\ndestination:/topic/a\\tb\n\nx\0',
    code: 'STOMP_ERR_INVALID_ESCAPE',
  },
  {
    name: 'a header line without a colon',
    wire: 'SEND\ndestination\n\nx\0',
    code: 'STOMP_ERR_MALFORMED_HEADER',
  },
  {
    name: 'a huge header line',
    wire: `SEND\nx:${'y'.repeat(9000)}\n\n\0`,
    code: 'STOMP_ERR_HEADER_LINE_TOO_LONG',
  },
  {
    name: 'too many headers',
    wire: `SEND\n${'h:v\n'.repeat(65)}\n\0`,
    code: 'STOMP_ERR_TOO_MANY_HEADERS',
  },
  {
    name: 'a non-numeric content-length',
    wire: 'SEND\ndestination:/topic/a\ncontent-length:ten\n\nx\0',
    code: 'STOMP_ERR_INVALID_CONTENT_LENGTH',
  },
  {
    name: 'a content-length larger than the data',
    wire: 'SEND\ndestination:/topic/a\ncontent-length:20\n\nshort\0SEND\ndestination:/topic/a\n\nnext\0',
    code: 'STOMP_ERR_MISSING_NUL',
  },
  { name: 'a SEND without destination', wire: 'SEND\n\nx\0', code: 'STOMP_ERR_MISSING_HEADER' },
  {
    name: 'a destination outside /topic and /queue',
    wire: 'SEND\ndestination:/exchange/x\n\nx\0',
    code: 'STOMP_ERR_INVALID_DESTINATION',
  },
  {
    name: 'a SUBSCRIBE without id',
    wire: 'SUBSCRIBE\ndestination:/topic/a\n\n\0',
    code: 'STOMP_ERR_MISSING_HEADER',
  },
  {
    name: 'an unknown ack mode',
    wire: 'SUBSCRIBE\nid:1\ndestination:/topic/a\nack:sometimes\n\n\0',
    code: 'STOMP_ERR_INVALID_HEADER',
  },
  {
    name: 'a duplicate subscription id',
    wire: 'SUBSCRIBE\nid:1\ndestination:/topic/a\n\n\0SUBSCRIBE\nid:1\ndestination:/topic/b\n\n\0',
    code: 'STOMP_ERR_DUPLICATE_SUBSCRIPTION',
  },
  {
    name: 'an UNSUBSCRIBE of an unknown id',
    wire: 'UNSUBSCRIBE\nid:nope\n\n\0',
    code: 'STOMP_ERR_UNKNOWN_SUBSCRIPTION',
  },
  { name: 'an ACK of an unknown id', wire: 'ACK\nid:42\n\n\0', code: 'STOMP_ERR_UNKNOWN_ACK' },
];

describe.each(['ws', 'tcp'] as const)('malformed input over %s', (over) => {
  it.each(MALFORMED)(
    'answers $name with $code, closes, and serves others',
    async ({ wire, code }) => {
      const server = await startServer();
      const bystander = await connected(server, over);
      bystander.send('SUBSCRIBE\nid:b\ndestination:/topic/bystander\nreceipt:b\n\n\0');
      await bystander.receipt('b');
      const bad = await connected(server, over);
      bad.send(wire);
      const error = await bad.expectErrorAndClose();
      expect(getHeader(error, 'message')).toBe(code);
      expect(getHeader(error, 'content-type')).toBe('text/plain');
      expect(error.body.length).toBeGreaterThan(0);
      await expectOthersUnaffected(server, over);
      // The client that was connected before is still connected too.
      bystander.send('SEND\ndestination:/topic/bystander\n\nstill here\0');
      await bystander.next('MESSAGE');
    },
  );
});

describe('limits', () => {
  it('refuses a frame above max frame size', async () => {
    const server = await startServer({ maxFrameSize: 1024 });
    const bad = await connected(server, 'tcp');
    bad.send(`SEND\ndestination:/topic/a\n\n${'x'.repeat(2000)}\0`);
    expect(getHeader(await bad.expectErrorAndClose(), 'message')).toBe('STOMP_ERR_FRAME_TOO_LARGE');
    await expectOthersUnaffected(server, 'tcp');
  });

  it('refuses a body above max body size as soon as content-length announces it', async () => {
    const server = await startServer({ maxBodySize: 100 });
    const bad = await connected(server, 'ws');
    bad.send('SEND\ndestination:/topic/a\ncontent-length:5000\nreceipt:big\n\n');
    const error = await bad.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_BODY_TOO_LARGE');
    await expectOthersUnaffected(server);
  });

  it('closes a WebSocket whose single message exceeds twice the frame limit with 1009', async () => {
    const server = await startServer({ maxFrameSize: 1024 });
    const bad = await connected(server, 'ws');
    bad.send(`SEND\ndestination:/topic/a\n\n${'x'.repeat(4096)}\0`);
    expect((await bad.closed).code).toBe(1009);
    await expectOthersUnaffected(server);
  });

  it('caps subscriptions per connection', async () => {
    const server = await startServer({ maxSubscriptions: 3 });
    const bad = await connected(server, 'ws');
    for (let i = 0; i < 4; i++) bad.send(`SUBSCRIBE\nid:${i}\ndestination:/topic/s${i}\n\n\0`);
    expect(getHeader(await bad.expectErrorAndClose(), 'message')).toBe(
      'STOMP_ERR_TOO_MANY_SUBSCRIPTIONS',
    );
    await expectOthersUnaffected(server);
  });

  it('caps open transactions and frames per transaction', async () => {
    const server = await startServer({ maxTransactions: 2, maxTransactionFrames: 3 });
    const a = await connected(server, 'ws');
    for (let i = 0; i < 3; i++) a.send(`BEGIN\ntransaction:t${i}\n\n\0`);
    expect(getHeader(await a.expectErrorAndClose(), 'message')).toBe(
      'STOMP_ERR_TOO_MANY_TRANSACTIONS',
    );
    const b = await connected(server, 'ws');
    b.send('BEGIN\ntransaction:t\n\n\0');
    for (let i = 0; i < 4; i++) b.send('SEND\ndestination:/topic/a\ntransaction:t\n\nx\0');
    expect(getHeader(await b.expectErrorAndClose(), 'message')).toBe(
      'STOMP_ERR_TRANSACTION_TOO_LARGE',
    );
    await expectOthersUnaffected(server);
  });

  it('refuses a SEND to a full queue, answering the receipt in the ERROR', async () => {
    const server = await startServer({ maxQueueMessages: 10 });
    const flood = await connected(server, 'tcp');
    for (let i = 0; i < 11; i++)
      flood.send(`SEND\ndestination:/queue/full\nreceipt:${i}\n\nm${i}\0`);
    const error = await flood.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_QUEUE_FULL');
    expect(getHeader(error, 'receipt-id')).toBe('10');
    // Nothing receipted was lost: all ten are still queued.
    expect(flood.all('RECEIPT')).toHaveLength(10);
    expect(server.broker.queueDepth('/queue/full')).toBe(10);
    await expectOthersUnaffected(server, 'tcp');
  });

  it('disconnects a flooding client that does not read its output', async () => {
    const server = await startServer({ highWaterMark: 64 * 1024 });
    const flood = await RawClient.tcp(server.tcpPort as number);
    await flood.connect();
    flood.send('SUBSCRIBE\nid:1\ndestination:/topic/flood\n\n\0');
    // The client stops reading, so what the server sends it backs up.
    flood.pauseReading();
    const batch = `SEND\ndestination:/topic/flood\n\n${'z'.repeat(4096)}\0`.repeat(16);
    for (let i = 0; i < 256 && server.sessions.size > 0; i++) {
      flood.send(batch);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // The server gave up on it (ERROR queued, connection cut after the close timeout)...
    expect(server.sessions.size).toBe(0);
    flood.resumeReading();
    await flood.closed;
    // ...and serves everybody else as before.
    await expectOthersUnaffected(server, 'tcp');
  });

  it('stops giving queue messages to a consumer that does not read, until it drains', async () => {
    const server = await startServer({ highWaterMark: 64 * 1024 });
    const slow = await RawClient.tcp(server.tcpPort as number);
    await slow.connect();
    slow.send('SUBSCRIBE\nid:1\ndestination:/queue/slow\nreceipt:s\n\n\0');
    await slow.receipt('s');
    slow.pauseReading();
    const pub = await RawClient.tcp(server.tcpPort as number);
    await pub.connect();
    const body = 'q'.repeat(8192);
    for (let i = 0; i < 400; i++) pub.send(`SEND\ndestination:/queue/slow\n\n${body}\0`);
    pub.send('SEND\ndestination:/queue/slow\nreceipt:all\n\nlast\0');
    await pub.receipt('all');
    // The rest waits in the queue; the slow consumer is not disconnected.
    await pub.waitFor(() => server.broker.queueDepth('/queue/slow') > 0 || undefined);
    expect(server.sessions.size).toBe(2);
    slow.resumeReading();
    await slow.waitFor(
      () => slow.all('MESSAGE').length === 401 || undefined,
      10_000,
      '401 messages',
    );
    expect(server.broker.queueDepth('/queue/slow')).toBe(0);
    expect(slow.all('ERROR')).toHaveLength(0);
  });
});
