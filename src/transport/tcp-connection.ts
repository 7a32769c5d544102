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
    socket.on('drain', () => this.drained());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.events?.onClose());
  }

  /** Runs `fn` once the socket has closed. */
  onceClosed(fn: () => void): void {
    this.socket.once('close', fn);
  }

  protected send(data: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
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
