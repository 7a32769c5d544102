import type { Broker } from '../broker/broker.js';
import { type Message, messageTail, RESUME_HEADER } from '../broker/message.js';
import type { Consumer, Subscription } from '../broker/subscription.js';
import { StompError } from '../errors.js';
import { encodeFrame, HEARTBEAT } from '../frame/encoder.js';
import { type EscapeMode, escapeHeader } from '../frame/escape.js';
import {
  CLIENT_COMMANDS,
  createFrame,
  type Frame,
  getHeader,
  type Header,
} from '../frame/frame.js';
import { FrameParser } from '../frame/parser.js';
import type { Connection, ConnectionEvents } from '../transport/connection.js';
import { HANDLERS, type Handler } from './handlers/index.js';
import type { SessionOptions } from './options.js';

const CONNECTING = 0;
const CONNECTED = 1;
const CLOSING = 2;
const CLOSED = 3;

/** WebSocket close codes used when the server ends a connection. */
const WS_NORMAL = 1000;
const WS_GOING_AWAY = 1001;
const WS_PROTOCOL_ERROR = 1002;

let sessionSeq = 0;
const CLIENT_COMMAND_SET: ReadonlySet<string> = new Set(CLIENT_COMMANDS);

/**
 * One client connection's protocol state: CONNECT negotiation, heart-beats,
 * subscriptions, transactions, receipts and ERROR-then-close. Frames are
 * handled strictly in the order they arrive; the handlers live in
 * `handlers/`, one file per command.
 */
export class Session implements Consumer, ConnectionEvents {
  /** The `session` header sent in CONNECTED. */
  readonly id: string;
  /** Negotiated protocol version (until CONNECT: 1.2). */
  version: '1.0' | '1.1' | '1.2' = '1.2';
  /** The authenticated (or, with anonymous access, claimed) login. */
  login: string | undefined;
  /** Subscriptions by client id. */
  readonly subscriptions = new Map<string, Subscription>();
  private openTransactions: Map<string, Frame[]> | undefined;

  private state = CONNECTING;
  private readonly parser: FrameParser;
  private lastReadAt = Date.now();
  private timers: NodeJS.Timeout[] | undefined;
  private blocked = false;
  private disconnecting = false;
  /** Extra headers for the RECEIPT of the frame being handled (set by its handler). */
  receiptHeaders: Header[] | undefined;
  /** Receipts waiting for asynchronous work (Kafka), kept in frame order. */
  private receiptChain: Promise<void> | undefined;

  constructor(
    readonly broker: Broker,
    readonly connection: Connection,
    readonly options: SessionOptions,
    private readonly onGone: (session: Session) => void = () => {},
  ) {
    this.id = `${process.pid.toString(36)}-${(++sessionSeq).toString(36)}`;
    this.parser = new FrameParser({
      limits: options,
      commands: CLIENT_COMMAND_SET,
      onFrame: (frame) => this.handle(frame),
      onError: (error) => this.fail(error),
    });
    connection.attach(this);
    // DESIGN.md: CONNECT must arrive within connectTimeoutMs.
    this.every(
      options.connectTimeoutMs,
      () => this.state === CONNECTING && this.fail(new StompError('STOMP_ERR_CONNECT_TIMEOUT')),
    );
  }

  /** Open transactions: their buffered frames, by transaction id (made on first use). */
  get transactions(): Map<string, Frame[]> {
    this.openTransactions ??= new Map();
    return this.openTransactions;
  }

  /** The escaping this session's frames use. */
  get escapes(): EscapeMode {
    return this.version;
  }

  /** True once CONNECTED was sent and until the connection starts closing. */
  get connected(): boolean {
    return this.state === CONNECTED;
  }

  // ---- transport events ----

  onData(chunk: Buffer): void {
    // STOMP 1.2 "Heart-beating": any bytes from the client prove it alive.
    this.lastReadAt = Date.now();
    if (this.state < CLOSING) this.parser.push(chunk);
  }

  onDrain(): void {
    if (this.blocked && this.writable) {
      this.blocked = false;
      this.broker.resume(this.subscriptions.values());
    }
  }

  onClose(): void {
    this.cleanup();
    this.state = CLOSED;
  }

  // ---- frames in ----

  private handle(frame: Frame): void {
    if (this.state >= CLOSING || this.disconnecting) return;
    const receipt = frame.command === 'CONNECT' ? undefined : getHeader(frame, 'receipt');
    try {
      if (this.state === CONNECTING && frame.command !== 'CONNECT' && frame.command !== 'STOMP') {
        throw new StompError('STOMP_ERR_NOT_CONNECTED', { detail: frame.command });
      }
      const handler = HANDLERS[frame.command] as Handler;
      const result = handler(this, frame);
      const extra = this.receiptHeaders;
      this.receiptHeaders = undefined;
      // STOMP 1.2 "DISCONNECT": the RECEIPT goes out first, then the close.
      if (frame.command === 'DISCONNECT') this.disconnecting = true;
      const finish = () => {
        if (receipt !== undefined) this.sendReceipt(receipt, extra);
        if (frame.command === 'DISCONNECT') this.close();
      };
      if (result || this.receiptChain) this.chain(result, finish, receipt);
      else finish();
    } catch (error) {
      this.fail(error, receipt);
    }
  }

  /** Keeps receipts in frame order when some of them wait for asynchronous work. */
  private chain(work: void | Promise<void>, finish: () => void, receipt: string | undefined) {
    // The chain handles a rejection later; mark it handled now so that an
    // early failure is not an unhandled rejection meanwhile.
    work?.catch(() => {});
    const next = (this.receiptChain ?? Promise.resolve())
      .then(() => work)
      .then(
        () => {
          if (this.state === CONNECTED) finish();
        },
        (error: unknown) => this.fail(error, receipt),
      )
      .finally(() => {
        if (this.receiptChain === next) this.receiptChain = undefined;
      });
    this.receiptChain = next;
  }

  /** Called by the CONNECT handler once the version is agreed. */
  connectedAs(version: '1.0' | '1.1' | '1.2', login: string | undefined, heartbeat: Header): void {
    this.version = version;
    this.login = login;
    if (login) this.broker.userConnected(login);
    this.parser.setEscapes(version);
    this.state = CONNECTED;
    const [sendEvery, expectEvery] = heartbeat[1].split(',').map(Number) as [number, number];
    this.sendFrame(
      createFrame('CONNECTED', [
        ['version', version],
        heartbeat,
        ['session', this.id],
        ['server', this.options.serverName],
        ...(login ? ([['user-name', login]] as Header[]) : []),
      ]),
    );
    this.startHeartbeats(sendEvery, expectEvery);
  }

  /** Applies negotiated heart-beats (the CONNECT handler computes them). */
  private startHeartbeats(sendEvery: number, expectEvery: number): void {
    this.clearTimers();
    if (sendEvery > 0) {
      // Check twice per interval so that no gap ever exceeds it.
      const half = Math.max(1, Math.floor(sendEvery / 2));
      this.every(half, () => {
        if (Date.now() - this.connection.lastWriteAt >= half) this.connection.write(HEARTBEAT);
      });
    }
    if (expectEvery > 0) {
      const limit = expectEvery * this.options.heartbeatTolerance;
      this.every(Math.max(1, Math.floor(expectEvery / 2)), () => {
        if (Date.now() - this.lastReadAt > limit) {
          this.fail(new StompError('STOMP_ERR_HEARTBEAT_TIMEOUT', { detail: `${limit} ms` }));
        }
      });
    }
  }

  // ---- frames out ----

  /** Encodes and queues a frame; a client far behind on reading is dropped. */
  sendFrame(frame: Frame): void {
    this.connection.write(encodeFrame(frame, this.escapes));
    this.checkBacklog();
  }

  /** Sends RECEIPT (STOMP 1.2 "RECEIPT"). */
  sendReceipt(receiptId: string, extra: Header[] = []): void {
    this.sendFrame(createFrame('RECEIPT', [['receipt-id', receiptId], ...extra]));
  }

  /** Consumer: one MESSAGE, its shared part encoded once per message. */
  deliver(sub: Subscription, message: Message, ackId: string | undefined, redelivered: boolean) {
    const mode = this.escapes;
    // Per delivery only the subscription's own constant head is added to the
    // message's shared encoding (message-id, destination, headers, body).
    sub.head ??= Buffer.from(`MESSAGE\nsubscription:${escapeHeader(sub.id, mode)}\n`);
    this.connection.write(sub.head);
    // STOMP 1.2 "MESSAGE": client acks carry an `ack` header to ACK by; 1.0 and
    // 1.1 clients ACK by message-id and subscription instead.
    if (ackId !== undefined && mode === '1.2') {
      this.connection.write(redelivered ? `ack:${ackId}\nredelivered:true\n` : `ack:${ackId}\n`);
    } else if (redelivered) {
      this.connection.write('redelivered:true\n');
    }
    if (sub.resumed) {
      this.connection.write(`${RESUME_HEADER}:${sub.resumed}\n`);
      sub.resumed = undefined;
    }
    // No backlog check here: the broker asked `writable` just before.
    this.connection.write(messageTail(message, mode));
  }

  /** Consumer: false while the unsent output is above the high-water mark. */
  get writable(): boolean {
    if (this.state !== CONNECTED) return false;
    if (this.connection.bufferedAmount < this.options.highWaterMark) return true;
    this.blocked = true;
    return false;
  }

  /** Consumer: a topic message found this connection too far behind. */
  overflow(): void {
    this.fail(new StompError('STOMP_ERR_SLOW_CONSUMER'));
  }

  /** Consumer: too many unacknowledged topic messages. */
  tooManyPending(): void {
    this.fail(
      new StompError('STOMP_ERR_SLOW_CONSUMER', {
        detail: `more than ${this.broker.options.maxPendingAcks} unacknowledged messages`,
      }),
    );
  }

  private checkBacklog(): void {
    if (this.state < CLOSING && this.connection.bufferedAmount > 2 * this.options.highWaterMark) {
      this.fail(new StompError('STOMP_ERR_SLOW_CONSUMER'));
    }
  }

  // ---- closing ----

  /**
   * Sends ERROR and closes (STOMP 1.2 "ERROR": the server closes the
   * connection after it). `receiptId` is the receipt the failing frame asked for.
   */
  fail(error: unknown, receiptId?: string, extra: Header[] = []): void {
    if (this.state >= CLOSING) return;
    const err =
      error instanceof StompError ? error : new StompError('STOMP_ERR_INTERNAL', { cause: error });
    if (err.code === 'STOMP_ERR_INTERNAL') console.error('stompbus: internal error', error);
    const headers: Header[] = [['message', err.code]];
    if (receiptId !== undefined) headers.push(['receipt-id', receiptId]);
    headers.push(...extra, ['content-type', 'text/plain']);
    this.connection.write(encodeFrame(createFrame('ERROR', headers, err.message), this.escapes));
    this.close(err.code === 'STOMP_ERR_SHUTDOWN' ? WS_GOING_AWAY : WS_PROTOCOL_ERROR);
  }

  /** Flushes what is queued and closes (DISCONNECT, or after ERROR). */
  close(code = WS_NORMAL): void {
    if (this.state >= CLOSING) return;
    this.cleanup();
    this.state = CLOSING;
    this.connection.end(code, this.options.closeTimeoutMs);
  }

  /** Server shutdown: tell the client with an ERROR, then close. */
  shutdown(): void {
    this.fail(new StompError('STOMP_ERR_SHUTDOWN'));
  }

  /**
   * Drops everything the connection held: subscriptions (unacknowledged
   * queue messages go back to their queues) and open transactions (STOMP 1.2
   * "BEGIN": an open transaction is aborted when the connection ends).
   */
  private cleanup(): void {
    if (this.state >= CLOSING) return;
    if (this.state === CONNECTED && this.login) this.broker.userGone(this.login);
    this.state = CLOSING;
    this.clearTimers();
    for (const sub of this.subscriptions.values()) this.broker.unsubscribe(sub);
    this.subscriptions.clear();
    this.openTransactions?.clear();
    this.onGone(this);
  }

  private every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    timer.unref();
    this.timers ??= [];
    this.timers.push(timer);
  }

  private clearTimers(): void {
    for (const timer of this.timers ?? []) clearInterval(timer);
    this.timers = undefined;
  }
}
