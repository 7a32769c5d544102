import type { Replay } from '../broker/history.js';
import type { Position } from '../broker/message.js';
import { deliveryHeaders, type EncodedMessage, subscriptionHead } from '../broker/message-frame.js';
import type { Router } from '../broker/router.js';
import type { BrokerStats } from '../broker/stats.js';
import { type Consumer, Subscription, type SubscriptionSpec } from '../broker/subscription.js';
import { StompError } from '../errors.js';
import { encodeFrame, HEARTBEAT } from '../frame/encoder.js';
import type { EscapeMode } from '../frame/escape.js';
import {
  CLIENT_COMMANDS,
  createFrame,
  type Frame,
  getHeader,
  type Header,
} from '../frame/frame.js';
import { FrameParser } from '../frame/parser.js';
import type { CloseReason } from '../ops/log.js';
import type { Connection, ConnectionEvents, TransportKind } from '../transport/connection.js';
import type {
  Access,
  HandlerResult,
  Identity,
  ReceiptExtra,
  SessionApi,
  StompVersion,
} from './api.js';
import { FrameThrottle } from './frame-throttle.js';
import { HANDLERS, type Handler } from './handlers/index.js';
import type { SessionOptions } from './options.js';

const CONNECTING = 0;
const CONNECTED = 1;
const CLOSING = 2;
const CLOSED = 3;

/** Why the connection is not read now (bits of `Session.pausedBy`). */
const THROTTLED = 1;
const WAITING = 2;
/** Frames are held behind an asynchronous CONNECT or authorization ({@link Session.holdUntil}). */
const HOLDING = 4;

/** WebSocket close codes used when the server ends a connection. */
const WS_NORMAL = 1000;
const WS_GOING_AWAY = 1001;
const WS_PROTOCOL_ERROR = 1002;

let sessionSeq = 0;

/** A frame whose answer waits for its work or for the frames before it ({@link Session.chain}). */
interface Answer {
  readonly frame: Frame | undefined;
  readonly receipt: string | undefined;
  done: boolean;
  extra: ReceiptExtra;
  failed?: boolean;
  error?: unknown;
}
const ANONYMOUS: Identity = Object.freeze({ user: undefined, scopes: [], expiresAt: undefined });

/** The refusal of a frame the broker does not allow (nothing of it is delivered). */
function forbidden(access: Access, destination: string): StompError {
  return new StompError('STOMP_ERR_FORBIDDEN', {
    detail: `${access === 'read' ? 'SUBSCRIBE to' : 'SEND to'} ${destination} is not granted`,
  });
}
const CLIENT_COMMAND_SET: ReadonlySet<string> = new Set(CLIENT_COMMANDS);
/** Errors about the connection, never about the frame being handled when they happen. */
const CONNECTION_ERRORS: ReadonlySet<string> = new Set([
  'STOMP_ERR_SLOW_CONSUMER',
  'STOMP_ERR_HEARTBEAT_TIMEOUT',
  'STOMP_ERR_TOKEN_EXPIRED',
  'STOMP_ERR_CONNECT_TIMEOUT',
  'STOMP_ERR_TOO_MANY_CONNECTIONS',
  'STOMP_ERR_SHUTDOWN',
]);

/** What a CONNECT asks for, as the host's authentication sees it. */
export interface ConnectRequest {
  /** The CONNECT `login` header. */
  readonly login: string | undefined;
  /** The CONNECT `passcode` header. */
  readonly passcode: string | undefined;
  /** Every CONNECT header, e.g. `authorization`. */
  readonly headers: readonly Header[];
  readonly remoteAddress: string;
  readonly transport: TransportKind;
}

/** What a session needs from the broker that owns it. */
export interface SessionHost {
  readonly router: Router;
  readonly options: SessionOptions;
  /**
   * Who a CONNECT authenticates as (user undefined: anonymous); throws or
   * rejects with a coded error when refused.
   */
  authenticate(request: ConnectRequest): Identity | Promise<Identity>;
  /** Whether `session` may have `access` to `destination` (a routing name). */
  authorize(
    session: Session,
    access: Access,
    destination: string,
    headers: readonly Header[],
  ): boolean | Promise<boolean>;
  /** Whether a user destination may name `user` (SEND to `/user/<name>/…`). */
  knowsUser(user: string): boolean;
  /** CONNECTED was sent. */
  connected(session: Session): void;
  /** A subscription was added (`true`) or removed (`false`). */
  subscriptionChanged(session: Session, sub: Subscription, added: boolean): void;
  /**
   * The session ended; `error` when it ended with an ERROR frame (see
   * {@link Session.closeReason} and {@link Session.refusedFrame}).
   */
  closed(session: Session, error: StompError | undefined): void;
  /** The session's connection is closed (some time after {@link closed}). */
  ended(session: Session): void;
}

/**
 * One client connection's protocol state: CONNECT negotiation, heart-beats,
 * subscriptions, transactions, receipts and ERROR-then-close. Frames are
 * handled strictly in the order they arrive (an asynchronous CONNECT holds
 * the frames behind it); the handlers live in `handlers/`, one file per
 * command, and change the session only through its methods.
 */
export class Session implements SessionApi, Consumer, ConnectionEvents {
  /** The `session` header sent in CONNECTED. */
  readonly id: string;
  /** When the connection was accepted, ms since 1970. */
  readonly openedAt = Date.now();
  private negotiated: StompVersion = '1.2';
  private identity: Identity = ANONYMOUS;
  private readonly subs = new Map<string, Subscription>();
  private openTransactions: Map<string, Frame[]> | undefined;

  private state = CONNECTING;
  private readonly parser: FrameParser;
  /** `maxFramesPerSecond`: undefined without a limit (bytes go straight to the parser). */
  private readonly throttle: FrameThrottle | undefined;
  private lastReadAt = Date.now();
  private timers: NodeJS.Timeout[] | undefined;
  /** Output passed the high-water mark: tell the router when it drains. */
  private blocked = false;
  private disconnecting = false;
  /** Frames that arrived while an asynchronous CONNECT was being checked. */
  private held: Frame[] | undefined;
  /** Counts holds: only the latest one lets the held frames go. */
  private holds = 0;
  /**
   * Frames read while `maxPendingSends` answers wait (the rest of a chunk read already, a
   * WebSocket message the socket had before it paused): handled, in order, once half are
   * answered, so that no more than the bound ever wait, however many frames a read holds.
   */
  private readPastBound: Frame[] | undefined;
  /** Bytes that were no frame, read behind {@link readPastBound}'s frames: refused after them. */
  private readPastFailure: unknown;
  /** The connection is gone: frames read already are handled without the bound. */
  private unbounded = false;
  /**
   * Frames whose answer (RECEIPT, close, ERROR) waits, in frame order: those
   * whose work is asynchronous (Kafka) and those behind them. `answersAt` is
   * the first not answered yet.
   */
  private answers: Answer[] = [];
  private answersAt = 0;
  /**
   * A frame (or bytes) refused while frames before it still waited for their answers: its
   * ERROR waits in {@link answers} behind theirs, and nothing after it is handled.
   */
  private refusing = false;
  /** Consumption records of this session's `auto` deliveries not durable yet (cluster mode). */
  private unrecorded: Set<Promise<void>> | undefined;
  /** The first of them that failed: the DISCONNECT gets the ERROR. */
  private recordFailure: unknown;
  /** Why reading is paused ({@link THROTTLED}, {@link WAITING}); 0: reading. */
  private pausedBy = 0;
  private closeError: StompError | undefined;
  private reason: CloseReason | undefined;
  /** The frame being handled: a refusal names its command and destination. */
  private handling: Frame | undefined;
  private refused: Frame | undefined;
  /** The broker's counters (frames, bytes, errors). */
  private readonly stats: BrokerStats;

  constructor(
    private readonly host: SessionHost,
    readonly connection: Connection,
  ) {
    this.id = `${process.pid.toString(36)}-${(++sessionSeq).toString(36)}`;
    const { options } = host;
    const stats = host.router.stats;
    this.stats = stats;
    const throttle = this.throttleFor(options.maxFramesPerSecond);
    this.throttle = throttle;
    this.parser = new FrameParser({
      limits: options,
      commands: CLIENT_COMMAND_SET,
      onFrame: throttle
        ? (frame) => {
            throttle.spend();
            stats.frameIn(frame.command);
            this.handle(frame);
          }
        : (frame) => {
            stats.frameIn(frame.command);
            this.handle(frame);
          },
      onError: (error) => {
        // Frames read before the bad bytes wait for their turn: the refusal comes after them.
        if (this.readPastBound) this.readPastFailure ??= error;
        else this.refuse(undefined, error, undefined);
      },
    });
    connection.attach(this);
    // CONNECT must arrive within connectTimeoutMs (STOMP_ERR_CONNECT_TIMEOUT).
    this.every(
      options.connectTimeoutMs,
      () => this.state === CONNECTING && this.fail(new StompError('STOMP_ERR_CONNECT_TIMEOUT')),
    );
  }

  private throttleFor(rate: number): FrameThrottle | undefined {
    if (!(rate > 0)) return undefined;
    return new FrameThrottle(rate, {
      feed: (chunk) => {
        if (this.state < CLOSING) this.parser.push(chunk);
      },
      pause: () => this.pauseReading(THROTTLED),
      resume: () => this.resumeReading(THROTTLED),
    });
  }

  /** Stops reading from the client for `reason` (backpressure: its frames wait in its socket). */
  private pauseReading(reason: number): void {
    if (this.pausedBy === 0) this.connection.pause();
    this.pausedBy |= reason;
  }

  /** `reason` no longer holds reading back; reads again when nothing else does. */
  private resumeReading(reason: number): void {
    if ((this.pausedBy & reason) === 0) return;
    this.pausedBy &= ~reason;
    if (this.pausedBy !== 0) return;
    // Held back, not silent: heart-beat time counts from now.
    this.lastReadAt = Date.now();
    this.connection.resume();
  }

  /** Negotiated protocol version (until CONNECT: 1.2). */
  get version(): StompVersion {
    return this.negotiated;
  }

  /** The authenticated (or, with anonymous access, claimed) user. */
  get user(): string | undefined {
    return this.identity.user;
  }

  /** Scopes granted with the login (e.g. a JWT's `scope` claim). */
  get scopes(): readonly string[] {
    return this.identity.scopes;
  }

  /** The escaping this session's frames use. */
  get escapes(): EscapeMode {
    return this.negotiated;
  }

  /** True once CONNECTED was sent and until the connection starts closing. */
  get connected(): boolean {
    return this.state === CONNECTED;
  }

  /** The session's limits. */
  get options(): SessionOptions {
    return this.host.options;
  }

  /** The router this session sends to. */
  get router(): Router {
    return this.host.router;
  }

  /** Subscriptions by client id. */
  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.subs;
  }

  /** How the session ended; undefined while it is open. */
  get closeReason(): CloseReason | undefined {
    return this.state >= CLOSING ? (this.reason ?? 'socket-closed') : undefined;
  }

  /** The command and destination of the frame the closing ERROR refused, when it refused one. */
  get refusedFrame(): { command: string; destination: string | undefined } | undefined {
    const frame = this.refused;
    return frame && { command: frame.command, destination: getHeader(frame, 'destination') };
  }

  // ---- state the handlers change ----

  /** Checks a CONNECT's credentials through the host. */
  authenticate(login: string | undefined, passcode: string | undefined, headers: Header[]) {
    const { remoteAddress, kind } = this.connection;
    return this.host.authenticate({ login, passcode, headers, remoteAddress, transport: kind });
  }

  /** Whether a user destination may name `user`. */
  knowsUser(user: string): boolean {
    return this.host.knowsUser(user);
  }

  /**
   * Handles the frames behind this one only once `work` is done (an
   * asynchronous CONNECT or authorization). When it fails the session fails
   * with it (`failHere`), or the frame's answer in the queue of answers
   * reports it with its receipt-id; the held frames are dropped with the
   * session either way.
   */
  holdUntil(work: Promise<unknown>, failHere = true): void {
    // A hold started by the work of another (an authorization's then) extends it.
    const held: Frame[] = this.held ?? [];
    const waiting = this.handling;
    this.held = held;
    const hold = ++this.holds;
    // Not read meanwhile: what waits is what one read brought, not all a client can send.
    this.pauseReading(HOLDING);
    work.then(
      () => {
        if (this.held !== held || this.holds !== hold) return;
        this.held = undefined;
        for (const frame of held) this.handle(frame);
        // Unless one of those started another hold.
        if (!this.held) this.resumeReading(HOLDING);
      },
      (error: unknown) => {
        if (failHere) this.failOn(waiting, error);
      },
    );
  }

  authorized<T>(
    access: Access,
    destination: string,
    headers: readonly Header[],
    then: () => T,
  ): T | Promise<Awaited<T>> {
    const decision = this.host.authorize(this, access, destination, headers);
    if (!(decision instanceof Promise)) {
      if (!decision) throw forbidden(access, destination);
      return then();
    }
    let result: T | undefined;
    const decided = decision.then((allowed) => {
      if (!allowed) throw forbidden(access, destination);
      // Runs before the held frames are let go: they come after it.
      result = then();
    });
    this.holdUntil(decided, false);
    return decided.then(() => result as Awaited<T>);
  }

  /** Subscribes through the router and keeps the subscription under its client id. */
  subscribe(
    spec: Omit<SubscriptionSpec, 'consumer' | 'head'>,
    resumeAfter: Position | undefined,
  ): Replay | undefined {
    const head = subscriptionHead(spec.id, this.escapes);
    const sub = new Subscription({ ...spec, consumer: this, head });
    // Kept first: what the router hands out at once may end this session
    // (too many unacknowledged), and the cleanup must then give it back.
    this.subs.set(spec.id, sub);
    const replay = this.router.subscribe(sub, resumeAfter);
    if (this.state === CONNECTED) this.host.subscriptionChanged(this, sub, true);
    return replay;
  }

  /** Ends the subscription with client id `id`; false when there is none. */
  unsubscribe(id: string): boolean {
    const sub = this.subs.get(id);
    if (!sub) return false;
    this.subs.delete(id);
    this.router.unsubscribe(sub);
    this.host.subscriptionChanged(this, sub, false);
    return true;
  }

  /** Opens transaction `tx`; false when it is open already. */
  begin(tx: string): boolean {
    this.openTransactions ??= new Map();
    if (this.openTransactions.has(tx)) return false;
    this.openTransactions.set(tx, []);
    return true;
  }

  /** Open transactions. */
  get transactionCount(): number {
    return this.openTransactions?.size ?? 0;
  }

  /** The frames buffered in open transaction `tx`, to add to; undefined when not open. */
  transaction(tx: string): Frame[] | undefined {
    return this.openTransactions?.get(tx);
  }

  /** Closes transaction `tx` and returns its frames; undefined when not open. */
  endTransaction(tx: string): Frame[] | undefined {
    const frames = this.openTransactions?.get(tx);
    this.openTransactions?.delete(tx);
    return frames;
  }

  // ---- transport events ----

  onData(chunk: Buffer): void {
    // STOMP 1.2 "Heart-beating": any bytes from the client prove it alive.
    this.lastReadAt = Date.now();
    this.stats.bytesIn += chunk.length;
    if (this.state >= CLOSING) return;
    if (this.throttle) this.throttle.push(chunk);
    else this.parser.push(chunk);
  }

  onDrain(): void {
    if (this.blocked && this.writable) {
      this.blocked = false;
      this.router.drained(this.subs.values());
    }
  }

  onClose(): void {
    // The client closed (or half-closed) after sending frames that wait past the bound: they
    // were read, so they are handled, as they would have been had they come in slower.
    const waiting = this.readPastBound;
    if (waiting && this.state < CLOSING) {
      this.readPastBound = undefined;
      this.readPastFailure = undefined;
      this.unbounded = true;
      for (const frame of waiting) this.handle(frame);
    }
    this.reason ??= 'socket-closed';
    this.cleanup();
    this.state = CLOSED;
    this.host.ended(this);
  }

  // ---- frames in ----

  private handle(frame: Frame): void {
    if (this.state >= CLOSING || this.disconnecting || this.refusing) return;
    if (this.held) {
      this.held.push(frame);
      return;
    }
    if (this.readPastBound) {
      this.readPastBound.push(frame);
      return;
    }
    const receipt = frame.command === 'CONNECT' ? undefined : getHeader(frame, 'receipt');
    this.handling = frame;
    try {
      if (this.state === CONNECTING && frame.command !== 'CONNECT' && frame.command !== 'STOMP') {
        throw new StompError('STOMP_ERR_NOT_CONNECTED', { detail: frame.command });
      }
      // The parser only lets client commands through, and each has a handler.
      const result = (HANDLERS[frame.command] as Handler)(this, frame);
      // STOMP 1.2 "DISCONNECT": the RECEIPT goes out first, then the close.
      if (frame.command === 'DISCONNECT') {
        this.disconnecting = true;
        this.reason ??= 'disconnect';
      }
      if (result instanceof Promise || this.answersAt < this.answers.length) {
        this.chain(frame, receipt, result);
      } else {
        this.finish(frame, receipt, result ?? undefined);
      }
    } catch (error) {
      this.refuse(frame, error, receipt);
    } finally {
      this.handling = undefined;
    }
  }

  /**
   * Refuses a frame (`undefined`: bytes that are no frame) with ERROR and the close. When
   * frames before it still wait for their answers (RECEIPTs of SENDs that Kafka has not
   * confirmed yet), the ERROR waits behind them, as a frame's RECEIPT would: those frames
   * were accepted and get their RECEIPTs first (STOMP 1.2 "RECEIPT": a receipt acknowledges
   * that the frames before it were processed). Nothing after the refused frame is handled,
   * and the client is no longer read. An error about the connection itself goes out at once,
   * and so does this one if the frames before it are not all answered within closeTimeoutMs.
   */
  private refuse(frame: Frame | undefined, error: unknown, receipt: string | undefined): void {
    const aboutConnection = error instanceof StompError && CONNECTION_ERRORS.has(error.code);
    if (this.answersAt === this.answers.length || aboutConnection || this.state !== CONNECTED) {
      this.fail(error, receipt);
      return;
    }
    this.refusing = true;
    this.pauseReading(WAITING);
    this.answers.push({ frame, receipt, done: true, extra: undefined, failed: true, error });
    // Not for long: work that never ends (an authorization hook that never answers) must not
    // keep a refused client open, unread and with no heart-beat check. Past closeTimeoutMs
    // the ERROR goes out without the RECEIPTs still missing.
    const giveUp = setTimeout(() => this.failOn(frame, error), this.options.closeTimeoutMs);
    giveUp.unref();
    this.timers ??= [];
    this.timers.push(giveUp);
  }

  /** {@link fail} for a frame handled earlier (an asynchronous refusal). */
  private failOn(frame: Frame | undefined, error: unknown): void {
    const receipt = frame?.command === 'CONNECT' ? undefined : frame && getHeader(frame, 'receipt');
    this.handling = frame;
    try {
      this.fail(error, receipt);
    } finally {
      this.handling = undefined;
    }
  }

  /** A handled frame's answer: its RECEIPT, and the close after a DISCONNECT. */
  private finish(frame: Frame, receipt: string | undefined, extra: ReceiptExtra): void {
    if (receipt !== undefined) this.sendReceipt(receipt, extra);
    if (frame.command === 'DISCONNECT') this.close();
  }

  /**
   * Keeps answers in frame order when some of them wait for asynchronous
   * work: each waits for its own work and for every frame before it. One
   * reaction per asynchronous frame, none for the others (a publisher's
   * SENDs in cluster mode are many: a promise chain cost several per SEND).
   */
  private chain(frame: Frame, receipt: string | undefined, work: HandlerResult): void {
    const answer: Answer = { frame, receipt, done: true, extra: undefined };
    // Too many unanswered (waiting for their work or behind one that does): stop reading
    // this client until half are answered. A frame whose answer waits behind another counts
    // too: else a client could queue any number of them behind one SEND Kafka never answers.
    if (
      this.answers.length - this.answersAt + 1 >= this.options.maxPendingSends &&
      !this.unbounded
    ) {
      this.pauseReading(WAITING);
      this.readPastBound ??= [];
    }
    if (work instanceof Promise) {
      answer.done = false;
      work.then(
        (extra) => {
          answer.done = true;
          answer.extra = extra ?? undefined;
          this.answerReady();
        },
        (error: unknown) => {
          answer.done = true;
          answer.failed = true;
          answer.error = error;
          this.answerReady();
        },
      );
    } else {
      answer.extra = work ?? undefined;
    }
    this.answers.push(answer);
  }

  /** Gives the answers whose turn has come: every one whose frames before it are answered. */
  private answerReady(): void {
    // `this.answers` read afresh each time: an answer given here may lead to frames handled
    // (reading resumes), whose answers join the queue.
    while (this.answersAt < this.answers.length) {
      const answer = this.answers[this.answersAt] as Answer;
      if (!answer.done) break;
      this.answersAt++;
      try {
        if (answer.failed) this.failOn(answer.frame, answer.error);
        else if (this.state === CONNECTED) {
          this.finish(answer.frame as Frame, answer.receipt, answer.extra);
        }
      } catch (error) {
        // Something called while the answer went out threw (a listener of the broker's
        // events, say): the session ends with it, as a failed frame ends it; the answers
        // behind it are still counted off, and nothing is left to reject unhandled.
        try {
          this.failOn(answer.frame, error);
        } catch {
          // Ending already.
        }
      }
    }
    if (
      !this.refusing &&
      this.answers.length - this.answersAt <= this.options.maxPendingSends / 2
    ) {
      // The frames read past the bound first (in order; past it again, the rest wait again),
      // then the socket.
      const frames = this.readPastBound;
      this.readPastBound = undefined;
      if (frames) for (const frame of frames) this.handle(frame);
      if (!this.readPastBound && this.readPastFailure !== undefined) {
        const failure = this.readPastFailure;
        this.readPastFailure = undefined;
        // Unless a frame before the bad bytes was refused already: its ERROR is the one.
        if (!this.refusing && this.state < CLOSING) this.refuse(undefined, failure, undefined);
      }
      // Handling those may have refused one (reading stays off then) or closed the session.
      if (!this.readPastBound && !this.refusing && this.state < CLOSING) {
        this.resumeReading(WAITING);
      }
    }
    if (this.answersAt === this.answers.length) {
      this.answers = [];
      this.answersAt = 0;
    } else if (this.answersAt > 1024 && this.answersAt * 2 > this.answers.length) {
      this.answers = this.answers.slice(this.answersAt);
      this.answersAt = 0;
    }
  }

  /** Called by the CONNECT handler once the version is agreed and the user known. */
  connectedAs(version: StompVersion, identity: Identity, heartbeat: Header): void {
    if (this.state !== CONNECTING) return;
    const { user } = identity;
    this.negotiated = version;
    this.identity = identity;
    this.parser.setEscapes(version);
    this.state = CONNECTED;
    const [sendEvery, expectEvery] = heartbeat[1].split(',').map(Number) as [number, number];
    this.sendFrame(
      createFrame('CONNECTED', [
        ['version', version],
        heartbeat,
        ['session', this.id],
        ['server', this.options.serverName],
        ...(user ? ([['user-name', user]] as Header[]) : []),
      ]),
    );
    this.startHeartbeats(sendEvery, expectEvery);
    this.expireAt(identity.expiresAt);
    this.host.connected(this);
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
        // A client held back (throttled, or waiting for its SENDs to be
        // answered) is not read, so it cannot look alive: it is.
        if (Date.now() - this.lastReadAt > limit && this.pausedBy === 0) {
          this.fail(new StompError('STOMP_ERR_HEARTBEAT_TIMEOUT', { detail: `${limit} ms` }));
        }
      });
    }
  }

  /** Ends the session when its token expires (an expired one is refused at CONNECT). */
  private expireAt(expiresAt: number | undefined): void {
    if (expiresAt === undefined) return;
    // setTimeout holds at most about 24.8 days; a later expiry is checked again then.
    const wait = Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1);
    const timer = setTimeout(() => {
      if (Date.now() < expiresAt) this.expireAt(expiresAt);
      else this.fail(new StompError('STOMP_ERR_TOKEN_EXPIRED'));
    }, wait);
    timer.unref();
    this.timers ??= [];
    this.timers.push(timer);
  }

  // ---- frames out ----

  /** Encodes and queues a frame; a client far behind on reading is dropped. */
  sendFrame(frame: Frame): void {
    this.stats.frameOut(frame.command);
    this.connection.write(encodeFrame(frame, this.escapes));
    this.checkBacklog();
  }

  /** Sends RECEIPT (STOMP 1.2 "RECEIPT"). */
  sendReceipt(receiptId: string, extra: Header[] = []): void {
    this.sendFrame(createFrame('RECEIPT', [['receipt-id', receiptId], ...extra]));
  }

  /** Consumer: one MESSAGE, its shared part encoded once per message. */
  deliver(
    sub: Subscription,
    encoded: EncodedMessage,
    ackId: string | undefined,
    redelivered: boolean,
    resume: string | undefined,
  ): void {
    const mode = this.escapes;
    const connection = this.connection;
    this.stats.sent.MESSAGE++;
    connection.write(sub.head);
    if (ackId !== undefined || redelivered || resume !== undefined) {
      connection.write(deliveryHeaders(ackId, redelivered, resume, mode));
    }
    connection.write(encoded.tail(mode));
    // The router asked `writable` just before; note when this write filled
    // the output, so that the drain tells it to go on.
    if (connection.bufferedAmount >= this.options.highWaterMark) this.blocked = true;
  }

  /** Consumer: an `auto` delivery's consumption is being recorded; DISCONNECT waits for it. */
  recording(done: Promise<void>): void {
    this.unrecorded ??= new Set();
    const pending = this.unrecorded;
    pending.add(done);
    done.then(
      () => pending.delete(done),
      (error: unknown) => {
        pending.delete(done);
        this.recordFailure ??= error;
      },
    );
  }

  /**
   * Once every consumption this session's `auto` deliveries caused is
   * durable (those made while waiting too, until {@link leaving} stops
   * them); rejects with the first that could not be recorded. Nothing to
   * wait for: undefined.
   */
  recorded(): Promise<void> | undefined {
    if (!this.unrecorded?.size && this.recordFailure === undefined) return undefined;
    const drain = async () => {
      while (this.unrecorded?.size) await Promise.all(this.unrecorded);
      if (this.recordFailure !== undefined) throw this.recordFailure;
    };
    return drain();
  }

  /** Consumer: DISCONNECT was handled; queues offer nothing more while its RECEIPT waits. */
  get leaving(): boolean {
    return this.disconnecting;
  }

  /** Consumer: false while the unsent output is above the high-water mark. */
  get writable(): boolean {
    return this.state === CONNECTED && this.connection.bufferedAmount < this.options.highWaterMark;
  }

  /** Consumer: a topic message found this connection too far behind. */
  overflow(): void {
    this.fail(new StompError('STOMP_ERR_SLOW_CONSUMER'));
  }

  /** Consumer: too many unacknowledged messages. */
  tooManyPending(limit: number): void {
    this.fail(
      new StompError('STOMP_ERR_SLOW_CONSUMER', {
        detail: `more than ${limit} unacknowledged messages`,
      }),
    );
  }

  private checkBacklog(): void {
    const buffered = this.connection.bufferedAmount;
    if (buffered >= this.options.highWaterMark) this.blocked = true;
    if (this.state < CLOSING && buffered > 2 * this.options.highWaterMark) {
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
    // The broker's `error` event reports it (a logger writes the stack of an internal one).
    this.closeError = err;
    // A slow consumer found while handling its own SEND is no refusal of that SEND.
    if (!CONNECTION_ERRORS.has(err.code)) this.refused = this.handling;
    this.reason =
      err.code === 'STOMP_ERR_SHUTDOWN'
        ? 'shutdown'
        : err.code === 'STOMP_ERR_HEARTBEAT_TIMEOUT'
          ? 'heartbeat-timeout'
          : 'error';
    this.stats.error(err.code);
    const headers: Header[] = [['message', err.code]];
    if (receiptId !== undefined) headers.push(['receipt-id', receiptId]);
    headers.push(...extra, ['content-type', 'text/plain']);
    this.connection.write(encodeFrame(createFrame('ERROR', headers, err.message), this.escapes));
    this.close(err.code === 'STOMP_ERR_SHUTDOWN' ? WS_GOING_AWAY : WS_PROTOCOL_ERROR);
  }

  /** Flushes what is queued and closes (DISCONNECT, or after ERROR). */
  close(code = WS_NORMAL): void {
    if (this.state >= CLOSING) return;
    try {
      this.cleanup();
    } finally {
      // Closed even when a listener told of the close (the broker's `disconnect`) throws.
      this.connection.end(code, this.options.closeTimeoutMs);
    }
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
    this.state = CLOSING;
    this.held = undefined;
    this.readPastBound = undefined;
    this.resumeReading(HOLDING);
    this.throttle?.stop();
    // Read again so that the close can complete.
    this.resumeReading(WAITING);
    this.clearTimers();
    for (const sub of this.subs.values()) this.router.unsubscribe(sub);
    this.subs.clear();
    this.openTransactions?.clear();
    this.host.closed(this, this.closeError);
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
