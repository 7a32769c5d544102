import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { Connection, type TransportKind } from './connection.js';

/** STOMP over a WebSocket: text and binary messages are both accepted. */
export class WsConnection extends Connection {
  readonly remoteAddress: string;

  constructor(
    private readonly ws: WebSocket,
    stream: Duplex,
    readonly kind: TransportKind,
  ) {
    super();
    // An upgrade's socket is a net.Socket (or TLS socket) in every Node.js server.
    const socket = stream as Socket;
    this.remoteAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    this.protocol = ws.protocol;
    socket.setNoDelay?.(true);
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer) => this.events?.onData(data));
    // ws has no drain event of its own; the socket under it has.
    socket.on('drain', () => this.drained());
    ws.on('error', () => ws.terminate());
    ws.on('close', () => this.events?.onClose());
  }

  protected send(data: Buffer): void {
    // Several frames in one WebSocket message: STOMP 1.2 frames carry their own end.
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(data);
  }

  protected transportBuffered(): number {
    return this.ws.bufferedAmount;
  }

  protected close(code: number): void {
    this.ws.close(code);
  }

  destroy(): void {
    this.ws.terminate();
  }

  pause(): void {
    // Pauses the socket under it; messages ws had parsed already still come.
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }
}
