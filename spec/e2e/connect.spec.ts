import { Client, type IFrame } from '@stomp/stompjs';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { getHeader } from '../../src/frame/index.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer } from '../helpers/server.js';
import { expectOthersUnaffected } from '../helpers/unaffected.js';

describe('CONNECT (STOMP 1.2 "Connecting")', () => {
  it('answers CONNECTED with version, heart-beat, session and server', async () => {
    const server = await startServer({ heartbeat: [0, 0] });
    const client = await RawClient.ws(server.url);
    const connected = await client.connect({ 'accept-version': '1.0,1.1,1.2' });
    expect(getHeader(connected, 'version')).toBe('1.2');
    expect(getHeader(connected, 'heart-beat')).toBe('0,0');
    expect(getHeader(connected, 'session')).toMatch(/.+/);
    expect(getHeader(connected, 'server')).toMatch(/^stompbus\/\d+\.\d+\.\d+/);
  });

  it('accepts the STOMP command as CONNECT', async () => {
    const server = await startServer();
    const client = await RawClient.tcp(server.tcpPort as number);
    client.send('STOMP\naccept-version:1.2\nhost:localhost\n\n\0');
    expect(getHeader(await client.next('CONNECTED'), 'version')).toBe('1.2');
  });

  it('picks the highest common version, and 1.0 when accept-version is missing', async () => {
    const server = await startServer();
    const a = await RawClient.tcp(server.tcpPort as number);
    expect(getHeader(await a.connect({ 'accept-version': '1.1,1.0' }), 'version')).toBe('1.1');
    const b = await RawClient.tcp(server.tcpPort as number);
    b.send('CONNECT\n\n\0');
    expect(getHeader(await b.next('CONNECTED'), 'version')).toBe('1.0');
  });

  it('sends ERROR with the supported versions and closes when no version matches', async () => {
    const server = await startServer();
    const client = await RawClient.ws(server.url);
    client.send('CONNECT\naccept-version:2.0,1.3\nhost:x\n\n\0');
    const error = await client.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_UNSUPPORTED_VERSION');
    expect(getHeader(error, 'version')).toBe('1.2,1.1,1.0');
    await expectOthersUnaffected(server);
  });

  it('negotiates the best WebSocket sub-protocol the client offers', async () => {
    const server = await startServer();
    const a = await RawClient.ws(server.url, ['v10.stomp', 'v12.stomp', 'v11.stomp']);
    expect(a.ws?.protocol).toBe('v12.stomp');
    const b = await RawClient.ws(server.url, ['v11.stomp']);
    expect(b.ws?.protocol).toBe('v11.stomp');
  });

  it('accepts any credentials when no users are configured', async () => {
    const server = await startServer();
    const client = await RawClient.ws(server.url);
    const connected = await client.connect({ login: 'anyone', passcode: 'anything' });
    expect(getHeader(connected, 'user-name')).toBe('anyone');
  });

  it('checks login and passcode against the configured users', async () => {
    const server = await startServer({ users: new Map([['alice', 's3cret']]) });
    const good = await RawClient.ws(server.url);
    await good.connect({ login: 'alice', passcode: 's3cret' });

    for (const headers of [
      { login: 'alice', passcode: 'wrong' },
      { login: 'bob', passcode: 'x' },
      {},
    ]) {
      const bad = await RawClient.ws(server.url);
      bad.send(
        `CONNECT\naccept-version:1.2\nhost:h\n${Object.entries(headers)
          .map(([k, v]) => `${k}:${v}\n`)
          .join('')}\n\0`,
      );
      const error = await bad.expectErrorAndClose();
      expect(getHeader(error, 'message')).toBe('STOMP_ERR_AUTH_FAILED');
    }
    // The good client still works.
    good.send('SUBSCRIBE\nid:1\ndestination:/topic/t\nreceipt:r\n\n\0');
    await good.receipt('r');
  });

  it('refuses a frame before CONNECT with ERROR and close', async () => {
    const server = await startServer();
    const client = await RawClient.tcp(server.tcpPort as number);
    client.send('SEND\ndestination:/topic/a\nreceipt:9\n\nx\0');
    const error = await client.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_NOT_CONNECTED');
    expect(getHeader(error, 'receipt-id')).toBe('9');
    await expectOthersUnaffected(server, 'tcp');
  });

  it('closes a connection that never sends CONNECT', async () => {
    const server = await startServer({ connectTimeoutMs: 200 });
    const client = await RawClient.ws(server.url);
    const error = await client.expectErrorAndClose(3000);
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_CONNECT_TIMEOUT');
    await expectOthersUnaffected(server);
  });

  it('refuses a second CONNECT', async () => {
    const server = await startServer();
    const client = await RawClient.ws(server.url);
    await client.connect();
    client.send('CONNECT\naccept-version:1.2\nhost:h\n\n\0');
    expect(getHeader(await client.expectErrorAndClose(), 'message')).toBe(
      'STOMP_ERR_ALREADY_CONNECTED',
    );
  });

  it('refuses a malformed heart-beat header', async () => {
    const server = await startServer();
    const client = await RawClient.ws(server.url);
    client.send('CONNECT\naccept-version:1.2\nhost:h\nheart-beat:fast\n\n\0');
    expect(getHeader(await client.expectErrorAndClose(), 'message')).toBe(
      'STOMP_ERR_INVALID_HEADER',
    );
  });
});

describe('heart-beats (STOMP 1.2 "Heart-beating")', () => {
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    await Promise.all(stops.splice(0).map((stop) => stop()));
  });

  it('negotiates each direction as the larger of offer and wish, 0 meaning none', async () => {
    const server = await startServer({ heartbeat: [50, 80], heartbeatMin: 10 });
    const a = await RawClient.ws(server.url);
    expect(getHeader(await a.connect({ 'heart-beat': '100,20' }), 'heart-beat')).toBe('50,100');
    const b = await RawClient.ws(server.url);
    expect(getHeader(await b.connect({ 'heart-beat': '0,0' }), 'heart-beat')).toBe('0,0');
    const c = await RawClient.ws(server.url);
    expect(getHeader(await c.connect({ 'heart-beat': '0,200' }), 'heart-beat')).toBe('200,0');
  });

  it('gives @stomp/stompjs the 1000,1000 it asks for at the defaults, and keeps it connected', async () => {
    const server = await startServer();
    const connected = new Promise<IFrame>((resolve) => {
      const client = new Client({
        webSocketFactory: () => new WebSocket(server.url, ['v12.stomp']),
        reconnectDelay: 0,
        heartbeatIncoming: 1000,
        heartbeatOutgoing: 1000,
        onConnect: resolve,
      });
      client.activate();
      stops.push(() => client.deactivate({ force: true }));
    });
    const frame = await connected;
    // The server's side defaults to the floor (100,100): the larger of the two is the client's.
    expect(frame.headers['heart-beat']).toBe('1000,1000');
    const [session] = server.sessions;
    expect(session?.connected).toBe(true);
    // Idle for 3.5 s: the server beats within stompjs's 1 s wish, stompjs within the
    // server's 2 s tolerance, so neither side gives up on the other.
    await new Promise((resolve) => setTimeout(resolve, 3500));
    expect(session?.connected).toBe(true);
    expect(server.sessions.size).toBe(1);
  });

  it('raises a raw CONNECT asking below the floor to the 100 ms floor', async () => {
    const server = await startServer();
    const client = await RawClient.tcp(server.tcpPort as number);
    const frame = await client.connect({ 'heart-beat': '0,5' });
    expect(getHeader(frame, 'heart-beat')).toBe('100,0');
    const from = Date.now();
    await client.waitFor(() => client.heartbeats >= 10, 5000, '10 heart-beats');
    // Checked every 50 ms (half the interval): ten beats take no less than about 450 ms,
    // where the 5 ms asked for would have taken 25 ms.
    expect(Date.now() - from).toBeGreaterThanOrEqual(400);
  });

  it('sends EOLs while the connection is idle', async () => {
    const server = await startServer({ heartbeat: [50, 0], heartbeatMin: 50 });
    const client = await RawClient.tcp(server.tcpPort as number);
    await client.connect({ 'heart-beat': '0,50' });
    await client.waitFor(() => client.heartbeats >= 4, 2000, '4 heart-beats');
  });

  it('closes a client that falls silent beyond twice the interval', async () => {
    const server = await startServer({ heartbeat: [0, 50], heartbeatMin: 50 });
    const client = await RawClient.ws(server.url);
    await client.connect({ 'heart-beat': '100,0' });
    const started = Date.now();
    const error = await client.expectErrorAndClose(3000);
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_HEARTBEAT_TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    await expectOthersUnaffected(server);
  });

  it('counts any inbound byte as liveness', async () => {
    const server = await startServer({ heartbeat: [0, 50], heartbeatMin: 50 });
    const client = await RawClient.ws(server.url);
    await client.connect({ 'heart-beat': '100,0' });
    const beat = setInterval(() => client.send('\n'), 60);
    await new Promise((resolve) => setTimeout(resolve, 600));
    clearInterval(beat);
    expect(client.all('ERROR')).toHaveLength(0);
    client.send('SUBSCRIBE\nid:1\ndestination:/topic/x\nreceipt:alive\n\n\0');
    await client.receipt('alive');
  });
});
