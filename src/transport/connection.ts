/** How a client reached the server. */
export type TransportKind = 'ws' | 'wss' | 'tcp' | 'tls';

/** What a transport reports to the session that owns a connection. */
export interface ConnectionEvents {
  /** Bytes from the client, in order. */
  onData(chunk: Buffer): void;
  /** The unsent output went back below the low-water mark. */
  onDrain(): void;
  /** The connection is gone (either side closed it, or it failed). */
  onClose(): void;
}

/**
 * One client connection, whatever the transport. Writes are coalesced: all
 * bytes written during one event-loop turn leave in one socket write (one
 * WebSocket message), which is what makes fan-out cheap.
 */
export abstract class Connection {
  /** The remote address and port, for logs. */
  abstract readonly remoteAddress: string;
  /** The transport this connection came in on. */
  abstract readonly kind: TransportKind;
  /** The WebSocket sub-protocol agreed (`v12.stomp`, ...), if any. */
  protocol = '';
  /** When the last bytes were queued for the client (ms since epoch). */
  lastWriteAt = Date.now();

  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  private ending = false;
  protected events: ConnectionEvents | undefined;

  /** Attaches the session that receives this connection's events. */
  attach(events: ConnectionEvents): void {
    this.events = events;
  }

  /** Queues bytes for the client; they leave at the end of this event-loop turn. */
  write(data: Buffer): void {
    if (this.ending) return;
    this.pending.push(data);
    this.pendingBytes += data.length;
    this.lastWriteAt = Date.now();
    if (!this.scheduled) {
      this.scheduled = true;
      scheduleFlush(this);
    }
  }

  /** Bytes accepted by {@link write} and not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.pendingBytes + this.transportBuffered();
  }

  /** Sends everything queued now. */
  flush(): void {
    this.scheduled = false;
    if (this.pendingBytes === 0) return;
    const chunks = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.send(chunks, bytes);
    // The kernel took everything: a consumer that waited for room may go on.
    if (this.transportBuffered() === 0) this.events?.onDrain();
  }

  /**
   * Flushes what is queued, then closes; destroys the connection if the
   * client has not read it all within `timeoutMs`. `code` is the WebSocket
   * close code.
   */
  end(code = 1000, timeoutMs = 5000): void {
    if (this.ending) return;
    this.flush();
    this.ending = true;
    this.close(code);
    setTimeout(() => this.destroy(), timeoutMs).unref();
  }

  /** Hands chunks to the transport (one message / one writev). */
  protected abstract send(chunks: Buffer[], bytes: number): void;
  /** Bytes the transport itself still holds. */
  protected abstract transportBuffered(): number;
  /** Starts a graceful close once queued data is out. */
  protected abstract close(code: number): void;
  /** Closes at once, dropping unsent data. */
  abstract destroy(): void;
}

// One setImmediate flushes every connection written to in this turn.
let dirty: Connection[] = [];
let flushScheduled = false;

function scheduleFlush(connection: Connection): void {
  dirty.push(connection);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushAll);
  }
}

function flushAll(): void {
  const list = dirty;
  dirty = [];
  flushScheduled = false;
  for (let i = 0; i < list.length; i++) (list[i] as Connection).flush();
}
