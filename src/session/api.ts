import type { Replay } from '../broker/history.js';
import type { Position } from '../broker/message.js';
import type { Router } from '../broker/router.js';
import type { Subscription, SubscriptionSpec } from '../broker/subscription.js';
import type { Frame, Header } from '../frame/frame.js';
import type { SessionOptions } from './options.js';

/** The protocol versions a session may speak. */
export type StompVersion = '1.0' | '1.1' | '1.2';

/** What a handler returns: nothing or extra RECEIPT headers, or a promise of them the RECEIPT waits for. */
// biome-ignore lint/suspicious/noConfusingVoidType: handlers return the router's void or Promise<void> as they are.
export type HandlerResult = void | Header[] | Promise<void | Header[]>;

/** What a RECEIPT may add: extra headers, or nothing. */
export type ReceiptExtra = Header[] | undefined;

/** Who a CONNECT authenticated: the user, the grants a token carried, when its token expires. */
export interface Identity {
  readonly user: string | undefined;
  /** Scopes granted with the login (e.g. a JWT's `scope` claim). */
  readonly scopes: readonly string[];
  /** When the session must end (a token's `exp`), ms since 1970; undefined: never. */
  readonly expiresAt: number | undefined;
}

/** What a frame does to a destination: SUBSCRIBE reads, SEND writes. */
export type Access = 'read' | 'write';

/**
 * What the command handlers (`handlers/`) may see and do of a session: its
 * state is the session's own, changed only through these methods.
 */
export interface SessionApi {
  /** Negotiated protocol version (until CONNECT: 1.2). */
  readonly version: StompVersion;
  /** The authenticated (or, with anonymous access, claimed) user. */
  readonly user: string | undefined;
  /** True once CONNECTED was sent and until the connection starts closing. */
  readonly connected: boolean;
  readonly options: SessionOptions;
  /** The router this session sends to. */
  readonly router: Router;
  /** Subscriptions by client id. */
  readonly subscriptions: ReadonlyMap<string, Subscription>;
  /** Checks a CONNECT's credentials: who it is, or a promise of it; throws when refused. */
  authenticate(
    login: string | undefined,
    passcode: string | undefined,
    headers: Header[],
  ): Identity | Promise<Identity>;
  /**
   * Runs `then` once the broker allows `access` to `destination` (a routing
   * name); refuses with STOMP_ERR_FORBIDDEN otherwise. When the decision is
   * asynchronous the frames behind this one wait for it.
   */
  authorized<T>(
    access: Access,
    destination: string,
    headers: readonly Header[],
    then: () => T,
  ): T | Promise<Awaited<T>>;
  /** Whether a user destination may name `user`. */
  knowsUser(user: string): boolean;
  /**
   * Handles the frames behind an asynchronous CONNECT (or SUBSCRIBE) only
   * once `work` is done; when it fails the session fails (`failHere`, the
   * default) or the RECEIPT chain reports it.
   */
  holdUntil(work: Promise<unknown>, failHere?: boolean): void;
  /** Sends CONNECTED and starts heart-beats (and the identity's expiry). */
  connectedAs(version: StompVersion, identity: Identity, heartbeat: Header): void;
  /** Sends ERROR and closes. */
  fail(error: unknown, receiptId?: string, extra?: Header[]): void;
  /** Subscribes through the router and keeps the subscription under its client id. */
  subscribe(
    spec: Omit<SubscriptionSpec, 'consumer' | 'head'>,
    resumeAfter: Position | undefined,
  ): Replay | undefined;
  /** Ends the subscription with client id `id`; false when there is none. */
  unsubscribe(id: string): boolean;
  /**
   * Resolves once the consumption records this session's `auto` deliveries
   * caused are durable (cluster mode); rejects with the first that failed;
   * undefined when none is pending.
   */
  recorded(): Promise<void> | undefined;
  /** Opens transaction `tx`; false when it is open already. */
  begin(tx: string): boolean;
  /** Open transactions. */
  readonly transactionCount: number;
  /** The frames buffered in open transaction `tx`, to add to; undefined when not open. */
  transaction(tx: string): Frame[] | undefined;
  /** Closes transaction `tx` and returns its frames; undefined when not open. */
  endTransaction(tx: string): Frame[] | undefined;
}
