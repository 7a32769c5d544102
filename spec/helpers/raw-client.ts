import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import type { StompError } from '../../src/errors.js';
import { SERVER_COMMANDS } from '../../src/frame/frame.js';
import { type Frame, FrameParser, getHeader } from '../../src/frame/index.js';

/** How a raw client writes to and stops its connection. */
interface Wire {
  write(data: string | Buffer): void;
  end(): void;
  destroy(): void;
  pause(): void;
  resume(): void;
}

/** How a raw client's connection ended. */
export interface Closed {
  /** WebSocket close code (WebSocket only). */
  code?: number;
}

/**
 * A client that writes raw bytes and records every frame the server sends:
 * for the protocol edges that a real client library would never produce.
 */
export class RawClient {
  readonly frames: Frame[] = [];
  /** When each of {@link frames} arrived (`Date.now()`), same index. */
  readonly frameTimes: number[] = [];
  heartbeats = 0;
  parseError: StompError | undefined;
  readonly closed: Promise<Closed>;
  private readonly parser: FrameParser;
  private waiters: Array<() => void> = [];
  private readonly wire: Wire;
  private readonly opened: Promise<void>;
  /** True once the connection has closed. */
  isClosed = false;
  /** The underlying WebSocket, for WebSocket clients. */
  readonly ws: WebSocket | undefined;
  /** The underlying stream, for clients over a stream (TCP or in memory). */
  readonly stream: Duplex | undefined;

  private constructor(connection: WebSocket | Duplex, opened: Promise<void>) {
    this.parser = new FrameParser({
      commands: SERVER_COMMANDS,
      onFrame: (f) => {
        this.frames.push(f);
        this.frameTimes.push(Date.now());
        this.wake();
      },
      onHeartbeat: () => {
        this.heartbeats++;
        this.wake();
      },
      onError: (e) => {
        this.parseError = e;
      },
    });
    this.opened = opened;
    const onData = (d: Buffer) => this.parser.push(d);
    if (connection instanceof WebSocket) {
      const ws = connection;
      this.ws = ws;
      ws.binaryType = 'nodebuffer';
      ws.on('message', onData);
      ws.on('error', () => {});
      this.wire = {
        write: (data) => ws.send(data),
        end: () => ws.close(),
        destroy: () => ws.terminate(),
        pause: () => ws.pause(),
        resume: () => ws.resume(),
      };
      this.closed = new Promise((resolve) =>
        ws.on('close', (code: number) => this.markClosed(resolve, { code })),
      );
    } else {
      const stream = connection;
      this.stream = stream;
      stream.on('data', onData);
      stream.on('error', () => {});
      this.wire = {
        write: (data) => stream.write(data),
        end: () => stream.end(),
        destroy: () => stream.destroy(),
        pause: () => stream.pause(),
        resume: () => stream.resume(),
      };
      this.closed = new Promise((resolve) =>
        stream.on('close', () => this.markClosed(resolve, {})),
      );
    }
  }

  /** Opens a raw TCP connection to `port` on loopback. */
  static async tcp(port: number): Promise<RawClient> {
    const socket: Socket = netConnect(port, '127.0.0.1');
    const client = new RawClient(
      socket,
      once(socket, 'connect').then(() => {}),
    );
    await client.opened;
    return client;
  }

  /** Opens a raw WebSocket to `url` offering `protocols`. */
  static async ws(url: string, protocols: string[] = ['v12.stomp']): Promise<RawClient> {
    const ws = new WebSocket(url, protocols);
    const client = new RawClient(
      ws,
      once(ws, 'open').then(() => {}),
    );
    await client.opened;
    return client;
  }

  /** A client over a duplex stream that is open already (an in-memory pair's end). */
  static over(stream: Duplex): RawClient {
    return new RawClient(stream, Promise.resolve());
  }

  /** Sends bytes as they are. */
  send(data: string | Buffer): void {
    this.wire.write(data);
  }

  /** Sends CONNECT and waits for CONNECTED. */
  async connect(headers: Record<string, string> = {}): Promise<Frame> {
    const lines = Object.entries({ 'accept-version': '1.2', host: 'localhost', ...headers })
      .map(([k, v]) => `${k}:${v}\n`)
      .join('');
    this.send(`CONNECT\n${lines}\n\0`);
    return this.next('CONNECTED');
  }

  /** Waits for the first frame with `command` that no earlier call returned. */
  async next(command: string, timeoutMs = 5000): Promise<Frame> {
    const found = await this.waitFor(
      () => this.frames.find((f) => f.command === command && !this.taken.has(f)),
      timeoutMs,
      `a ${command} frame`,
    );
    this.taken.add(found);
    return found;
  }

  private taken = new Set<Frame>();

  /** Waits for a RECEIPT with this receipt-id. */
  receipt(id: string, timeoutMs = 5000): Promise<Frame> {
    return this.waitFor(
      () => this.frames.find((f) => f.command === 'RECEIPT' && getHeader(f, 'receipt-id') === id),
      timeoutMs,
      `RECEIPT ${id}`,
    );
  }

  /** Waits until `check` returns a value. */
  async waitFor<T>(
    check: () => T | undefined | false,
    timeoutMs = 5000,
    what = 'a condition',
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value !== undefined && value !== false) return value;
      const left = deadline - Date.now();
      if (left <= 0 || this.isClosed) {
        const value2 = check();
        if (value2 !== undefined && value2 !== false) return value2;
        throw new Error(
          `timed out waiting for ${what}; got ${this.frames.map((f) => f.command).join(', ') || 'nothing'}${this.isClosed ? ' (closed)' : ''}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for ERROR, then for the close; returns the ERROR frame. */
  async expectErrorAndClose(timeoutMs = 5000): Promise<Frame> {
    const error = await this.next('ERROR', timeoutMs);
    await Promise.race([
      this.closed,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('not closed after ERROR')), timeoutMs),
      ),
    ]);
    return error;
  }

  /** Frames received with `command`. */
  all(command: string): Frame[] {
    return this.frames.filter((f) => f.command === command);
  }

  /** Waits until this client holds `n` MESSAGE frames (of subscription `sub`, if given). */
  messages(n: number, sub?: string, timeoutMs = 5000): Promise<Frame[]> {
    return this.waitFor(
      () => {
        const got = this.all('MESSAGE').filter(
          (f) => sub === undefined || getHeader(f, 'subscription') === sub,
        );
        return got.length >= n ? got : undefined;
      },
      timeoutMs,
      `${n} MESSAGE frames${sub === undefined ? '' : ` of subscription ${sub}`}`,
    );
  }

  /** Stops reading from the connection, so the server's output backs up. */
  pauseReading(): void {
    this.wire.pause();
  }

  /** Reads from the connection again. */
  resumeReading(): void {
    this.wire.resume();
  }

  /** Ends the connection like a client closing its socket (FIN; WebSocket: a close). */
  end(): void {
    this.wire.end();
  }

  /** Closes the connection at once. */
  destroy(): void {
    this.wire.destroy();
  }

  private markClosed(resolve: (c: Closed) => void, c: Closed) {
    this.isClosed = true;
    this.wake();
    resolve(c);
  }

  private wake() {
    const list = this.waiters;
    this.waiters = [];
    for (const w of list) w();
  }
}
