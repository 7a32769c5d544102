import type { Socket } from 'node:net';
import { Connection, type TransportKind } from './connection.js';

/** STOMP over a plain TCP or TLS socket. */
export class TcpConnection extends Connection {
  readonly remoteAddress: string;

  constructor(
    private readonly socket: Socket,
    readonly kind: TransportKind,
  ) {
    super();
    this.remoteAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.events?.onData(chunk));
    socket.on('drain', () => this.events?.onDrain());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.events?.onClose());
  }

  /** Runs `fn` once the socket has closed. */
  onceClosed(fn: () => void): void {
    this.socket.once('close', fn);
  }

  protected send(chunks: Buffer[], _bytes: number): void {
    if (this.socket.destroyed) return;
    if (chunks.length === 1) {
      this.socket.write(chunks[0] as Buffer);
      return;
    }
    // cork/uncork turns the writes into one writev.
    this.socket.cork();
    for (const chunk of chunks) this.socket.write(chunk);
    this.socket.uncork();
  }

  protected transportBuffered(): number {
    return this.socket.writableLength;
  }

  protected close(_code: number): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
