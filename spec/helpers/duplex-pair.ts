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
import { LocalFanout } from '../../src/broker/local-fanout.js';
import type { Outgoing } from '../../src/broker/message.js';
import type { Fanout } from '../../src/broker/seams.js';
import { createBroker, type StompBroker, type StompBrokerOptions } from '../../src/stomp-broker.js';
import type { TransportKind } from '../../src/transport/connection.js';
import { RawClient } from './raw-client.js';

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

/** A STOMP client over the client end of a {@link duplexPair}: a {@link RawClient}. */
export type MemoryClient = RawClient;

/** Opens an in-memory connection to `broker` and returns its client (not connected yet). */
export function memoryClient(
  broker: StreamHandler,
  options: MemoryClientOptions = {},
): MemoryClient {
  const { client, server } = duplexPair(options);
  broker.handle(server, options.transport);
  return RawClient.over(client);
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

/**
 * A fan-out that delivers at once and answers each publish with what `answer` returns (as
 * the Kafka fan-out answers a SEND once Kafka has it), recording every publish in `published`.
 */
export function fanoutAnswering(answer: () => Promise<void>, published: Outgoing[] = []): Fanout {
  const local = new LocalFanout();
  return {
    bus: {
      publish(message: Outgoing) {
        published.push(message);
        local.publish(message);
        return answer();
      },
    },
    log: local.log,
    registry: local.registry,
    ready: true,
    start: (sink) => local.start(sink),
    stop: () => local.stop(),
  };
}

/** A fan-out whose publishes are answered one by one by the test: call `answers`' entries. */
export function heldBus(): { answers: Array<() => void>; published: Outgoing[]; fanout: Fanout } {
  const answers: Array<() => void> = [];
  const published: Outgoing[] = [];
  const fanout = fanoutAnswering(
    () => new Promise<void>((resolve) => answers.push(resolve)),
    published,
  );
  return { answers, published, fanout };
}
