import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { Registry as MetricsRegistry } from 'prom-client';
import { destinationKind, destinationUser } from './broker/destination.js';
import { LocalFanout } from './broker/local-fanout.js';
import { messageHeaders } from './broker/message.js';
import { type BrokerOptions, DEFAULT_BROKER_OPTIONS } from './broker/options.js';
import { Router } from './broker/router.js';
import type { Fanout, FanoutReadiness } from './broker/seams.js';
import type { Subscription } from './broker/subscription.js';
import { StompError } from './errors.js';
import type { Header } from './frame/frame.js';
import { type CloseReason, connectionLog, type Logger } from './ops/log.js';
import { createMetrics } from './ops/metrics.js';
import { addressOf, ConnectionLimits, clientIp } from './security/connection-limits.js';
import type { Access, Identity } from './session/api.js';
import { DEFAULT_SESSION_OPTIONS, type SessionOptions } from './session/options.js';
import { type ConnectRequest, Session, type SessionHost } from './session/session.js';
import type { Connection, TransportKind } from './transport/connection.js';
import { StreamConnection } from './transport/stream-connection.js';
import { checkPasscode } from './users.js';
import { VERSION } from './version.js';

/**
 * What `authenticate` decides about a CONNECT: `true` accepts it with the
 * login it claims (none: anonymous), a string accepts it as that user, an
 * object as its `user` with `scopes` (grants, e.g. a JWT's `scope` claim)
 * until `expiresAt` (ms since 1970: the session then ends with ERROR
 * `STOMP_ERR_TOKEN_EXPIRED`), `false` refuses it (ERROR
 * `STOMP_ERR_AUTH_FAILED`). Throwing a {@link StompError} refuses it with that code.
 */
export type AuthResult =
  | boolean
  | string
  | {
      readonly user?: string | undefined;
      readonly scopes?: readonly string[] | undefined;
      readonly expiresAt?: number | undefined;
    };

/** Checks a CONNECT; may be asynchronous (frames behind the CONNECT wait). */
export type Authenticate = (request: ConnectRequest) => AuthResult | Promise<AuthResult>;

/** Who a session is, as every event tells it. */
export interface SessionInfo {
  /** The `session` header of CONNECTED. */
  readonly sessionId: string;
  /** The authenticated (or claimed) user; undefined when anonymous or not connected yet. */
  readonly user: string | undefined;
  readonly remoteAddress: string;
  readonly transport: TransportKind;
}

/** A connected session as the authorization hooks see it. */
export interface Principal extends SessionInfo {
  /** Scopes granted with the login (`AuthResult.scopes`). */
  readonly scopes: readonly string[];
}

/**
 * Decides whether a session may SUBSCRIBE to (`authorizeSubscribe`) or SEND
 * to (`authorizeSend`) a destination, given as its routing name
 * (`/user/<name>/queue/x` for user destinations). `false` refuses the frame
 * with ERROR `STOMP_ERR_FORBIDDEN`; a promise holds the frames behind it.
 */
export type Authorize = (
  principal: Principal,
  destination: string,
  headers: readonly Header[],
) => boolean | Promise<boolean>;

/** The events of a {@link StompBroker}. */
export interface BrokerEvents {
  /** CONNECTED was sent. */
  connect: [info: SessionInfo];
  /**
   * A connection ended (after CONNECT or not): `reason` says how, `error` is
   * the ERROR frame's when it ended with one, `durationMs` counts from the
   * connection's accept.
   */
  disconnect: [
    info: SessionInfo & {
      readonly error: StompError | undefined;
      readonly reason: CloseReason;
      readonly durationMs: number;
    },
  ];
  /** A SUBSCRIBE was accepted; `destination` is the routing name. */
  subscribe: [info: SessionInfo & { readonly id: string; readonly destination: string }];
  /** A subscription ended by UNSUBSCRIBE. */
  unsubscribe: [info: SessionInfo & { readonly id: string; readonly destination: string }];
  /**
   * A session was sent an ERROR frame (then closed). When the ERROR refused a
   * frame, `command` is that frame's command and `destination` its
   * destination header (if it had one).
   */
  error: [
    info: SessionInfo & {
      readonly error: StompError;
      readonly command: string | undefined;
      readonly destination: string | undefined;
    },
  ];
}

/** Everything {@link createBroker} takes; every field is optional. */
export interface StompBrokerOptions extends SessionOptions, BrokerOptions {
  /** Users allowed to connect, login to passcode; empty (default) means anonymous access. */
  users: ReadonlyMap<string, string>;
  /**
   * Decides every CONNECT. Default: with `users`, the login and passcode
   * must match one; without, anyone may connect and claim any login.
   */
  authenticate: Authenticate | undefined;
  /**
   * Whether a user destination (`/user/<name>/…`) may name `user`. Default:
   * with `users`, one of them; without, anyone.
   */
  knowsUser: ((user: string) => boolean) | undefined;
  /** Most connections at once; past it a connection is refused. 0 (default): no limit. */
  maxConnections: number;
  /** Most connections from one client address at once. 0 (default): no limit. */
  maxConnectionsPerIp: number;
  /** May a session SUBSCRIBE to a destination? Default: yes. */
  authorizeSubscribe: Authorize | undefined;
  /** May a session SEND to a destination? Default: yes. */
  authorizeSend: Authorize | undefined;
  /**
   * The cluster backend. Default: the in-process {@link LocalFanout} (one
   * process is the whole broker); `new KafkaFanout(...)` from `stompbus/kafka`
   * for cluster mode.
   */
  fanout: Fanout | undefined;
  /**
   * Where log lines go (pino's shape: `logger: pino()` fits): one line per
   * connection open and close, per ERROR sent, and the stack of an internal
   * error. Default none: an embedded broker logs nothing unless asked.
   */
  logger: Logger | undefined;
}

/** The defaults of {@link StompBrokerOptions}. */
export const DEFAULT_STOMP_BROKER_OPTIONS: Readonly<StompBrokerOptions> = Object.freeze({
  ...DEFAULT_SESSION_OPTIONS,
  ...DEFAULT_BROKER_OPTIONS,
  serverName: `stompbus/${VERSION}`,
  users: new Map<string, string>(),
  authenticate: undefined,
  knowsUser: undefined,
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  authorizeSubscribe: undefined,
  authorizeSend: undefined,
  fanout: undefined,
  logger: undefined,
});

/** How {@link StompBroker.close} closes the sessions. */
export interface CloseOptions {
  /**
   * How long clients get, after the last ERROR, to read it and close before
   * their connections are destroyed, in ms. Default `closeTimeoutMs`.
   */
  graceMs?: number;
  /** Time over which the sessions get their ERROR one after the other, in ms. Default 0: all at once. */
  spreadMs?: number;
}

/** A body for {@link StompBroker.publish}: text (sent as UTF-8) or bytes. */
export type Body = string | Uint8Array;

/**
 * A STOMP broker as a library (in the manner of aedes): serve any duplex
 * stream with {@link handle}, a WebSocket endpoint with `attachWebSocket`,
 * push from app code with {@link publish} and {@link sendToUser}, and listen
 * to its typed events. `StompServer` is one user of it.
 */
export class StompBroker extends EventEmitter<BrokerEvents> implements SessionHost {
  readonly options: StompBrokerOptions;
  readonly router: Router;
  readonly fanout: Fanout;
  /** Open sessions (connected or not yet), until they start closing. */
  readonly sessions = new Set<Session>();
  /** Principals of connected sessions, for the authorization hooks. */
  private readonly principals = new WeakMap<Session, Principal>();
  /** Sessions whose connection is not closed yet (closing ones included). */
  private readonly open = new Set<Session>();
  /** Sessions per user on this instance (the connection registry's source). */
  private readonly users = new Map<string, number>();
  private readonly started: Promise<void>;
  private hasStarted = false;
  private closing: Promise<void> | undefined;
  /** While closing spreads its ERRORs: send the rest now. */
  private hurry: (() => void) | undefined;
  /** `maxConnections` and `maxConnectionsPerIp`, counted from accept to the socket's close. */
  private readonly limits: ConnectionLimits;
  /** The address each counted session was counted under. */
  private readonly counted = new Map<Session, string>();
  private registry: MetricsRegistry | undefined;

  constructor(options: Partial<StompBrokerOptions> = {}) {
    super();
    this.options = { ...DEFAULT_STOMP_BROKER_OPTIONS, ...options };
    this.fanout = this.options.fanout ?? new LocalFanout();
    this.limits = new ConnectionLimits(
      this.options.maxConnections,
      this.options.maxConnectionsPerIp,
    );
    this.router = new Router(
      this.options,
      this.fanout.bus,
      this.fanout.log,
      undefined,
      this.fanout.queues,
    );
    // Embedded, the sink is attached at once; Kafka connects in the background.
    this.started = this.fanout.start({
      deliver: (message) => this.router.deliver(message),
      consumed: (destination, id) => this.router.consumed(destination, id),
      assigned: (queue, consumer, message, deliveries) =>
        this.router.assigned(queue, consumer, message, deliveries),
      localUsers: () => this.users.keys(),
      connections: () => this.sessions.size,
    });
    this.started.then(
      () => {
        this.hasStarted = true;
      },
      () => {},
    );
    if (this.options.logger) {
      const log = connectionLog(this.options.logger);
      this.on('connect', log.connect);
      this.on('disconnect', log.disconnect);
      this.on('error', log.error);
    }
  }

  /**
   * Serves STOMP over one duplex stream (a `net` or `tls` socket, or any
   * other): `net.createServer(broker.handle)`. Bound, so it can be passed as is.
   */
  readonly handle = (stream: Duplex, transport?: TransportKind): void => {
    const kind = transport ?? (stream instanceof TLSSocket ? 'tls' : 'tcp');
    this.accept(new StreamConnection(stream, kind));
  };

  /** Serves STOMP over a connection of any transport (`attachWebSocket` uses it). */
  accept(connection: Connection): void {
    if (this.closing) {
      connection.destroy();
      return;
    }
    const stats = this.router.stats;
    connection.meter = stats;
    if (connection.kind === 'ws' || connection.kind === 'wss') stats.accepted.websocket++;
    else stats.accepted.tcp++;
    const session = new Session(this, connection);
    this.sessions.add(session);
    this.open.add(session);
    if (!this.limits.active) return;
    const ip = clientIp(addressOf(connection.remoteAddress));
    if (this.limits.take(ip)) this.counted.set(session, ip);
    // Refused with a reason the client can show; the sessions already open go on.
    else session.fail(new StompError('STOMP_ERR_TOO_MANY_CONNECTIONS'));
  }

  /**
   * Whether a new connection from `remoteAddress` (a client IP address, as
   * `socket.remoteAddress` gives it) is within `maxConnections` and
   * `maxConnectionsPerIp`. `attachWebSocket` asks before completing an
   * upgrade, so that a refusal is an HTTP 503 rather than a session.
   */
  admits(remoteAddress: string): boolean {
    return !this.closing && this.limits.admits(clientIp(remoteAddress));
  }

  /**
   * This broker's Prometheus metrics (a prom-client `Registry` of its own,
   * made on first use): `await broker.metrics.metrics()` is the text of a
   * scrape, `broker.metrics.contentType` its content type. Counters count
   * from the broker's start; the Kafka produce-latency histogram observes
   * from the first use of this property on.
   */
  get metrics(): MetricsRegistry {
    this.registry ??= createMetrics(this);
    return this.registry;
  }

  /** Resolves once the fan-out has started (cluster mode: Kafka joined, history read back). */
  ready(): Promise<void> {
    return this.started;
  }

  /**
   * Publishes a message from app code to `destination` (`/topic/…`,
   * `/queue/…`, `/user/<name>/…`), as a SEND would. Resolves when it is
   * safe (cluster mode: after Kafka's ack); rejects with a coded error.
   */
  async publish(destination: string, body: Body, headers: Record<string, string> = {}) {
    if (!destinationKind(destination)) {
      throw new StompError('STOMP_ERR_INVALID_DESTINATION', { detail: destination });
    }
    // As for a client's SEND: nobody fills mailboxes for users that do not exist.
    const user = destination.startsWith('/user/') ? destinationUser(destination) : undefined;
    if (user !== undefined && !this.knowsUser(user)) {
      throw new StompError('STOMP_ERR_INVALID_DESTINATION', {
        detail: `${destination}: no user ${JSON.stringify(user)}`,
      });
    }
    const list: Header[] = messageHeaders(Object.entries(headers));
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    await this.router.send(destination, list, bytes);
  }

  /**
   * Sends to one user's destination: `sendToUser('alice', '/queue/inbox', …)`
   * reaches alice's subscriptions of `/user/queue/inbox` on every instance
   * (kept while she is offline), as Spring's `convertAndSendToUser` does.
   */
  sendToUser(user: string, destination: string, body: Body, headers: Record<string, string> = {}) {
    if (!user || user.includes('/') || !/^\/(queue|topic)\/./.test(destination)) {
      return Promise.reject(
        new StompError('STOMP_ERR_INVALID_DESTINATION', { detail: `${user} ${destination}` }),
      );
    }
    return this.publish(`/user/${user}${destination}`, body, headers);
  }

  /** The instances where `user` has a session now (cluster-wide in cluster mode). */
  whereIs(user: string): string[] {
    return this.fanout.registry.whereIs(user);
  }

  /** Messages waiting for `user` in their user queues on this instance. */
  waitingFor(user: string): number {
    return this.router.mailboxes.count(user);
  }

  /** Messages waiting in a queue (for tests and metrics). */
  queueDepth(destination: string): number {
    return this.router.depth(destination);
  }

  /**
   * Whether this broker should be given clients now: started, not closing,
   * and its fan-out ready (cluster mode: Kafka connected, history read back).
   */
  readiness(): FanoutReadiness {
    if (this.closing) return { ready: false, reason: 'closing' };
    if (!this.hasStarted) return { ready: false, reason: 'starting' };
    const { fanout } = this;
    if (fanout.readiness) return fanout.readiness();
    return fanout.ready ? { ready: true } : { ready: false, reason: 'fan-out not ready' };
  }

  /**
   * Closes: new connections are refused, every session gets an ERROR
   * (`STOMP_ERR_SHUTDOWN`) and is closed, all at once or, with `spreadMs`,
   * one after the other evenly over that time (so that their reconnects do
   * not all arrive elsewhere in the same second); connections still open
   * `graceMs` (default `closeTimeoutMs`) after the last ERROR are destroyed;
   * then the fan-out stops (cluster mode: what was receipted is flushed to
   * Kafka first). A number is `graceMs`. Called again while spreading with
   * `spreadMs` 0, the sessions left get their ERROR at once.
   */
  close(options: number | CloseOptions = {}): Promise<void> {
    const { graceMs = this.options.closeTimeoutMs, spreadMs = 0 } =
      typeof options === 'number' ? { graceMs: options } : options;
    if (this.closing) {
      if (spreadMs <= 0) this.hurry?.();
      return this.closing;
    }
    this.closing = (async () => {
      await this.shutdownSessions(spreadMs);
      const deadline = Date.now() + graceMs;
      while (this.open.size > 0 && Date.now() < deadline) await sleep(20);
      for (const session of this.open) session.connection.destroy();
      this.router.close();
      await this.fanout.stop();
    })();
    return this.closing;
  }

  /** Sends every session its shutdown ERROR, spread evenly over `spreadMs` (first at once, last at the end). */
  private async shutdownSessions(spreadMs: number): Promise<void> {
    const sessions = [...this.sessions];
    if (spreadMs > 0 && sessions.length > 1) {
      let hurried = false;
      const hurry = new Promise<void>((resolve) => {
        this.hurry = () => {
          hurried = true;
          resolve();
        };
      });
      const start = Date.now();
      const step = spreadMs / (sessions.length - 1);
      for (const [i, session] of sessions.entries()) {
        const wait = start + i * step - Date.now();
        if (wait > 0 && !hurried) await Promise.race([sleep(wait), hurry]);
        session.shutdown();
      }
      this.hurry = undefined;
    }
    // Those that came while spreading (accept refuses new ones) and any left.
    for (const session of [...this.sessions]) session.shutdown();
  }

  // ---- SessionHost ----

  authenticate(request: ConnectRequest): Identity | Promise<Identity> {
    const decide = this.options.authenticate ?? ((r) => this.checkUsers(r));
    const result = decide(request);
    // A synchronous decision keeps CONNECT synchronous (no frames held).
    return result instanceof Promise
      ? result.then((r) => this.decided(request, r))
      : this.decided(request, result);
  }

  private decided(request: ConnectRequest, result: AuthResult): Identity {
    if (result === false) {
      throw new StompError('STOMP_ERR_AUTH_FAILED', {
        detail: `login ${JSON.stringify(request.login)}`,
      });
    }
    if (result === true) return { user: request.login, scopes: [], expiresAt: undefined };
    if (typeof result === 'string') return { user: result, scopes: [], expiresAt: undefined };
    return { user: result.user, scopes: result.scopes ?? [], expiresAt: result.expiresAt };
  }

  authorize(
    session: Session,
    access: Access,
    destination: string,
    headers: readonly Header[],
  ): boolean | Promise<boolean> {
    const hook = access === 'read' ? this.options.authorizeSubscribe : this.options.authorizeSend;
    return hook ? hook(this.principalOf(session), destination, headers) : true;
  }

  knowsUser(user: string): boolean {
    if (this.options.knowsUser) return this.options.knowsUser(user);
    return this.options.users.size === 0 || this.options.users.has(user);
  }

  /** A session's principal, made once (hooks run per SEND: no object per frame). */
  private principalOf(session: Session): Principal {
    let principal = this.principals.get(session);
    if (!principal) {
      principal = Object.freeze({ ...info(session), scopes: session.scopes });
      this.principals.set(session, principal);
    }
    return principal;
  }

  connected(session: Session): void {
    const { user } = session;
    if (user) {
      const had = this.users.get(user) ?? 0;
      this.users.set(user, had + 1);
      if (had === 0) this.fanout.registry.usersChanged(user, true);
    }
    this.emit('connect', info(session));
  }

  subscriptionChanged(session: Session, sub: Subscription, added: boolean): void {
    const event = { ...info(session), id: sub.id, destination: sub.destination };
    if (added) this.emit('subscribe', event);
    else this.emit('unsubscribe', event);
  }

  closed(session: Session, error: StompError | undefined): void {
    this.sessions.delete(session);
    // Only connected sessions have a user, and each was counted in connected().
    if (session.user) this.userGone(session.user);
    const who = info(session);
    if (error && this.listenerCount('error') > 0) {
      const refused = session.refusedFrame;
      this.emit('error', {
        ...who,
        error,
        command: refused?.command,
        destination: refused?.destination,
      });
    }
    this.emit('disconnect', {
      ...who,
      error,
      reason: session.closeReason ?? 'socket-closed',
      durationMs: Date.now() - session.openedAt,
    });
  }

  ended(session: Session): void {
    this.open.delete(session);
    const ip = this.counted.get(session);
    if (ip !== undefined) {
      this.counted.delete(session);
      this.limits.release(ip);
    }
  }

  private userGone(user: string): void {
    const had = this.users.get(user) ?? 0;
    if (had <= 1) {
      this.users.delete(user);
      this.fanout.registry.usersChanged(user, false);
    } else {
      this.users.set(user, had - 1);
    }
  }

  /** The default check: anonymous without users, else login and passcode. */
  private checkUsers(request: ConnectRequest): AuthResult {
    const { users } = this.options;
    if (users.size === 0) return true;
    return checkPasscode(users, request.login, request.passcode)
      ? (request.login as string)
      : false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function info(session: Session): SessionInfo {
  return {
    sessionId: session.id,
    user: session.user,
    remoteAddress: session.connection.remoteAddress,
    transport: session.connection.kind,
  };
}

/**
 * Makes a broker: `const broker = createBroker({ users, fanout, authenticate })`.
 * It serves at once (embedded) and `await broker.ready()` waits for a cluster
 * backend to have started.
 */
export function createBroker(options: Partial<StompBrokerOptions> = {}): StompBroker {
  return new StompBroker(options);
}
