/**
 * The broker embedded in an app's own servers (docs/api.md): STOMP over
 * `net.createServer(broker.handle)` and over `attachWebSocket` on a plain
 * `node:http` server, in both its modes, with the real stompjs client.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import type { IMessage } from '@stomp/stompjs';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { attachWebSocket, createBroker, type StompBroker } from '../../src/index.js';
import { stompClient } from '../helpers/stomp-client.js';

const brokers: StompBroker[] = [];
const cleanups: Array<() => Promise<unknown> | unknown> = [];

afterEach(async () => {
  // Brokers first: closing them ends the connections the servers wait for.
  await Promise.all(brokers.splice(0).map((b) => b.close(500)));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function broker(): StompBroker {
  const b = createBroker({ closeTimeoutMs: 500 });
  brokers.push(b);
  return b;
}

async function listening(server: Server | ReturnType<typeof createNetServer>): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as AddressInfo).port;
}

/** What an upgrade to `url` gets: 101 (opened) or the HTTP status that refused it. */
function upgrade(url: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, ['v12.stomp']);
    ws.on('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('error', () => resolve(0));
  });
}

/** One message published from app code, received by a stompjs client. */
async function roundTrip(b: StompBroker, target: string | number): Promise<string> {
  const client = await stompClient(target);
  const got = new Promise<IMessage>((resolve) => client.subscribe('/topic/app', resolve));
  // The SUBSCRIBE is on the wire before the publish: a receipt-less round trip through a queue.
  await new Promise<void>((resolve) => {
    client.watchForReceipt('sub-ready', () => resolve());
    client.publish({ destination: '/queue/sync', headers: { receipt: 'sub-ready' } });
  });
  await b.publish('/topic/app', 'from the app', { 'x-from': 'code' });
  const message = await got;
  return `${message.body} ${message.headers['x-from']}`;
}

describe('the broker embedded in an app', () => {
  it('serves STOMP over TCP through net.createServer(broker.handle)', async () => {
    const b = broker();
    const port = await listening(createNetServer(b.handle));
    expect(await roundTrip(b, port)).toBe('from the app code');
  });

  it('shares a node:http server: its own routes answer, /stomp speaks STOMP', async () => {
    const b = broker();
    const http = createServer((_req, res) => res.end('the app'));
    attachWebSocket(b, { server: http, path: '/stomp' });
    const port = await listening(http);
    expect(await (await fetch(`http://127.0.0.1:${port}/anything`)).text()).toBe('the app');
    expect(await roundTrip(b, `ws://127.0.0.1:${port}/stomp`)).toBe('from the app code');
  });

  it("leaves upgrades to other paths to the app's own WebSocket server", async () => {
    const b = broker();
    const http = createServer();
    const other = new WebSocketServer({ noServer: true });
    cleanups.push(() => other.close());
    http.on('upgrade', (req, socket, head) => {
      if (req.url === '/live') other.handleUpgrade(req, socket, head, (ws) => ws.send('live'));
    });
    attachWebSocket(b, { server: http, path: '/stomp' });
    const port = await listening(http);
    const live = new WebSocket(`ws://127.0.0.1:${port}/live`);
    const [data] = await once(live, 'message');
    live.terminate();
    expect(String(data)).toBe('live');
    expect(b.sessions.size).toBe(0);
    expect(await upgrade(`ws://127.0.0.1:${port}/stomp`)).toBe(101);
  });

  it('answers 404 to an upgrade nobody takes instead of leaving it hanging', async () => {
    const b = broker();
    const http = createServer();
    attachWebSocket(b, { server: http, path: '/stomp' });
    const port = await listening(http);
    expect(await upgrade(`ws://127.0.0.1:${port}/elsewhere`)).toBe(404);
  });

  it('serves through handleUpgrade with noServer, from the app’s own upgrade handler', async () => {
    const b = broker();
    const endpoint = attachWebSocket(b, { noServer: true, path: '/ws/stomp' });
    const http = createServer();
    http.on('upgrade', (req, socket, head) => {
      if (endpoint.matches(req)) endpoint.handleUpgrade(req, socket, head);
      else socket.end('HTTP/1.1 418 I am a teapot\r\n\r\n');
    });
    const port = await listening(http);
    expect(await upgrade(`ws://127.0.0.1:${port}/other`)).toBe(418);
    expect(await roundTrip(b, `ws://127.0.0.1:${port}/ws/stomp?token=x`)).toBe('from the app code');
  });

  it('stops taking upgrades once the endpoint is closed', async () => {
    const b = broker();
    const http = createServer();
    const endpoint = attachWebSocket(b, { server: http, path: '/stomp' });
    const port = await listening(http);
    expect(await upgrade(`ws://127.0.0.1:${port}/stomp`)).toBe(101);
    endpoint.close();
    http.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 410 Gone\r\n\r\n'));
    expect(await upgrade(`ws://127.0.0.1:${port}/stomp`)).toBe(410);
  });

  it('tells who connected, over which transport, from where', async () => {
    const b = broker();
    const seen: string[] = [];
    b.on('connect', ({ transport, remoteAddress }) => seen.push(`${transport} ${remoteAddress}`));
    const http = createServer();
    attachWebSocket(b, { server: http, path: '/stomp' });
    const wsPort = await listening(http);
    const tcpPort = await listening(createNetServer(b.handle));
    await stompClient(`ws://127.0.0.1:${wsPort}/stomp`);
    await stompClient(tcpPort);
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatch(/^ws 127\.0\.0\.1:\d+$/);
    expect(seen[1]).toMatch(/^tcp 127\.0\.0\.1:\d+$/);
  });
});
