/**
 * One session driven in memory (`broker.handle(end)` of a duplex pair): the
 * protocol rules of src/session/ without sockets. The e2e specs keep the
 * same rules honest over real TCP and WebSocket connections.
 */
import { describe, expect, it, vi } from 'vitest';
import type { Outgoing } from '../../src/broker/message.js';
import type { Fanout } from '../../src/broker/seams.js';
import { StompError } from '../../src/errors.js';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import type { ConnectRequest } from '../../src/session/session.js';
import type { BrokerEvents, StompBroker } from '../../src/stomp-broker.js';
import {
  duplexPair,
  fanoutAnswering,
  heldBus,
  type MemoryClient,
  memoryClient,
  testBroker,
  waitUntil,
} from '../helpers/duplex-pair.js';
import { RawClient } from '../helpers/raw-client.js';

const USERS = new Map([
  ['alice', 'a-secret'],
  ['bob', 'b-secret'],
]);

const code = (frame: Frame) => getHeader(frame, 'message');
const receiptIds = (client: MemoryClient) =>
  client.all('RECEIPT').map((r) => getHeader(r, 'receipt-id'));

async function connected(broker: StompBroker, headers: Record<string, string> = {}) {
  const client = memoryClient(broker);
  await client.connect(headers);
  return client;
}

/** A promise and the functions that settle it. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Every event a broker emits, in order, as `[name, info]`. */
function record(broker: StompBroker) {
  const events: Array<[keyof BrokerEvents, Record<string, unknown>]> = [];
  for (const name of ['connect', 'subscribe', 'unsubscribe', 'disconnect', 'error'] as const) {
    broker.on(name, (info: object) => events.push([name, { ...info }]));
  }
  return events;
}

describe('CONNECT negotiation (STOMP 1.2 "Connecting")', () => {
  it('answers CONNECT with CONNECTED naming the version, heart-beat, session and server', async () => {
    const broker = testBroker({ serverName: 'unit-broker/1' });
    const client = memoryClient(broker);
    const frame = await client.connect();
    expect(getHeader(frame, 'version')).toBe('1.2');
    expect(getHeader(frame, 'heart-beat')).toBe('0,0');
    expect(getHeader(frame, 'session')).toMatch(/.+/);
    expect(getHeader(frame, 'server')).toBe('unit-broker/1');
    expect(getHeader(frame, 'user-name')).toBeUndefined();
    expect(client.all('ERROR')).toHaveLength(0);
  });

  it('gives every session its own session id', async () => {
    const broker = testBroker();
    const ids = await Promise.all(
      [1, 2, 3].map(async () => getHeader(await memoryClient(broker).connect(), 'session')),
    );
    expect(new Set(ids).size).toBe(3);
  });

  it.each([
    ['1.2', '1.2'],
    ['1.0,1.1,1.2', '1.2'],
    ['1.0,1.1', '1.1'],
    ['1.0', '1.0'],
    ['1.1,2.0', '1.1'],
  ])(
    'agrees on the highest version both sides speak (accept-version %s gives %s)',
    async (offered, agreed) => {
      const broker = testBroker();
      const frame = await memoryClient(broker).connect({ 'accept-version': offered });
      expect(getHeader(frame, 'version')).toBe(agreed);
    },
  );

  it('speaks STOMP 1.0 to a CONNECT without accept-version', async () => {
    const broker = testBroker();
    const client = memoryClient(broker);
    client.send('CONNECT\nhost:localhost\n\n\0');
    expect(getHeader(await client.next('CONNECTED'), 'version')).toBe('1.0');
  });

  it('accepts the STOMP command as CONNECT', async () => {
    const broker = testBroker();
    const client = memoryClient(broker);
    client.send('STOMP\naccept-version:1.2\nhost:localhost\n\n\0');
    expect(getHeader(await client.next('CONNECTED'), 'version')).toBe('1.2');
  });

  it('refuses a client that speaks no version of ours with STOMP_ERR_UNSUPPORTED_VERSION and the versions it speaks', async () => {
    const broker = testBroker();
    const client = memoryClient(broker);
    client.send('CONNECT\naccept-version:2.0,3.1\nhost:localhost\n\n\0');
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_UNSUPPORTED_VERSION');
    expect(getHeader(error, 'version')).toBe('1.2,1.1,1.0');
    expect(client.all('CONNECTED')).toHaveLength(0);
  });

  it.each([
    ['0,0', '0,0'],
    ['500,3000', '3000,2000'],
    ['5000,500', '1000,5000'],
    ['500,0', '0,2000'],
    ['0,500', '1000,0'],
  ])(
    'negotiates heart-beats: client %s against server 1000,2000 gives %s',
    async (offered, agreed) => {
      // STOMP 1.2 "Heart-beating": none one way if either side says 0 for it,
      // else the larger of what one side can send and the other wants.
      const broker = testBroker({ heartbeat: [1000, 2000] });
      const frame = await memoryClient(broker).connect({ 'heart-beat': offered });
      expect(getHeader(frame, 'heart-beat')).toBe(agreed);
    },
  );

  it.each([
    ['1000,1000', '1000,1000'],
    ['10000,500', '500,10000'],
    ['10,10', '100,100'],
    ['1,60000', '60000,100'],
    ['0,0', '0,0'],
    ['0,250', '250,0'],
  ])(
    'honours the client down to the 100 ms floor at the defaults: client %s gives %s',
    async (offered, agreed) => {
      const broker = testBroker();
      expect(broker.options.heartbeat).toEqual([100, 100]);
      expect(broker.options.heartbeatMin).toBe(100);
      const frame = await memoryClient(broker).connect({ 'heart-beat': offered });
      expect(getHeader(frame, 'heart-beat')).toBe(agreed);
    },
  );

  it('raises the server offer and the client wish alike to heartbeatMin', async () => {
    const broker = testBroker({ heartbeat: [20, 30], heartbeatMin: 250 });
    const frame = await memoryClient(broker).connect({ 'heart-beat': '40,50' });
    expect(getHeader(frame, 'heart-beat')).toBe('250,250');
  });

  it('lets a larger server offer override the client, as the STOMP formula says', async () => {
    const broker = testBroker({ heartbeat: [10_000, 10_000] });
    const frame = await memoryClient(broker).connect({ 'heart-beat': '1000,1000' });
    expect(getHeader(frame, 'heart-beat')).toBe('10000,10000');
  });

  it('sends heart-beats no faster than the floor when a client asks for 1 ms', async () => {
    const broker = testBroker({ heartbeatMin: 200 });
    const client = memoryClient(broker);
    expect(getHeader(await client.connect({ 'heart-beat': '0,1' }), 'heart-beat')).toBe('200,0');
    await client.waitFor(() => client.heartbeats >= 2, 5000, 'two heart-beats');
    const from = client.heartbeats;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // The session beats at half the interval so that no gap exceeds it: at
    // most about 10 in a second at a 200 ms floor, never one per millisecond.
    expect(client.heartbeats - from).toBeLessThanOrEqual(12);
  });

  it('offers no heart-beats one way when the server says 0 for it', async () => {
    const broker = testBroker({ heartbeat: [0, 2000] });
    const frame = await memoryClient(broker).connect({ 'heart-beat': '500,500' });
    expect(getHeader(frame, 'heart-beat')).toBe('0,2000');
  });

  it('refuses a malformed heart-beat header with STOMP_ERR_INVALID_HEADER', async () => {
    const broker = testBroker();
    const client = memoryClient(broker);
    client.send('CONNECT\naccept-version:1.2\nheart-beat:often\n\n\0');
    expect(code(await client.expectErrorAndClose())).toBe('STOMP_ERR_INVALID_HEADER');
  });

  it('sends heart-beats at the negotiated interval while the connection is idle', async () => {
    const broker = testBroker({ heartbeat: [20, 0], heartbeatMin: 20 });
    const client = memoryClient(broker);
    await client.connect({ 'heart-beat': '0,20' });
    await client.waitFor(() => client.heartbeats >= 3, 5000, 'three heart-beats');
    expect(client.all('ERROR')).toHaveLength(0);
  });

  it('disconnects a client silent beyond the negotiated heart-beat with STOMP_ERR_HEARTBEAT_TIMEOUT', async () => {
    const broker = testBroker({ heartbeat: [0, 20], heartbeatMin: 20 });
    const client = memoryClient(broker);
    await client.connect({ 'heart-beat': '20,0' });
    expect(code(await client.expectErrorAndClose())).toBe('STOMP_ERR_HEARTBEAT_TIMEOUT');
  });

  it('keeps a client that sends heart-beats connected', async () => {
    const broker = testBroker({ heartbeat: [0, 50], heartbeatMin: 50 });
    const client = memoryClient(broker);
    await client.connect({ 'heart-beat': '50,0' });
    // Well past the 100 ms of silence allowed, each interval proven alive by an EOL.
    for (let i = 0; i < 20; i++) {
      client.send('\n');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    client.send('SUBSCRIBE\nid:1\ndestination:/topic/a\nreceipt:alive\n\n\0');
    await client.receipt('alive');
    expect(client.all('ERROR')).toHaveLength(0);
  });

  it('names the authenticated user in user-name when users are configured', async () => {
    const broker = testBroker({ users: USERS });
    const frame = await memoryClient(broker).connect({ login: 'alice', passcode: 'a-secret' });
    expect(getHeader(frame, 'user-name')).toBe('alice');
  });

  it.each([
    ['a wrong passcode', { login: 'alice', passcode: 'b-secret' }],
    ['an unknown login', { login: 'mallory', passcode: 'a-secret' }],
    ['no login', {}],
  ])('refuses %s with STOMP_ERR_AUTH_FAILED when users are configured', async (_, headers) => {
    const broker = testBroker({ users: USERS });
    const client = memoryClient(broker);
    client.send(
      `CONNECT\naccept-version:1.2\n${Object.entries(headers)
        .map(([k, v]) => `${k}:${v}\n`)
        .join('')}\n\0`,
    );
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_AUTH_FAILED');
    expect(client.all('CONNECTED')).toHaveLength(0);
  });

  it('names the claimed login with anonymous access, and no user-name without one', async () => {
    const broker = testBroker();
    const claimed = await memoryClient(broker).connect({ login: 'carol', passcode: 'anything' });
    expect(getHeader(claimed, 'user-name')).toBe('carol');
    const anonymous = await memoryClient(broker).connect();
    expect(getHeader(anonymous, 'user-name')).toBeUndefined();
  });

  it('refuses a second CONNECT with STOMP_ERR_ALREADY_CONNECTED', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send('CONNECT\naccept-version:1.2\n\n\0');
    expect(code(await client.expectErrorAndClose())).toBe('STOMP_ERR_ALREADY_CONNECTED');
  });
});

describe('frames in order', () => {
  it('handles the frames of one chunk strictly in order: SUBSCRIBE then SEND sees its own message', async () => {
    const broker = testBroker();
    const client = memoryClient(broker);
    client.send(
      'CONNECT\naccept-version:1.2\n\n\0' +
        'SUBSCRIBE\nid:1\ndestination:/topic/self\n\n\0' +
        'SEND\ndestination:/topic/self\n\none\0' +
        'SEND\ndestination:/topic/self\n\ntwo\0' +
        'UNSUBSCRIBE\nid:1\n\n\0' +
        'SEND\ndestination:/topic/self\nreceipt:last\n\nthree\0',
    );
    await client.receipt('last');
    expect(client.all('MESSAGE').map(bodyText)).toEqual(['one', 'two']);
    expect(client.frames.map((f) => f.command)).toEqual([
      'CONNECTED',
      'MESSAGE',
      'MESSAGE',
      'RECEIPT',
    ]);
  });

  it('handles a frame split over many chunks as one frame', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    const wire =
      'SUBSCRIBE\nid:1\ndestination:/topic/split\n\n\0SEND\ndestination:/topic/split\n\nbits\0';
    for (const byte of Buffer.from(wire)) client.send(Buffer.from([byte]));
    const [message] = await client.messages(1);
    expect(bodyText(message as Frame)).toBe('bits');
  });

  it('answers receipts in the order of their frames, the DISCONNECT one last before the close', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send(
      'SUBSCRIBE\nid:1\ndestination:/queue/rc\nack:client-individual\nreceipt:r1\n\n\0' +
        'SEND\ndestination:/queue/rc\nreceipt:r2\n\nm\0' +
        'BEGIN\ntransaction:t\nreceipt:r3\n\n\0' +
        'SEND\ndestination:/topic/x\ntransaction:t\nreceipt:r4\n\nx\0' +
        'ABORT\ntransaction:t\nreceipt:r5\n\n\0',
    );
    const [message] = await client.messages(1);
    client.send(
      `ACK\nid:${getHeader(message as Frame, 'ack')}\nreceipt:r6\n\n\0` +
        'UNSUBSCRIBE\nid:1\nreceipt:r7\n\n\0' +
        'DISCONNECT\nreceipt:r8\n\n\0',
    );
    await client.closed;
    expect(receiptIds(client)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8']);
    expect(client.frames.at(-1)?.command).toBe('RECEIPT');
    expect(client.all('ERROR')).toHaveLength(0);
  });

  it('keeps receipts in frame order when one of them waits for an asynchronous publish', async () => {
    const gate = deferred<void>();
    const broker = testBroker({ fanout: slowFanout(gate.promise) });
    const client = await connected(broker);
    client.send(
      'SEND\ndestination:/topic/slow\nreceipt:r1\n\nslow\0' +
        'SUBSCRIBE\nid:1\ndestination:/queue/fast\nreceipt:r2\n\n\0',
    );
    // A sync point: a later frame without receipt has been handled.
    client.send('SEND\ndestination:/queue/fast\n\nfast\0');
    await client.messages(1);
    gate.resolve();
    await client.receipt('r2');
    expect(receiptIds(client)).toEqual(['r1', 'r2']);
  });

  it('answers a failed asynchronous publish with ERROR for its receipt, and no later receipt', async () => {
    const gate = deferred<void>();
    const published: Outgoing[] = [];
    const broker = testBroker({ fanout: slowFanout(gate.promise, published) });
    const client = await connected(broker);
    client.send(
      'SEND\ndestination:/topic/slow\nreceipt:r1\n\nslow\0' +
        'SUBSCRIBE\nid:1\ndestination:/queue/fast\nreceipt:r2\n\n\0',
    );
    await waitUntil(() => published.length === 1, 5000, 'the publish');
    gate.reject(new StompError('STOMP_ERR_CLUSTER_UNAVAILABLE'));
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_CLUSTER_UNAVAILABLE');
    expect(getHeader(error, 'receipt-id')).toBe('r1');
    expect(client.all('RECEIPT')).toHaveLength(0);
  });

  it('stops reading a client whose SENDs wait for the bus past maxPendingSends, and reads it again as they are answered', async () => {
    const { answers, published, fanout } = heldBus();
    const broker = testBroker({ fanout, maxPendingSends: 4 });
    const client = memoryClient(broker, { highWaterMark: 1024 });
    await client.connect();
    const body = 'x'.repeat(200);
    for (let i = 0; i < 40; i++) {
      client.send(`SEND\ndestination:/topic/bp\nreceipt:r${i}\n\n${body}\0`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitUntil(() => published.length >= 4, 5000, 'four publishes');
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Not handled past the limit: the rest waits, read or in the socket.
    expect(published).toHaveLength(4);
    expect(client.all('RECEIPT')).toHaveLength(0);
    // Answered, the publisher is read again, and every SEND gets its RECEIPT in order.
    await waitUntil(
      () => {
        for (const answer of answers.splice(0)) answer();
        return client.all('RECEIPT').length === 40;
      },
      5000,
      'every RECEIPT',
    );
    expect(receiptIds(client)).toEqual(Array.from({ length: 40 }, (_, i) => `r${i}`));
    expect(client.all('ERROR')).toEqual([]);
    expect(client.isClosed).toBe(false);
  });

  it('holds to maxPendingSends however many SENDs one read brings, and handles the rest in order as they are answered', async () => {
    const { answers, published, fanout } = heldBus();
    const broker = testBroker({ fanout, maxPendingSends: 4 });
    const other = await connected(broker);
    const client = await connected(broker);
    // Forty SENDs and a SUBSCRIBE in one chunk: one read.
    let wire = '';
    for (let i = 0; i < 40; i++)
      wire += `SEND\ndestination:/topic/one-read\nreceipt:r${i}\n\n${i}\0`;
    wire += 'SUBSCRIBE\nid:1\ndestination:/topic/after\nreceipt:sub\n\n\0';
    client.send(wire);
    await waitUntil(() => published.length >= 4, 5000, 'the first publishes');
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The bound holds: the frames read past it wait, unhandled.
    expect(published).toHaveLength(4);
    // Answered, the rest is handled in order, and every frame gets its RECEIPT in order.
    await waitUntil(
      () => {
        for (const answer of answers.splice(0)) answer();
        expect(published.length - answers.length).toBeLessThanOrEqual(40);
        return client.all('RECEIPT').length === 41;
      },
      5000,
      'every RECEIPT',
    );
    expect(published.map((m) => String(m.body))).toEqual(
      Array.from({ length: 40 }, (_, i) => `${i}`),
    );
    expect(receiptIds(client)).toEqual([...Array.from({ length: 40 }, (_, i) => `r${i}`), 'sub']);
    expect(client.all('ERROR')).toEqual([]);
    // Another client of the same broker went on meanwhile.
    other.send('SEND\ndestination:/topic/other\nreceipt:o\n\nx\0');
    await waitUntil(() => answers.length > 0, 5000, "the other's publish");
    for (const answer of answers.splice(0)) answer();
    await waitUntil(() => receiptIds(other).includes('o'), 5000, "the other's RECEIPT");
  });

  it('refuses bytes that are no frame only after the frames read before them, when those wait past maxPendingSends', async () => {
    const { answers, published, fanout } = heldBus();
    const broker = testBroker({ fanout, maxPendingSends: 4 });
    const client = await connected(broker);
    let wire = '';
    for (let i = 0; i < 8; i++)
      wire += `SEND\ndestination:/topic/before-bad\nreceipt:r${i}\n\n${i}\0`;
    client.send(`${wire}BOGUS\n\n\0`);
    await waitUntil(() => published.length >= 4, 5000, 'the first publishes');
    await waitUntil(
      () => {
        for (const answer of answers.splice(0)) answer();
        return client.isClosed;
      },
      5000,
      'the close',
    );
    // Every frame before the bad bytes was handled and answered, then came the ERROR.
    expect(published).toHaveLength(8);
    expect(receiptIds(client)).toEqual(Array.from({ length: 8 }, (_, i) => `r${i}`));
    expect(client.all('ERROR').map(code)).toEqual(['STOMP_ERR_INVALID_COMMAND']);
  });

  it('keeps a client unread once a frame read past maxPendingSends is refused, until its ERROR', async () => {
    const { answers, published, fanout } = heldBus();
    const broker = testBroker({ fanout, maxPendingSends: 4 });
    const { client: end, server } = duplexPair();
    broker.handle(server);
    const client = RawClient.over(end);
    await client.connect();
    let wire = '';
    for (let i = 0; i < 4; i++) wire += `SEND\ndestination:/topic/r\nreceipt:r${i}\n\n${i}\0`;
    wire += 'SEND\ndestination:nowhere\nreceipt:bad\n\nx\0';
    wire += 'SEND\ndestination:/topic/r\nreceipt:after\n\nafter\0';
    client.send(wire);
    await waitUntil(() => answers.length === 4, 5000, 'the first publishes');
    // Two answered: the frames read past the bound go on, and the bad one is refused.
    answers.shift()?.();
    answers.shift()?.();
    await waitUntil(() => receiptIds(client).length === 2, 5000, 'two RECEIPTs');
    // Not read again (nor heart-beat checked) while its ERROR waits behind the RECEIPTs.
    expect(server.isPaused()).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.isPaused()).toBe(true);
    expect(published).toHaveLength(4);
    for (const answer of answers.splice(0)) answer();
    await client.closed;
    expect(receiptIds(client)).toEqual(['r0', 'r1', 'r2', 'r3']);
    expect(client.all('ERROR')).toHaveLength(1);
    expect(getHeader(client.all('ERROR')[0] as Frame, 'receipt-id')).toBe('bad');
    expect(published.map((m) => String(m.body))).toEqual(['0', '1', '2', '3']);
  });

  it('goes on answering when something called while an answer goes out throws, and leaves no unhandled rejection', async () => {
    const gate = deferred<void>();
    const broker = testBroker({ fanout: slowFanout(gate.promise) });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      // The DISCONNECT's close tells the listeners, and this one throws.
      broker.on('disconnect', () => {
        throw new Error('a listener that throws');
      });
      const client = await connected(broker);
      client.send(
        'SEND\ndestination:/topic/slow\nreceipt:r1\n\nslow\0DISCONNECT\nreceipt:bye\n\n\0',
      );
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(client.all('RECEIPT')).toHaveLength(0);
      gate.resolve();
      await client.closed;
      expect(receiptIds(client)).toEqual(['r1', 'bye']);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('sends the RECEIPTs of SENDs still waiting for the bus before the ERROR of a bad frame behind them', async () => {
    const { answers, published, fanout } = heldBus();
    const broker = testBroker({ fanout });
    const client = await connected(broker);
    client.send(
      'SEND\ndestination:/topic/w\nreceipt:s1\n\n1\0' +
        'SEND\ndestination:/topic/w\nreceipt:s2\n\n2\0' +
        // No id: refused at once, but its ERROR waits for s1 and s2.
        'SUBSCRIBE\ndestination:/topic/w\nreceipt:bad\n\n\0' +
        'SEND\ndestination:/topic/w\nreceipt:s3\n\n3\0',
    );
    await waitUntil(() => answers.length === 2, 5000, 'two publishes');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(client.frames).toHaveLength(1); // CONNECTED only
    expect(client.isClosed).toBe(false);
    for (const answer of answers.splice(0)) answer();
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_MISSING_HEADER');
    expect(getHeader(error, 'receipt-id')).toBe('bad');
    expect(receiptIds(client)).toEqual(['s1', 's2']);
    // Nothing behind the refused frame was handled.
    expect(published.map((m) => Buffer.from(m.body).toString())).toEqual(['1', '2']);
    expect(client.frames.at(-1)).toBe(error);
  });

  it('sends the RECEIPTs of waiting SENDs before the ERROR of bytes that are no frame', async () => {
    const { answers, fanout } = heldBus();
    const broker = testBroker({ fanout });
    const client = await connected(broker);
    client.send('SEND\ndestination:/topic/w\nreceipt:s1\n\n1\0NOT-A-COMMAND\n\n\0');
    await waitUntil(() => answers.length === 1, 5000, 'the publish');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(client.all('ERROR')).toHaveLength(0);
    answers.splice(0)[0]?.();
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_INVALID_COMMAND');
    expect(receiptIds(client)).toEqual(['s1']);
  });

  it('gives up waiting for the RECEIPTs before a refusal after closeTimeoutMs: the ERROR goes out, the session ends', async () => {
    const published: Outgoing[] = [];
    // A bus that never answers.
    const fanout = fanoutAnswering(() => new Promise<void>(() => {}), published);
    const broker = testBroker({ fanout, closeTimeoutMs: 200 });
    const client = await connected(broker);
    client.send('SEND\ndestination:/topic/w\nreceipt:s1\n\n1\0NOT-A-COMMAND\n\n\0');
    await waitUntil(() => published.length === 1, 5000, 'the publish');
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_INVALID_COMMAND');
    expect(client.all('RECEIPT')).toHaveLength(0);
  });

  it('stops reading a client that queues frames behind a SEND the bus does not answer, past maxPendingSends', async () => {
    const { answers, fanout } = heldBus();
    const broker = testBroker({ fanout, maxPendingSends: 8 });
    const client = memoryClient(broker, { highWaterMark: 1024 });
    await client.connect();
    client.send('SEND\ndestination:/topic/stuck\nreceipt:s\n\nx\0');
    await waitUntil(() => answers.length === 1, 5000, 'the publish');
    // Frames whose own work is synchronous, each answered only after the SEND.
    const { received } = broker.router.stats;
    const handled = () => (received.BEGIN ?? 0) + (received.ABORT ?? 0);
    const receipts: string[] = [];
    for (let i = 0; i < 50; i++) {
      client.send(
        `BEGIN\ntransaction:t${i}\nreceipt:b${i}\n\n\0ABORT\ntransaction:t${i}\nreceipt:a${i}\n\n\0`,
      );
      receipts.push(`b${i}`, `a${i}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(handled()).toBeLessThan(16);
    expect(client.all('RECEIPT')).toHaveLength(0);
    // Answered, the client is read again, and every frame is answered in order.
    answers.splice(0)[0]?.();
    await waitUntil(() => client.all('RECEIPT').length === 101, 5000, 'every RECEIPT');
    expect(receiptIds(client)).toEqual(['s', ...receipts]);
    expect(client.all('ERROR')).toEqual([]);
  });

  it('answers asynchronous SENDs in frame order whatever order the bus answers them in', async () => {
    const { answers, fanout } = heldBus();
    const broker = testBroker({ fanout });
    const client = await connected(broker);
    let wire = '';
    for (let i = 0; i < 10; i++) wire += `SEND\ndestination:/topic/o\nreceipt:s${i}\n\n${i}\0`;
    // A frame without asynchronous work behind them waits for them too.
    wire += 'BEGIN\ntransaction:t\nreceipt:b\n\n\0';
    client.send(wire);
    await waitUntil(() => answers.length === 10, 5000, 'ten publishes');
    // The last ones first: nothing may be answered before s0 is.
    for (const answer of answers.splice(5).reverse()) answer();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(client.all('RECEIPT')).toHaveLength(0);
    for (const answer of answers.splice(0).reverse()) answer();
    await client.receipt('b');
    expect(receiptIds(client)).toEqual([...Array.from({ length: 10 }, (_, i) => `s${i}`), 'b']);
  });
});

describe('errors (STOMP 1.2 "ERROR")', () => {
  it('answers a bad frame with ERROR naming its receipt-id, then closes, handling nothing behind it', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send(
      'SUBSCRIBE\ndestination:/topic/a\nreceipt:bad\n\n\0' +
        'SUBSCRIBE\nid:2\ndestination:/topic/b\nreceipt:good\n\n\0',
    );
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_MISSING_HEADER');
    expect(getHeader(error, 'receipt-id')).toBe('bad');
    expect(getHeader(error, 'content-type')).toBe('text/plain');
    expect(bodyText(error)).toMatch(/.+/);
    expect(client.all('RECEIPT')).toHaveLength(0);
    expect(client.frames.at(-1)).toBe(error);
  });

  it('answers bytes that are no frame with STOMP_ERR_INVALID_COMMAND, then closes', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send(Buffer.from([0xde, 0xad, 0xbe, 0xef, 10]));
    expect(code(await client.expectErrorAndClose())).toBe('STOMP_ERR_INVALID_COMMAND');
  });

  it.each([
    ['SEND', 'SEND\ndestination:/topic/a\nreceipt:early\n\nx\0'],
    ['SUBSCRIBE', 'SUBSCRIBE\nid:1\ndestination:/topic/a\nreceipt:early\n\n\0'],
    ['DISCONNECT', 'DISCONNECT\nreceipt:early\n\n\0'],
  ])('refuses %s before CONNECT with STOMP_ERR_NOT_CONNECTED', async (_, wire) => {
    const broker = testBroker();
    const client = memoryClient(broker);
    client.send(wire);
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_NOT_CONNECTED');
    expect(getHeader(error, 'receipt-id')).toBe('early');
    expect(client.all('RECEIPT')).toHaveLength(0);
  });

  it('ends a connection that sends no CONNECT within connectTimeoutMs with STOMP_ERR_CONNECT_TIMEOUT', async () => {
    const broker = testBroker({ connectTimeoutMs: 30 });
    const client = memoryClient(broker);
    expect(code(await client.expectErrorAndClose())).toBe('STOMP_ERR_CONNECT_TIMEOUT');
  });

  it('does not time out a connection that sent CONNECT in time', async () => {
    const broker = testBroker({ connectTimeoutMs: 30 });
    const client = await connected(broker);
    await new Promise((resolve) => setTimeout(resolve, 120));
    client.send('SUBSCRIBE\nid:1\ndestination:/topic/a\nreceipt:still\n\n\0');
    await client.receipt('still');
    expect(client.all('ERROR')).toHaveLength(0);
  });

  it('sends STOMP_ERR_SHUTDOWN to every session when the broker closes, and refuses new ones', async () => {
    const broker = testBroker();
    const a = await connected(broker);
    const b = memoryClient(broker);
    await broker.close(500);
    expect(code(await a.expectErrorAndClose())).toBe('STOMP_ERR_SHUTDOWN');
    expect(code(await b.expectErrorAndClose())).toBe('STOMP_ERR_SHUTDOWN');
    const late = memoryClient(broker);
    await late.closed;
    expect(late.frames).toHaveLength(0);
  });
});

describe('DISCONNECT (STOMP 1.2 "DISCONNECT")', () => {
  it('sends the RECEIPT, then closes, ignoring the frames behind it', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send(
      'DISCONNECT\nreceipt:bye\n\n\0SUBSCRIBE\nid:1\ndestination:/topic/x\nreceipt:late\n\n\0',
    );
    await client.closed;
    expect(receiptIds(client)).toEqual(['bye']);
    expect(client.all('ERROR')).toHaveLength(0);
    expect(broker.sessions.size).toBe(0);
  });

  it('closes after a DISCONNECT without receipt', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send('DISCONNECT\n\n\0');
    await client.closed;
    expect(client.frames.map((f) => f.command)).toEqual(['CONNECTED']);
  });
});

describe('asynchronous authenticate', () => {
  it('holds the frames behind CONNECT until authenticate resolves, then handles them in order', async () => {
    const gate = deferred<string>();
    const requests: ConnectRequest[] = [];
    const broker = testBroker({
      authenticate: (request) => {
        requests.push(request);
        return gate.promise;
      },
    });
    const client = memoryClient(broker, {
      transport: 'ws',
      remoteAddress: '10.0.0.7',
      remotePort: 5555,
    });
    client.send(
      'CONNECT\naccept-version:1.2\nlogin:carol\npasscode:pw\nx-token:abc\n\n\0' +
        'SUBSCRIBE\nid:1\ndestination:/user/queue/inbox\nreceipt:s\n\n\0' +
        'SEND\ndestination:/user/dave/queue/inbox\n\nfor dave\0',
    );
    await client.waitFor(() => requests.length === 1, 5000, 'the authenticate call');
    expect(requests[0]).toMatchObject({
      login: 'carol',
      passcode: 'pw',
      transport: 'ws',
      remoteAddress: '10.0.0.7:5555',
    });
    expect(requests[0]?.headers).toContainEqual(['x-token', 'abc']);
    gate.resolve('dave');
    await client.receipt('s');
    const [message] = await client.messages(1);
    expect(bodyText(message as Frame)).toBe('for dave');
    expect(getHeader(client.frames[0] as Frame, 'user-name')).toBe('dave');
    expect(client.frames.map((f) => f.command)).toEqual(['CONNECTED', 'RECEIPT', 'MESSAGE']);
  });

  it('does not read the client while authenticate works: what waits is one read, not all it sends', async () => {
    const gate = deferred<boolean>();
    const broker = testBroker({ authenticate: () => gate.promise });
    const { client: end, server } = duplexPair({ highWaterMark: 1024 });
    broker.handle(server);
    const client = RawClient.over(end);
    client.send('CONNECT\naccept-version:1.2\nlogin:carol\npasscode:pw\n\n\0');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.isPaused()).toBe(true);
    // A flood meanwhile stays in the client's socket, unread.
    for (let i = 0; i < 200; i++) {
      client.send(`SEND\ndestination:/topic/early\nreceipt:e${i}\n\n${'x'.repeat(100)}\0`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.readableLength).toBeLessThan(2048);
    expect(end.writableLength).toBeGreaterThan(10_000);
    // Let in: read again, and every frame handled in order.
    gate.resolve(true);
    await waitUntil(() => receiptIds(client).length === 200, 5000, 'every RECEIPT');
    expect(receiptIds(client)).toEqual(Array.from({ length: 200 }, (_, i) => `e${i}`));
    expect(server.isPaused()).toBe(false);
  });

  it('accepts the claimed login when authenticate resolves true', async () => {
    const broker = testBroker({ authenticate: async () => true });
    const frame = await memoryClient(broker).connect({ login: 'erin' });
    expect(getHeader(frame, 'user-name')).toBe('erin');
  });

  it('refuses with STOMP_ERR_AUTH_FAILED when authenticate resolves false, handling none of the frames behind it', async () => {
    const broker = testBroker({ authenticate: async () => false });
    const events = record(broker);
    const client = memoryClient(broker);
    client.send(
      'CONNECT\naccept-version:1.2\nlogin:carol\n\n\0' +
        'SUBSCRIBE\nid:1\ndestination:/queue/q\nreceipt:s\n\n\0' +
        'SEND\ndestination:/queue/q\n\nsneaked in\0',
    );
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_AUTH_FAILED');
    expect(client.frames).toEqual([error]);
    expect(broker.queueDepth('/queue/q')).toBe(0);
    expect(events.map(([name]) => name)).toEqual(['error', 'disconnect']);
  });

  it('refuses with STOMP_ERR_AUTH_FAILED when a synchronous authenticate returns false', async () => {
    const broker = testBroker({ authenticate: () => false });
    const client = memoryClient(broker);
    client.send('CONNECT\naccept-version:1.2\n\n\0SEND\ndestination:/queue/q\n\nx\0');
    expect(code(await client.expectErrorAndClose())).toBe('STOMP_ERR_AUTH_FAILED');
    expect(broker.queueDepth('/queue/q')).toBe(0);
  });

  it.each([
    ['rejects', async () => Promise.reject(new StompError('STOMP_ERR_FORBIDDEN'))],
    [
      'throws',
      () => {
        throw new StompError('STOMP_ERR_FORBIDDEN');
      },
    ],
  ])('refuses with the code of the StompError authenticate %s', async (_, authenticate) => {
    const broker = testBroker({ authenticate });
    const client = memoryClient(broker);
    client.send('CONNECT\naccept-version:1.2\n\n\0');
    expect(code(await client.expectErrorAndClose())).toBe('STOMP_ERR_FORBIDDEN');
  });

  it('refuses with STOMP_ERR_INTERNAL when authenticate fails with another error', async () => {
    const quiet = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const broker = testBroker({ authenticate: async () => Promise.reject(new Error('db down')) });
      const client = memoryClient(broker);
      client.send('CONNECT\naccept-version:1.2\n\n\0');
      expect(code(await client.expectErrorAndClose())).toBe('STOMP_ERR_INTERNAL');
    } finally {
      quiet.mockRestore();
    }
  });
});

describe('authorization hooks (authorizeSubscribe, authorizeSend) and token expiry', () => {
  it('refuses a SUBSCRIBE that authorizeSubscribe denies with STOMP_ERR_FORBIDDEN and the receipt-id', async () => {
    const seen: Array<[string | undefined, readonly string[], string]> = [];
    const broker = testBroker({
      authenticate: () => ({ user: 'alice', scopes: ['s1'] }),
      authorizeSubscribe: (principal, destination) => {
        seen.push([principal.user, principal.scopes, destination]);
        return destination !== '/topic/secret';
      },
    });
    const client = await connected(broker);
    client.send('SUBSCRIBE\nid:1\ndestination:/topic/open\nreceipt:ok\n\n\0');
    await client.receipt('ok');
    client.send('SUBSCRIBE\nid:2\ndestination:/topic/secret\nreceipt:no\n\n\0');
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_FORBIDDEN');
    expect(getHeader(error, 'receipt-id')).toBe('no');
    expect(seen).toEqual([
      ['alice', ['s1'], '/topic/open'],
      ['alice', ['s1'], '/topic/secret'],
    ]);
  });

  it('gives authorizeSubscribe the routing name of a user destination', async () => {
    const names: string[] = [];
    const broker = testBroker({
      users: USERS,
      authorizeSubscribe: (_principal, destination) => {
        names.push(destination);
        return true;
      },
    });
    const client = await connected(broker, { login: 'alice', passcode: 'a-secret' });
    client.send('SUBSCRIBE\nid:1\ndestination:/user/queue/inbox\nreceipt:s\n\n\0');
    await client.receipt('s');
    expect(names).toEqual(['/user/alice/queue/inbox']);
  });

  it('delivers nothing of a SEND that an asynchronous authorizeSend denies, and handles no frame behind it', async () => {
    const gate = deferred<boolean>();
    const broker = testBroker({
      authorizeSend: (_principal, destination) =>
        destination === '/topic/held' ? gate.promise : true,
    });
    const watcher = await connected(broker);
    watcher.send('SUBSCRIBE\nid:1\ndestination:/topic/held\nreceipt:w\n\n\0');
    await watcher.receipt('w');
    const client = await connected(broker);
    client.send(
      'SEND\ndestination:/topic/held\nreceipt:denied\n\nnever\0' +
        'SEND\ndestination:/queue/after\n\nbehind it\0',
    );
    gate.resolve(false);
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_FORBIDDEN');
    expect(getHeader(error, 'receipt-id')).toBe('denied');
    expect(broker.queueDepth('/queue/after')).toBe(0);
    watcher.send('SEND\ndestination:/topic/other\nreceipt:sync\n\n\0');
    await watcher.receipt('sync');
    expect(watcher.all('MESSAGE')).toHaveLength(0);
  });

  it('keeps frame order across an asynchronous authorizeSend that allows', async () => {
    const gate = deferred<boolean>();
    const broker = testBroker({ authorizeSend: () => gate.promise });
    const client = await connected(broker);
    client.send(
      'SEND\ndestination:/queue/order\nreceipt:a\n\nfirst\0' +
        'SUBSCRIBE\nid:1\ndestination:/queue/order\nreceipt:s\n\n\0',
    );
    // The SUBSCRIBE waits behind the SEND's decision: nothing is subscribed yet.
    expect(broker.queueDepth('/queue/order')).toBe(0);
    gate.resolve(true);
    await client.receipt('s');
    const [message] = await client.messages(1);
    expect(bodyText(message as Frame)).toBe('first');
    expect(receiptIds(client)).toEqual(['a', 's']);
  });

  it('ends a session with STOMP_ERR_TOKEN_EXPIRED at the expiry authenticate gave', async () => {
    const broker = testBroker({
      authenticate: ({ login }) =>
        login === 'carol' ? { user: 'carol', expiresAt: Date.now() + 150 } : true,
    });
    const client = await connected(broker, { login: 'carol' });
    const other = await connected(broker, { login: 'dave' });
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_TOKEN_EXPIRED');
    expect(error.command).toBe('ERROR');
    expect(broker.sessions.size).toBe(1);
    other.send('SUBSCRIBE\nid:1\ndestination:/topic/x\nreceipt:alive\n\n\0');
    await other.receipt('alive');
  });
});

describe('broker events', () => {
  it('emits connect, subscribe, unsubscribe and disconnect with the user, transport and remote address', async () => {
    const broker = testBroker({ users: USERS });
    const events = record(broker);
    const client = memoryClient(broker, {
      transport: 'ws',
      remoteAddress: '10.0.0.7',
      remotePort: 5555,
    });
    const frame = await client.connect({ login: 'alice', passcode: 'a-secret' });
    client.send(
      'SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\n\n\0' +
        'SUBSCRIBE\nid:news\ndestination:/topic/news\n\n\0' +
        'UNSUBSCRIBE\nid:in\n\n\0DISCONNECT\nreceipt:bye\n\n\0',
    );
    await client.closed;
    const who = {
      sessionId: getHeader(frame, 'session'),
      user: 'alice',
      transport: 'ws',
      remoteAddress: '10.0.0.7:5555',
    };
    expect(events).toEqual([
      ['connect', who],
      ['subscribe', { ...who, id: 'in', destination: '/user/alice/queue/inbox' }],
      ['subscribe', { ...who, id: 'news', destination: '/topic/news' }],
      ['unsubscribe', { ...who, id: 'in', destination: '/user/alice/queue/inbox' }],
      [
        'disconnect',
        { ...who, error: undefined, reason: 'disconnect', durationMs: expect.any(Number) },
      ],
    ]);
  });

  it('emits error, then disconnect, with the StompError of a session sent an ERROR', async () => {
    const broker = testBroker();
    const events = record(broker);
    const client = await connected(broker, { login: 'carol' });
    client.send('UNSUBSCRIBE\nid:nope\n\n\0');
    await client.expectErrorAndClose();
    expect(events.map(([name]) => name)).toEqual(['connect', 'error', 'disconnect']);
    for (const [, info] of events.slice(1)) {
      expect(info.user).toBe('carol');
      expect(info.error).toBeInstanceOf(StompError);
      expect((info.error as StompError).code).toBe('STOMP_ERR_UNKNOWN_SUBSCRIPTION');
    }
    // The error names the frame it refused; the disconnect says it ended with an ERROR.
    expect(events[1]?.[1]).toMatchObject({ command: 'UNSUBSCRIBE', destination: undefined });
    expect(events[2]?.[1]).toMatchObject({ reason: 'error' });
  });

  it('names the refused frame and its destination, but no frame for a connection-level ERROR', async () => {
    const broker = testBroker({ maxPendingAcks: 1 });
    const events = record(broker);
    const refused = await connected(broker);
    refused.send('SEND\ndestination:/nowhere\n\nx\0');
    await refused.expectErrorAndClose();
    // Too many unacknowledged messages, found while handling the client's own SEND: no refusal of it.
    const slow = await connected(broker);
    slow.send(
      'SUBSCRIBE\nid:1\ndestination:/topic/s\nack:client\n\n\0' +
        'SEND\ndestination:/topic/s\n\n1\0SEND\ndestination:/topic/s\n\n2\0',
    );
    await slow.expectErrorAndClose();
    const errors = events.filter(([name]) => name === 'error').map(([, info]) => info);
    expect(errors).toEqual([
      expect.objectContaining({ command: 'SEND', destination: '/nowhere' }),
      expect.objectContaining({ command: undefined, destination: undefined }),
    ]);
    expect((errors[1]?.error as StompError | undefined)?.code).toBe('STOMP_ERR_SLOW_CONSUMER');
  });

  it('says how each connection ended: heart-beat timeout, shutdown', async () => {
    const broker = testBroker({ heartbeat: [0, 50], heartbeatTolerance: 1 });
    const events = record(broker);
    const silent = await connected(broker, { 'heart-beat': '50,0' });
    await silent.expectErrorAndClose();
    await connected(broker);
    await broker.close(500);
    const reasons = events
      .filter(([name]) => name === 'disconnect')
      .map(([, info]) => [info.reason, (info.error as StompError | undefined)?.code]);
    expect(reasons).toEqual([
      ['heartbeat-timeout', 'STOMP_ERR_HEARTBEAT_TIMEOUT'],
      ['shutdown', 'STOMP_ERR_SHUTDOWN'],
    ]);
  });

  it('names a stream without a peer address by its transport, tcp by default', async () => {
    const broker = testBroker();
    const events = record(broker);
    await connected(broker);
    expect(events[0]?.[1]).toMatchObject({
      transport: 'tcp',
      remoteAddress: 'tcp',
      user: undefined,
    });
  });

  it('emits disconnect but no connect for a connection that ends before CONNECT', async () => {
    const broker = testBroker();
    const events = record(broker);
    const client = memoryClient(broker);
    client.end();
    await waitUntil(() => events.length > 0, 5000, 'an event');
    expect(events).toEqual([
      ['disconnect', expect.objectContaining({ error: undefined, reason: 'socket-closed' })],
    ]);
  });

  it('emits disconnect when the client drops the connection, without unsubscribe events', async () => {
    const broker = testBroker();
    const events = record(broker);
    const client = await connected(broker);
    client.send('SUBSCRIBE\nid:1\ndestination:/topic/a\nreceipt:s\n\n\0');
    await client.receipt('s');
    client.destroy();
    await waitUntil(() => events.some(([name]) => name === 'disconnect'), 5000, 'disconnect');
    expect(events.map(([name]) => name)).toEqual(['connect', 'subscribe', 'disconnect']);
    expect(events[2]?.[1]).toMatchObject({ reason: 'socket-closed', error: undefined });
    expect(broker.sessions.size).toBe(0);
  });

  it('counts a user online while a session of theirs is connected', async () => {
    const broker = testBroker({ users: USERS });
    expect(broker.whereIs('bob')).toEqual([]);
    const first = await connected(broker, { login: 'bob', passcode: 'b-secret' });
    const second = await connected(broker, { login: 'bob', passcode: 'b-secret' });
    expect(broker.whereIs('bob')).toHaveLength(1);
    first.send('DISCONNECT\n\n\0');
    await first.closed;
    expect(broker.whereIs('bob')).toHaveLength(1);
    second.send('DISCONNECT\n\n\0');
    await second.closed;
    expect(broker.whereIs('bob')).toEqual([]);
  });
});

describe('transactions (STOMP 1.2 "BEGIN", "COMMIT", "ABORT")', () => {
  it('applies the frames of a transaction at COMMIT, in order', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send(
      'SUBSCRIBE\nid:1\ndestination:/topic/tx\n\n\0' +
        'BEGIN\ntransaction:t\n\n\0' +
        'SEND\ndestination:/topic/tx\ntransaction:t\n\nfirst\0' +
        'SEND\ndestination:/topic/tx\ntransaction:t\n\nsecond\0' +
        'SEND\ndestination:/topic/tx\nreceipt:outside\n\noutside\0',
    );
    await client.receipt('outside');
    expect(client.all('MESSAGE').map(bodyText)).toEqual(['outside']);
    client.send('COMMIT\ntransaction:t\nreceipt:c\n\n\0');
    await client.receipt('c');
    const got = await client.messages(3);
    expect(got.map(bodyText)).toEqual(['outside', 'first', 'second']);
    // A MESSAGE does not carry the transaction header of its SEND.
    expect(got.map((m) => getHeader(m, 'transaction'))).toEqual([undefined, undefined, undefined]);
  });

  it('discards the frames of an aborted transaction', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send(
      'SUBSCRIBE\nid:1\ndestination:/topic/tx\n\n\0' +
        'BEGIN\ntransaction:t\n\n\0' +
        'SEND\ndestination:/topic/tx\ntransaction:t\n\ndropped\0' +
        'SEND\ndestination:/queue/tx\ntransaction:t\n\ndropped too\0' +
        'ABORT\ntransaction:t\n\n\0' +
        'SEND\ndestination:/topic/tx\nreceipt:after\n\nafter\0',
    );
    await client.receipt('after');
    expect((await client.messages(1)).map(bodyText)).toEqual(['after']);
    expect(client.all('MESSAGE')).toHaveLength(1);
    expect(broker.queueDepth('/queue/tx')).toBe(0);
  });

  it('refuses a COMMIT whose ACK names nothing pending before applying any of its frames', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send(
      'BEGIN\ntransaction:t\n\n\0' +
        'SEND\ndestination:/queue/atomic\ntransaction:t\n\nnot yet\0' +
        'ACK\nid:999\ntransaction:t\n\n\0' +
        'COMMIT\ntransaction:t\nreceipt:c\n\n\0',
    );
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_UNKNOWN_ACK');
    expect(getHeader(error, 'receipt-id')).toBe('c');
    expect(broker.queueDepth('/queue/atomic')).toBe(0);
  });

  it('applies an ACK in a transaction only at COMMIT, and never after ABORT', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send('SUBSCRIBE\nid:1\ndestination:/queue/txa\nack:client-individual\n\n\0');
    await broker.publish('/queue/txa', 'x');
    const [m] = await client.messages(1);
    const ack = getHeader(m as Frame, 'ack');
    client.send(
      `BEGIN\ntransaction:t\n\n\0ACK\nid:${ack}\ntransaction:t\n\n\0ABORT\ntransaction:t\n\n\0`,
    );
    // Aborted: the message is still pending, so a NACK of it is known and redelivers it.
    client.send(`NACK\nid:${ack}\nreceipt:n\n\n\0`);
    await client.receipt('n');
    const [, again] = await client.messages(2);
    expect(getHeader(again as Frame, 'redelivered')).toBe('true');
    const ack2 = getHeader(again as Frame, 'ack');
    client.send(`BEGIN\ntransaction:u\n\n\0ACK\nid:${ack2}\ntransaction:u\nreceipt:in\n\n\0`);
    await client.receipt('in');
    client.send('COMMIT\ntransaction:u\nreceipt:c\n\n\0');
    await client.receipt('c');
    // Committed: the ack id is settled, so acking it again is unknown.
    client.send(`ACK\nid:${ack2}\nreceipt:again\n\n\0`);
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_UNKNOWN_ACK');
    expect(getHeader(error, 'receipt-id')).toBe('again');
  });

  it.each([
    ['COMMIT', 'COMMIT\ntransaction:nope\nreceipt:r\n\n\0'],
    ['ABORT', 'ABORT\ntransaction:nope\nreceipt:r\n\n\0'],
    ['a SEND', 'SEND\ndestination:/topic/x\ntransaction:nope\nreceipt:r\n\nx\0'],
    ['an ACK', 'ACK\nid:1\ntransaction:nope\nreceipt:r\n\n\0'],
    ['a NACK', 'NACK\nid:1\ntransaction:nope\nreceipt:r\n\n\0'],
  ])(
    'refuses %s naming an unknown transaction with STOMP_ERR_UNKNOWN_TRANSACTION',
    async (_, wire) => {
      const broker = testBroker();
      const client = await connected(broker);
      client.send(wire);
      const error = await client.expectErrorAndClose();
      expect(code(error)).toBe('STOMP_ERR_UNKNOWN_TRANSACTION');
      expect(getHeader(error, 'receipt-id')).toBe('r');
    },
  );

  it('refuses a COMMIT of a transaction already committed with STOMP_ERR_UNKNOWN_TRANSACTION', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send('BEGIN\ntransaction:t\n\n\0COMMIT\ntransaction:t\n\n\0COMMIT\ntransaction:t\n\n\0');
    expect(code(await client.expectErrorAndClose())).toBe('STOMP_ERR_UNKNOWN_TRANSACTION');
  });

  it('refuses a second BEGIN of an open transaction with STOMP_ERR_DUPLICATE_TRANSACTION', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send('BEGIN\ntransaction:t\n\n\0BEGIN\ntransaction:t\nreceipt:dup\n\n\0');
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_DUPLICATE_TRANSACTION');
    expect(getHeader(error, 'receipt-id')).toBe('dup');
  });

  it('lets a transaction id be used again once committed or aborted', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send(
      'BEGIN\ntransaction:t\n\n\0COMMIT\ntransaction:t\n\n\0' +
        'BEGIN\ntransaction:t\n\n\0ABORT\ntransaction:t\n\n\0' +
        'BEGIN\ntransaction:t\nreceipt:again\n\n\0',
    );
    await client.receipt('again');
    expect(client.all('ERROR')).toHaveLength(0);
  });

  it('refuses a BEGIN past maxTransactions with STOMP_ERR_TOO_MANY_TRANSACTIONS', async () => {
    const broker = testBroker({ maxTransactions: 2 });
    const client = await connected(broker);
    client.send('BEGIN\ntransaction:a\n\n\0BEGIN\ntransaction:b\nreceipt:two\n\n\0');
    await client.receipt('two');
    client.send('BEGIN\ntransaction:c\nreceipt:three\n\n\0');
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_TOO_MANY_TRANSACTIONS');
    expect(getHeader(error, 'receipt-id')).toBe('three');
  });

  it('frees a transaction slot at COMMIT', async () => {
    const broker = testBroker({ maxTransactions: 1 });
    const client = await connected(broker);
    client.send(
      'BEGIN\ntransaction:a\n\n\0COMMIT\ntransaction:a\n\n\0BEGIN\ntransaction:b\nreceipt:b\n\n\0',
    );
    await client.receipt('b');
    expect(client.all('ERROR')).toHaveLength(0);
  });

  it('refuses a frame past maxTransactionFrames with STOMP_ERR_TRANSACTION_TOO_LARGE', async () => {
    const broker = testBroker({ maxTransactionFrames: 3 });
    const client = await connected(broker);
    client.send('BEGIN\ntransaction:t\n\n\0');
    for (let i = 0; i < 3; i++)
      client.send(`SEND\ndestination:/queue/big\ntransaction:t\n\n${i}\0`);
    client.send('SEND\ndestination:/queue/big\ntransaction:t\nreceipt:fourth\n\n3\0');
    const error = await client.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_TRANSACTION_TOO_LARGE');
    expect(getHeader(error, 'receipt-id')).toBe('fourth');
    expect(broker.queueDepth('/queue/big')).toBe(0);
  });

  it('discards an open transaction when the connection ends', async () => {
    const broker = testBroker();
    const client = await connected(broker);
    client.send(
      'BEGIN\ntransaction:t\n\n\0SEND\ndestination:/queue/txd\ntransaction:t\n\nlost\0DISCONNECT\nreceipt:bye\n\n\0',
    );
    await client.closed;
    expect(receiptIds(client)).toEqual(['bye']);
    expect(broker.queueDepth('/queue/txd')).toBe(0);
  });
});

describe('the in-memory duplex pair (the helper these specs stand on)', () => {
  it('delivers writes to the other end, in order and in a later turn', async () => {
    const { client, server } = duplexPair();
    const got: string[] = [];
    server.on('data', (chunk: Buffer) => got.push(chunk.toString()));
    client.write('a');
    client.write('b');
    expect(got).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(got.join('')).toBe('ab');
    client.destroy();
  });

  it('backs the writer up while the reader does not read, and drains when it does', async () => {
    const { client, server } = duplexPair({ highWaterMark: 64 });
    server.pause();
    let ok = true;
    for (let i = 0; i < 10 && ok; i++) ok = client.write(Buffer.alloc(32));
    expect(ok).toBe(false);
    const drained = new Promise((resolve) => client.once('drain', resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(client.writableLength).toBeGreaterThan(0);
    let read = 0;
    server.on('data', (chunk: Buffer) => {
      read += chunk.length;
    });
    server.resume();
    await drained;
    expect(client.writableLength).toBe(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(read).toBe(32 * 3);
    client.destroy();
  });

  it('closes both ends when one ends, after the other has read what was sent', async () => {
    const { client, server } = duplexPair();
    let read = '';
    server.on('data', (chunk: Buffer) => {
      read += chunk.toString();
    });
    client.resume();
    const closed = Promise.all([
      new Promise((resolve) => client.once('close', resolve)),
      new Promise((resolve) => server.once('close', resolve)),
    ]);
    client.end('last words');
    await closed;
    expect(read).toBe('last words');
  });

  it('closes the other end when one is destroyed', async () => {
    const { client, server } = duplexPair();
    server.resume();
    const closed = new Promise((resolve) => server.once('close', resolve));
    client.destroy();
    await closed;
    expect(server.destroyed).toBe(true);
  });
});

/** A fan-out whose bus confirms each publish only when `gate` settles (a slow Kafka). */
function slowFanout(gate: Promise<void>, published: Outgoing[] = []): Fanout {
  return fanoutAnswering(() => gate, published);
}
