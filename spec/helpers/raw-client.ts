import { connect as netConnect, type Socket } from 'node:net';
import WebSocket from 'ws';
import type { StompError } from '../../src/errors.js';
import { SERVER_COMMANDS } from '../../src/frame/frame.js';
import { type Frame, FrameParser, getHeader } from '../../src/frame/index.js';

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
  heartbeats = 0;
  parseError: StompError | undefined;
  readonly closed: Promise<Closed>;
  private readonly parser: FrameParser;
  private waiters: Array<() => void> = [];
  private write: (data: string | Buffer) => void;
  private end: () => void;
  private pause: () => void;
  private resume: () => void;
  /** True once the connection has closed. */
  isClosed = false;

  private constructor(kind: 'tcp' | 'ws', target: string | number, protocols: string[]) {
    this.parser = new FrameParser({
      commands: SERVER_COMMANDS,
      onFrame: (f) => {
        this.frames.push(f);
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
    if (kind === 'tcp') {
      const socket: Socket = netConnect(target as number, '127.0.0.1');
      socket.on('data', (d: Buffer) => this.parser.push(d));
      socket.on('error', () => {});
      this.write = (data) => socket.write(data);
      this.end = () => socket.destroy();
      this.pause = () => socket.pause();
      this.resume = () => socket.resume();
      this.closed = new Promise((resolve) =>
        socket.on('close', () => this.markClosed(resolve, {})),
      );
      this.opened = new Promise((resolve) => socket.on('connect', () => resolve()));
    } else {
      const ws = new WebSocket(target as string, protocols);
      ws.binaryType = 'nodebuffer';
      ws.on('message', (d: Buffer) => this.parser.push(d));
      ws.on('error', () => {});
      this.write = (data) => ws.send(data);
      this.end = () => ws.terminate();
      this.pause = () => ws.pause();
      this.resume = () => ws.resume();
      this.closed = new Promise((resolve) =>
        ws.on('close', (code: number) => this.markClosed(resolve, { code })),
      );
      this.opened = new Promise((resolve) => ws.on('open', () => resolve()));
      this.ws = ws;
    }
  }

  private readonly opened: Promise<void>;
  /** The underlying WebSocket, for WebSocket clients. */
  ws: WebSocket | undefined;

  /** Opens a raw TCP connection to `port` on loopback. */
  static async tcp(port: number): Promise<RawClient> {
    const client = new RawClient('tcp', port, []);
    await client.opened;
    return client;
  }

  /** Opens a raw WebSocket to `url` offering `protocols`. */
  static async ws(url: string, protocols: string[] = ['v12.stomp']): Promise<RawClient> {
    const client = new RawClient('ws', url, protocols);
    await client.opened;
    return client;
  }

  /** Sends bytes as they are. */
  send(data: string | Buffer): void {
    this.write(data);
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
  async waitFor<T>(check: () => T | undefined, timeoutMs = 5000, what = 'a condition'): Promise<T> {
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

  /** Stops reading from the socket, so the server's output backs up. */
  pauseReading(): void {
    this.pause();
  }

  /** Reads from the socket again. */
  resumeReading(): void {
    this.resume();
  }

  /** Closes the connection at once. */
  destroy(): void {
    this.end();
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
