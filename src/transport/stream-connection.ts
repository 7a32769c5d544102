import type { Duplex } from 'node:stream';
import { Connection, type TransportKind } from './connection.js';

/** What a socket may tell about its peer (`net.Socket` and `tls.TLSSocket` do). */
interface MaybeSocket {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  setNoDelay?(noDelay: boolean): unknown;
}

/**
 * STOMP over any duplex byte stream: a TCP or TLS socket, or anything else
 * that moves bytes both ways (a test's in-memory pair, a multiplexed channel).
 */
export class StreamConnection extends Connection {
  readonly remoteAddress: string;

  constructor(
    private readonly stream: Duplex,
    readonly kind: TransportKind,
  ) {
    super();
    const socket = stream as Duplex & MaybeSocket;
    this.remoteAddress =
      socket.remoteAddress === undefined ? kind : `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay?.(true);
    stream.on('data', (chunk: Buffer | string) =>
      this.events?.onData(typeof chunk === 'string' ? Buffer.from(chunk) : chunk),
    );
    stream.on('drain', () => this.drained());
    stream.on('error', () => stream.destroy());
    // A half-closed stream (the client ended its side) ends the session too.
    stream.on('end', () => stream.end());
    stream.on('close', () => this.events?.onClose());
  }

  /** Runs `fn` once the stream has closed. */
  onceClosed(fn: () => void): void {
    if (this.stream.destroyed) fn();
    else this.stream.once('close', fn);
  }

  protected send(data: Buffer): void {
    if (!this.stream.destroyed && this.stream.writable) this.stream.write(data);
  }

  protected transportBuffered(): number {
    return this.stream.writableLength;
  }

  protected close(_code: number): void {
    this.stream.end();
  }

  destroy(): void {
    this.stream.destroy();
  }

  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    this.stream.resume();
  }
}
