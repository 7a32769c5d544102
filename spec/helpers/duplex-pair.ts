/**
 * An in-memory duplex pair, and a tiny STOMP test client over one end of it:
 * for unit specs that drive a broker's session without sockets
 * (`broker.handle(pair.server)`), in the manner of aedes' tests.
 *
 * The two ends behave like the two ends of a TCP connection:
 *
 * - bytes written on one end are read on the other, in order, never in the
 *   same event-loop turn (as from a socket);
 * - each direction holds at most `highWaterMark` bytes in flight (the
 *   "kernel buffer"): past it, the writer's callbacks wait, so its
 *   `writableLength` grows, `write()` returns false and `'drain'` comes once
 *   the reader has taken the bytes. A reader that pauses backs its writer up;
 * - `end()` is a FIN: the other end reads what was sent, then `'end'`, and
 *   (both ends are not half-open) closes too; `destroy()` drops what the
 *   destroyed end had not read yet, and the other end still reads what was
 *   sent to it, then `'end'` and `'close'`. Writes towards a destroyed end are
 *   dropped, as a socket's would be lost.
 */
import { Duplex } from 'node:stream';
import { afterEach } from 'vitest';
import type { StompError } from '../../src/errors.js';
import { type Frame, FrameParser, getHeader, SERVER_COMMANDS } from '../../src/frame/index.js';
import { createBroker, type StompBroker, type StompBrokerOptions } from '../../src/stomp-broker.js';
import type { TransportKind } from '../../src/transport/connection.js';

/** Options of {@link duplexPair}. */
export interface DuplexPairOptions {
  /** Bytes in flight per direction, and both streams' high-water marks. Default 16 KiB. */
  highWaterMark?: number;
  /** What the server end reports as its peer, as a socket does (`remoteAddress:remotePort`). */
  remoteAddress?: string;
  remotePort?: number;
}

const EOF = null;

/** One end of a {@link duplexPair}. */
export class PairEnd extends Duplex {
  /** Set on the server end when given, like a socket's. */
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  /** The other end. */
  peer!: PairEnd;
  /** Bytes sent to this end and not yet pushed to its readable side (the "kernel"). */
  private readonly inbox: Array<Buffer | typeof EOF> = [];
  private inboxBytes = 0;
  private scheduled = false;
  private eofQueued = false;
  /** The peer's write callback, waiting for room here. */
  private blockedWrite: (() => void) | undefined;

  constructor(private readonly capacity: number) {
    super({ allowHalfOpen: false, highWaterMark: capacity });
  }

  /** Takes bytes (or the EOF) the peer sent; false when this end has no room left. */
  accept(chunk: Buffer | typeof EOF): boolean {
    if (this.destroyed || this.eofQueued) return true;
    if (chunk === EOF) this.eofQueued = true;
    this.inbox.push(chunk);
    if (chunk) this.inboxBytes += chunk.length;
    this.schedule();
    return this.hasRoom();
  }

  /** Holds the peer's write callback until this end has room again. */
  waitForRoom(callback: () => void): void {
    this.blockedWrite = callback;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    if (this.peer.accept(chunk)) callback();
    else this.peer.waitForRoom(callback);
  }

  override _final(callback: () => void): void {
    this.peer.accept(EOF);
    callback();
  }

  override _read(): void {
    this.schedule();
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    this.inbox.length = 0;
    this.inboxBytes = 0;
    this.releaseWriter();
    // What was sent to the peer still arrives, then its end.
    if (!this.writableFinished) this.peer.accept(EOF);
    callback(error);
  }

  private hasRoom(): boolean {
    return this.inboxBytes + this.readableLength < this.capacity;
  }

  /** Delivers the inbox (and frees a waiting writer) in a later turn, as a socket would. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pushInbox();
    });
  }

  /** Hands the inbox to the readable side while it takes more; then frees the peer's writer. */
  private pushInbox(): void {
    while (this.inbox.length > 0 && !this.destroyed) {
      const chunk = this.inbox.shift() as Buffer | typeof EOF;
      if (chunk) this.inboxBytes -= chunk.length;
      if (!this.push(chunk) || chunk === EOF) break;
    }
    if (this.hasRoom()) this.releaseWriter();
  }

  private releaseWriter(): void {
    const callback = this.blockedWrite;
    this.blockedWrite = undefined;
    callback?.();
  }
}

/** Two ends wired to each other: give `server` to the broker, use `client` in the test. */
export function duplexPair(options: DuplexPairOptions = {}): { client: PairEnd; server: PairEnd } {
  const capacity = options.highWaterMark ?? 16 * 1024;
  const client = new PairEnd(capacity);
  const server = new PairEnd(capacity);
  client.peer = server;
  server.peer = client;
  server.remoteAddress = options.remoteAddress;
  server.remotePort = options.remotePort;
  return { client, server };
}

/** What {@link memoryClient} needs of a broker. */
export interface StreamHandler {
  handle(stream: Duplex, transport?: TransportKind): void;
}

/** Options of {@link memoryClient}. */
export interface MemoryClientOptions extends DuplexPairOptions {
  /** Passed to `broker.handle`; default: none (the broker says `tcp`). */
  transport?: TransportKind;
}

/**
 * A STOMP client over the client end of a {@link duplexPair} whose server end
 * the broker serves: sends raw frame text, records every frame it gets.
 */
export class MemoryClient {
  readonly frames: Frame[] = [];
  heartbeats = 0;
  parseError: StompError | undefined;
  isClosed = false;
  /** Resolves when the connection has closed (either side). */
  readonly closed: Promise<void>;
  private readonly parser: FrameParser;
  private readonly taken = new Set<Frame>();
  private waiters: Array<() => void> = [];

  constructor(readonly stream: PairEnd) {
    this.parser = new FrameParser({
      commands: SERVER_COMMANDS,
      onFrame: (frame) => {
        this.frames.push(frame);
        this.wake();
      },
      onHeartbeat: () => {
        this.heartbeats++;
        this.wake();
      },
      onError: (error) => {
        this.parseError = error;
      },
    });
    stream.on('data', (chunk: Buffer) => this.parser.push(chunk));
    this.closed = new Promise((resolve) =>
      stream.once('close', () => {
        this.isClosed = true;
        this.wake();
        resolve();
      }),
    );
  }

  /** Sends bytes as they are (several frames in one string arrive as one chunk). */
  send(data: string | Buffer): void {
    this.stream.write(data);
  }

  /** Sends CONNECT (STOMP 1.2 unless `accept-version` says otherwise) and waits for CONNECTED. */
  connect(headers: Record<string, string> = {}): Promise<Frame> {
    const lines = Object.entries({ 'accept-version': '1.2', host: 'localhost', ...headers })
      .map(([name, value]) => `${name}:${value}\n`)
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

  /** Waits for the RECEIPT with this receipt-id. */
  receipt(id: string, timeoutMs = 5000): Promise<Frame> {
    return this.waitFor(
      () => this.frames.find((f) => f.command === 'RECEIPT' && getHeader(f, 'receipt-id') === id),
      timeoutMs,
      `RECEIPT ${id}`,
    );
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

  /** Waits until `check` (asked on every frame, and every 10 ms) returns neither undefined nor false. */
  async waitFor<T>(check: () => T | undefined | false, timeoutMs = 5000, what = 'a condition') {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value !== undefined && value !== false) return value;
      const left = deadline - Date.now();
      if (left <= 0 || this.isClosed) {
        const got = this.frames.map((f) => getHeader(f, 'message') ?? f.command).join(', ');
        throw new Error(
          `timed out waiting for ${what}; got ${got || 'nothing'}${this.isClosed ? ' (closed)' : ''}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 10));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for ERROR, then for the close; returns the ERROR frame. */
  async expectErrorAndClose(timeoutMs = 5000): Promise<Frame> {
    const error = await this.next('ERROR', timeoutMs);
    await this.waitFor(() => this.isClosed, timeoutMs, 'the close after ERROR');
    return error;
  }

  /** Frames received with `command`. */
  all(command: string): Frame[] {
    return this.frames.filter((f) => f.command === command);
  }

  /** Stops reading, so that the server's output backs up. */
  pauseReading(): void {
    this.stream.pause();
  }

  /** Reads again. */
  resumeReading(): void {
    this.stream.resume();
  }

  /** Ends the connection like a client closing its socket (FIN). */
  end(): void {
    this.stream.end();
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.stream.destroy();
  }

  private wake(): void {
    const list = this.waiters;
    this.waiters = [];
    for (const wake of list) wake();
  }
}

/** Opens an in-memory connection to `broker` and returns its client (not connected yet). */
export function memoryClient(
  broker: StreamHandler,
  options: MemoryClientOptions = {},
): MemoryClient {
  const { client, server } = duplexPair(options);
  broker.handle(server, options.transport);
  return new MemoryClient(client);
}

/** Waits until `check` returns true (asked every millisecond), also after a client closed. */
export async function waitUntil(check: () => boolean, timeoutMs = 5000, what = 'a condition') {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

const brokers = new Set<StompBroker>();

/**
 * A broker for one test (`createBroker` with short close timeouts), closed
 * after the test.
 */
export function testBroker(options: Partial<StompBrokerOptions> = {}): StompBroker {
  const broker = createBroker({ closeTimeoutMs: 500, ...options });
  brokers.add(broker);
  return broker;
}

afterEach(async () => {
  const list = [...brokers];
  brokers.clear();
  await Promise.all(list.map((broker) => broker.close(500)));
});
