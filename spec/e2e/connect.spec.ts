import { describe, expect, it } from 'vitest';
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
  it('negotiates each direction as the larger of offer and wish, 0 meaning none', async () => {
    const server = await startServer({ heartbeat: [50, 80] });
    const a = await RawClient.ws(server.url);
    expect(getHeader(await a.connect({ 'heart-beat': '100,20' }), 'heart-beat')).toBe('50,100');
    const b = await RawClient.ws(server.url);
    expect(getHeader(await b.connect({ 'heart-beat': '0,0' }), 'heart-beat')).toBe('0,0');
    const c = await RawClient.ws(server.url);
    expect(getHeader(await c.connect({ 'heart-beat': '0,200' }), 'heart-beat')).toBe('200,0');
  });

  it('sends EOLs while the connection is idle', async () => {
    const server = await startServer({ heartbeat: [50, 0] });
    const client = await RawClient.tcp(server.tcpPort as number);
    await client.connect({ 'heart-beat': '0,50' });
    await client.waitFor(() => client.heartbeats >= 4, 2000, '4 heart-beats');
  });

  it('closes a client that falls silent beyond twice the interval', async () => {
    const server = await startServer({ heartbeat: [0, 50] });
    const client = await RawClient.ws(server.url);
    await client.connect({ 'heart-beat': '100,0' });
    const started = Date.now();
    const error = await client.expectErrorAndClose(3000);
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_HEARTBEAT_TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    await expectOthersUnaffected(server);
  });

  it('counts any inbound byte as liveness', async () => {
    const server = await startServer({ heartbeat: [0, 50] });
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
