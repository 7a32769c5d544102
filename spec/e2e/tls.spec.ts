import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { Client } from '@stomp/stompjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { StompError } from '../../src/errors.js';
import { SERVER_COMMANDS } from '../../src/frame/frame.js';
import { type Frame, FrameParser, getHeader } from '../../src/frame/index.js';
import { startServer } from '../helpers/server.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';

let dir: string;
let certFile: string;
let keyFile: string;
/** The self-signed certificate, trusted by the clients as their only CA. */
let ca: Buffer;

beforeAll(() => {
  // CI must run these: a missing openssl fails the file instead of skipping it.
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
  } catch (error) {
    throw new Error('tls.spec.ts needs the openssl command to make its certificate', {
      cause: error,
    });
  }
  dir = mkdtempSync(join(tmpdir(), 'stompbus-tls-'));
  certFile = join(dir, 'cert.pem');
  keyFile = join(dir, 'key.pem');
  // The subjectAltName lets clients verify the certificate against 127.0.0.1
  // itself rather than turning verification off.
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1'],
      ...['-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
      ...['-keyout', keyFile, '-out', certFile],
    ],
    { stdio: 'pipe' },
  );
  ca = readFileSync(certFile);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sockets = new Set<{ destroy(): void }>();

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
});

/** A stompbus serving wss:// and STOMP over TLS with the test certificate. */
function startTlsServer() {
  return startServer({ tlsCert: certFile, tlsKey: keyFile });
}

/** A @stomp/stompjs client over wss:// that trusts only the test certificate. */
function wssClient(url: string): Promise<Client> {
  return stompClient(url, { webSocketFactory: () => new WebSocket(url, ['v12.stomp'], { ca }) });
}

/** Subscribes and waits for the RECEIPT that shows the broker has the subscription. */
function subscribed(client: Client, destination: string, inbox: Inbox): Promise<void> {
  const receipt = `sub-${Math.random().toString(36).slice(2)}`;
  const done = new Promise<void>((resolve) => client.watchForReceipt(receipt, () => resolve()));
  client.subscribe(destination, inbox.take, { receipt });
  return done;
}

/** STOMP over TLS with raw frames: writes bytes, records what the server sends. */
class TlsStompClient {
  readonly frames: Frame[] = [];
  parseError: StompError | undefined;
  private readonly parser = new FrameParser({
    commands: SERVER_COMMANDS,
    onFrame: (frame) => this.frames.push(frame),
    onError: (error) => {
      this.parseError = error;
    },
  });

  private constructor(readonly socket: TLSSocket) {
    socket.on('data', (chunk: Buffer) => this.parser.push(chunk));
    // A reset while the server stops after the test is not this client's failure.
    socket.on('error', () => {});
  }

  /** Connects to `port` on loopback, verifying the server against the test CA. */
  static open(port: number): Promise<TlsStompClient> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca }, () =>
        resolve(new TlsStompClient(socket)),
      );
      sockets.add(socket);
      socket.on('error', reject);
      socket.setTimeout(5000, () => socket.destroy(new Error('TLS connect timed out')));
    });
  }

  send(command: string, headers: Record<string, string>, body = ''): void {
    const lines = Object.entries(headers)
      .map(([k, v]) => `${k}:${v}\n`)
      .join('');
    this.socket.write(`${command}\n${lines}\n${body}\0`);
  }

  /** Waits up to 5 s for a frame that `match` accepts. */
  async next(match: (frame: Frame) => boolean, what: string): Promise<Frame> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const frame = this.frames.find(match);
      if (frame) return frame;
      if (this.parseError) throw this.parseError;
      if (Date.now() > deadline) {
        const got = this.frames.map((f) => f.command).join(', ') || 'nothing';
        throw new Error(`timed out waiting for ${what}; got ${got}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

describe('stompbus with a TLS certificate and key', () => {
  it('serves @stomp/stompjs over wss:// with a certificate the client verifies', async () => {
    const server = await startTlsServer();
    expect(server.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/stomp$/);
    const [publisher, subscriber] = [await wssClient(server.url), await wssClient(server.url)];
    const inbox = new Inbox();
    await subscribed(subscriber, '/topic/secure', inbox);
    await publishWithReceipt(publisher, { destination: '/topic/secure', body: 'over wss' });
    const [message] = await inbox.waitFor(1);
    expect(message?.body).toBe('over wss');
  });

  it('speaks STOMP over TLS on the TCP port: CONNECT, SUBSCRIBE, SEND, MESSAGE', async () => {
    const server = await startTlsServer();
    const client = await TlsStompClient.open(server.tcpPort as number);
    expect(client.socket.authorized).toBe(true);
    client.send('CONNECT', { 'accept-version': '1.2', host: 'localhost' });
    const connected = await client.next((f) => f.command === 'CONNECTED', 'CONNECTED');
    expect(getHeader(connected, 'version')).toBe('1.2');
    client.send('SUBSCRIBE', { id: 's1', destination: '/queue/tls', receipt: 'sub' });
    client.send('SEND', { destination: '/queue/tls', 'content-type': 'text/plain' }, 'hello tls');
    const message = await client.next((f) => f.command === 'MESSAGE', 'MESSAGE');
    expect(getHeader(message, 'subscription')).toBe('s1');
    expect(getHeader(message, 'destination')).toBe('/queue/tls');
    expect(Buffer.from(message.body).toString()).toBe('hello tls');
    expect(client.frames.map((f) => f.command)).toEqual(['CONNECTED', 'RECEIPT', 'MESSAGE']);
  });

  it('delivers between a wss:// client and a STOMP-over-TLS client', async () => {
    const server = await startTlsServer();
    const browser = await wssClient(server.url);
    const inbox = new Inbox();
    await subscribed(browser, '/topic/mixed', inbox);
    const tls = await TlsStompClient.open(server.tcpPort as number);
    tls.send('CONNECT', { 'accept-version': '1.2', host: 'localhost' });
    await tls.next((f) => f.command === 'CONNECTED', 'CONNECTED');
    tls.send('SEND', { destination: '/topic/mixed', receipt: 'r1' }, 'from tls');
    await tls.next((f) => f.command === 'RECEIPT', 'RECEIPT');
    const [message] = await inbox.waitFor(1);
    expect(message?.body).toBe('from tls');
  });

  it('refuses a plain ws:// connection to the TLS port', async () => {
    const server = await startTlsServer();
    const plainUrl = server.url.replace(/^wss:/, 'ws:');
    const ws = new WebSocket(plainUrl, ['v12.stomp']);
    sockets.add({ destroy: () => ws.terminate() });
    const outcome = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), 5000);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve('open');
      });
      ws.on('error', () => {
        clearTimeout(timer);
        resolve('error');
      });
    });
    expect(outcome).toBe('error');
    // The failed handshake costs nobody else anything.
    await expect(wssClient(server.url)).resolves.toBeInstanceOf(Client);
  });

  it('sends no STOMP frame to a plain TCP client on the TLS port', async () => {
    const server = await startTlsServer();
    const socket = netConnect(server.tcpPort as number, '127.0.0.1');
    sockets.add(socket);
    let received = '';
    socket.setEncoding('latin1').on('data', (d: string) => {
      received += d;
    });
    socket.on('error', () => {});
    socket.write('CONNECT\naccept-version:1.2\nhost:localhost\n\n\0');
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    expect(closed).toBe(true);
    expect(received).not.toContain('CONNECTED');
  });
});
