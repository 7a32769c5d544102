import type { Replay } from '../broker/history.js';
import type { Position } from '../broker/message.js';
import type { Router } from '../broker/router.js';
import type { Subscription, SubscriptionSpec } from '../broker/subscription.js';
import type { Frame, Header } from '../frame/frame.js';
import type { SessionOptions } from './options.js';

/** The protocol versions a session may speak. */
export type StompVersion = '1.0' | '1.1' | '1.2';

/** What a handler returns: nothing, a promise the RECEIPT waits for, or extra RECEIPT headers. */
export type HandlerResult = void | Promise<void> | Header[];

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
  /** Checks a CONNECT's credentials: the user, or a promise of it; throws when refused. */
  authenticate(
    login: string | undefined,
    passcode: string | undefined,
    headers: Header[],
  ): string | undefined | Promise<string | undefined>;
  /** Whether a user destination may name `user`. */
  knowsUser(user: string): boolean;
  /** Handles the frames behind an asynchronous CONNECT only once `work` is done. */
  holdUntil(work: Promise<void>): void;
  /** Sends CONNECTED and starts heart-beats. */
  connectedAs(version: StompVersion, user: string | undefined, heartbeat: Header): void;
  /** Sends ERROR and closes. */
  fail(error: unknown, receiptId?: string, extra?: Header[]): void;
  /** Subscribes through the router and keeps the subscription under its client id. */
  subscribe(
    spec: Omit<SubscriptionSpec, 'consumer' | 'head'>,
    resumeAfter: Position | undefined,
  ): Replay | undefined;
  /** Ends the subscription with client id `id`; false when there is none. */
  unsubscribe(id: string): boolean;
  /** Opens transaction `tx`; false when it is open already. */
  begin(tx: string): boolean;
  /** Open transactions. */
  readonly transactionCount: number;
  /** The frames buffered in open transaction `tx`, to add to; undefined when not open. */
  transaction(tx: string): Frame[] | undefined;
  /** Closes transaction `tx` and returns its frames; undefined when not open. */
  endTransaction(tx: string): Frame[] | undefined;
}
