/** How a client reached the server. */
export type TransportKind = 'ws' | 'wss' | 'tcp' | 'tls';

/** Where a connection adds the bytes it hands to its transport (the broker's stats). */
export interface ByteMeter {
  bytesOut: number;
}

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
  /** Counts the bytes sent (the broker sets its stats here on accept). */
  meter: ByteMeter = { bytesOut: 0 };

  // Output of this event-loop turn: strings (MESSAGE heads) and buffers,
  // joined into one buffer at flush time.
  private pending: Array<string | Buffer> = [];
  private pendingBytes = 0;
  private pendingStrings = false;
  // What the transport still held after the last flush or drain.
  private transportBytes = 0;
  private scheduled = false;
  private ending = false;
  protected events: ConnectionEvents | undefined;

  /** Attaches the session that receives this connection's events. */
  attach(events: ConnectionEvents): void {
    this.events = events;
  }

  /**
   * Queues output for the client; it leaves at the end of this event-loop
   * turn. Strings are UTF-8 encoded then, straight into the outgoing buffer.
   */
  write(data: Buffer | string): void {
    if (this.ending) return;
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (typeof data === 'string') this.pendingStrings = true;
    if (!this.scheduled) {
      this.scheduled = true;
      scheduleFlush(this);
    }
  }

  /**
   * Bytes accepted by {@link write} and not yet taken by the kernel (as of
   * the last flush or drain: cheap enough to ask per delivery).
   */
  get bufferedAmount(): number {
    return this.pendingBytes + this.transportBytes;
  }

  /** Sends everything queued now, as one buffer. */
  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const chunks = this.pending;
    const strings = this.pendingStrings;
    let size = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingStrings = false;
    let out: Buffer;
    if (!strings) {
      // Buffers only (the common case): their byte count is already known.
      out = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks as Buffer[], size);
    } else {
      size = 0;
      for (const c of chunks) size += typeof c === 'string' ? Buffer.byteLength(c) : c.length;
      out = Buffer.allocUnsafe(size);
      let offset = 0;
      for (const c of chunks) {
        if (typeof c === 'string') {
          offset += out.write(c, offset);
        } else {
          out.set(c, offset);
          offset += c.length;
        }
      }
    }
    this.lastWriteAt = Date.now();
    this.meter.bytesOut += size;
    this.send(out);
    this.transportBytes = this.transportBuffered();
    // The kernel took everything: a consumer that waited for room may go on.
    if (this.transportBytes === 0) this.events?.onDrain();
  }

  /** The transport drained: note it and tell the session. */
  protected drained(): void {
    this.transportBytes = this.transportBuffered();
    this.events?.onDrain();
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

  /** Hands one turn's output to the transport (one write, one WebSocket message). */
  protected abstract send(data: Buffer): void;
  /** Bytes the transport itself still holds. */
  protected abstract transportBuffered(): number;
  /** Starts a graceful close once queued data is out. */
  protected abstract close(code: number): void;
  /** Closes at once, dropping unsent data. */
  abstract destroy(): void;
  /**
   * Stops reading from the client (its frames wait in the kernel's buffers,
   * then in the client's: TCP backpressure) until {@link resume}. Data the
   * transport had read already may still arrive.
   */
  abstract pause(): void;
  /** Reads from the client again. */
  abstract resume(): void;
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
