import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
} from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Fanout } from './broker/seams.js';
import type { KafkaInterest } from './cluster/interest.js';
import { DEFAULT_KAFKA_FANOUT_OPTIONS, type RecordFormat } from './cluster/kafka-options.js';
import { type AdminOptions, AdminServer, DEFAULT_ADMIN_OPTIONS } from './ops/admin.js';
import { securityHooks } from './security/hooks.js';
import { DEFAULT_SECURITY_OPTIONS, type SecurityOptions } from './security/options.js';
import type { Session } from './session/session.js';
import {
  createBroker,
  DEFAULT_STOMP_BROKER_OPTIONS,
  type StompBroker,
  type StompBrokerOptions,
} from './stomp-broker.js';
import { attachWebSocket, type WebSocketEndpoint } from './transport/websocket.js';

/** Where and how a {@link StompServer} listens. */
export interface ListenerOptions {
  /** Interface to listen on. Default `0.0.0.0`. */
  host: string;
  /** WebSocket (HTTP) port; 0 picks a free one. Default 61614. */
  port: number;
  /** WebSocket endpoint path. Default `/stomp`. */
  wsPath: string;
  /** STOMP over TCP port; 0 picks a free one, `null` turns TCP off. Default 61613. */
  tcpPort: number | null;
  /** PEM certificate and key files: serve `wss://` and STOMP over TLS. Default off. */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /**
   * Shutdown grace: how long clients get, after the last ERROR, to read it
   * before their connections are cut, in ms. Default 5,000.
   */
  shutdownTimeoutMs: number;
  /**
   * {@link StompServer.drain} (SIGTERM): how long new connections are still
   * served once `/readyz` says 503, so that a load balancer notices first, in
   * ms. Default 2,000: four of examples/haproxy.cfg's 500 ms health checks.
   */
  drainDelayMs: number;
  /**
   * {@link StompServer.drain} (SIGTERM): the time over which the open sessions
   * get their ERROR (`STOMP_ERR_SHUTDOWN`) one after the other, so that their
   * reconnects reach the other instances spread out, in ms. Default 10,000.
   */
  drainTimeMs: number;
  /** WebSocket `Origin`s allowed (`*`: any); requests without `Origin` always are. Default: any. */
  allowedOrigins: string[] | undefined;
}

/** Cluster mode, as the command line sets it up (a Kafka fan-out). */
export interface ClusterOptions {
  /** Kafka bootstrap servers (`host:port[,…]`): cluster mode. Default off (embedded broker). */
  kafkaBrokers: string | undefined;
  /** The Kafka topic of `/topic/…` traffic. Default `stompbus.topics`. */
  kafkaTopic: string;
  /** Partitions of `kafkaTopic` (and of its users topic) when it is created. Default 60. */
  kafkaPartitions: number;
  /** Kafka topics bridged to a destination, e.g. `{ prices: '/topic/prices' }`. Default none. */
  kafkaBridges: Record<string, string>;
  /** How often the connection registry hears from this instance, ms. Default 2,000. */
  presenceIntervalMs: number;
  /** Longest wait of a SEND for Kafka (an outage only delays its RECEIPT), ms. Default 30,000. */
  kafkaSendTimeoutMs: number;
  /** Messages waiting for Kafka on this instance; beyond it SENDs get ERROR. Default 10,000. */
  kafkaMaxPending: number;
  /** Bytes of messages waiting for Kafka on this instance; beyond it SENDs get ERROR. Default 64 MiB. */
  kafkaMaxPendingBytes: number;
  /**
   * Which partitions of `kafkaTopic` and its users topic an instance fetches: `subscribed`
   * (those holding a destination a local session subscribes to or a user with a session
   * here, docs/cluster-interest.md) or `all`. Default
   * `subscribed` (the Kafka fan-out's own default is `all`).
   */
  kafkaInterest: KafkaInterest;
  /** With `subscribed`: how long a partition nobody here wants is still fetched, ms. Default 30,000. */
  kafkaInterestLingerMs: number;
  /** Least time between fetch starts from a broker after one that brought records, ms (`--kafka-fetch-interval`). Default 5. */
  kafkaFetchIntervalMs: number;
  /** Least time between the starts of two produce requests unless a full batch waits, ms (`--kafka-produce-interval`). Default 0. */
  kafkaProduceIntervalMs: number;
  /** How STOMP headers travel on the topics and users topics (`--kafka-headers`; see RecordFormat). */
  kafkaHeaders: RecordFormat;
  /** `/queue/…` in cluster mode: `cluster` (shared by every instance, docs/cluster-queues.md) or `local`. Default `cluster`. */
  queues: 'cluster' | 'local';
  /** Cluster queues: oldest a waiting message may get before it is dead-lettered, ms. Default 24 hours. */
  queueMaxAgeMs: number;
}

/** Everything a {@link StompServer} can be configured with: listeners, cluster, security, broker. */
export interface ServerOptions
  extends ListenerOptions,
    AdminOptions,
    ClusterOptions,
    SecurityOptions,
    StompBrokerOptions {}

/** The defaults of {@link ListenerOptions}. */
export const DEFAULT_LISTENER_OPTIONS: Readonly<ListenerOptions> = Object.freeze({
  host: '0.0.0.0',
  port: 61614,
  wsPath: '/stomp',
  tcpPort: 61613,
  tlsCert: undefined,
  tlsKey: undefined,
  shutdownTimeoutMs: 5000,
  drainDelayMs: 2000,
  drainTimeMs: 10_000,
  allowedOrigins: undefined,
});

/** How {@link StompServer.drain} drains; each defaults to the server's option. */
export interface DrainOptions {
  /** {@link ListenerOptions.drainDelayMs}. */
  delayMs?: number;
  /** {@link ListenerOptions.drainTimeMs}. */
  timeMs?: number;
}

/** What `/readyz` answers (with `connections`): 200 when `ready`, else 503. */
export interface ServerReadiness {
  readonly ready: boolean;
  /** `ready`, `not ready` (starting, or the cluster backend is not), `draining`, `stopping`. */
  readonly status: 'ready' | 'not ready' | 'draining' | 'stopping';
  /** Why not, in a few words; undefined when ready. */
  readonly reason?: string | undefined;
}

/** The defaults of {@link ClusterOptions}: the Kafka fan-out's own. */
export const DEFAULT_CLUSTER_OPTIONS: Readonly<ClusterOptions> = Object.freeze({
  kafkaBrokers: undefined,
  kafkaTopic: DEFAULT_KAFKA_FANOUT_OPTIONS.topic,
  kafkaPartitions: DEFAULT_KAFKA_FANOUT_OPTIONS.partitions,
  kafkaBridges: DEFAULT_KAFKA_FANOUT_OPTIONS.bridges,
  presenceIntervalMs: DEFAULT_KAFKA_FANOUT_OPTIONS.presenceIntervalMs,
  kafkaSendTimeoutMs: DEFAULT_KAFKA_FANOUT_OPTIONS.sendTimeoutMs,
  kafkaMaxPending: DEFAULT_KAFKA_FANOUT_OPTIONS.maxPendingRecords,
  kafkaMaxPendingBytes: DEFAULT_KAFKA_FANOUT_OPTIONS.maxPendingBytes,
  // The command scales by default; a KafkaFanout used on its own (an app's, the fan-out's
  // unit specs) reads everything unless asked, as a sink without a router declares no interest.
  kafkaInterest: 'subscribed',
  kafkaInterestLingerMs: DEFAULT_KAFKA_FANOUT_OPTIONS.interestLingerMs,
  kafkaFetchIntervalMs: DEFAULT_KAFKA_FANOUT_OPTIONS.fetchIntervalMs,
  kafkaProduceIntervalMs: DEFAULT_KAFKA_FANOUT_OPTIONS.produceIntervalMs,
  kafkaHeaders: DEFAULT_KAFKA_FANOUT_OPTIONS.recordFormat,
  queues: DEFAULT_KAFKA_FANOUT_OPTIONS.queues,
  queueMaxAgeMs: DEFAULT_KAFKA_FANOUT_OPTIONS.queueMaxAgeMs,
});

/** Every default, one place each (docs/configuration.md lists them with their flags). */
export const DEFAULT_SERVER_OPTIONS: Readonly<ServerOptions> = Object.freeze({
  ...DEFAULT_STOMP_BROKER_OPTIONS,
  ...DEFAULT_LISTENER_OPTIONS,
  ...DEFAULT_ADMIN_OPTIONS,
  ...DEFAULT_CLUSTER_OPTIONS,
  ...DEFAULT_SECURITY_OPTIONS,
});

/**
 * The `stompbus` command's server: a broker ({@link createBroker}) with a
 * WebSocket endpoint and a TCP listener (TLS for both when configured), and
 * the health endpoint on the same HTTP port; metrics, the connection registry
 * and the console on the admin port ({@link AdminServer}).
 */
export class StompServer {
  readonly options: ServerOptions;
  private current: StompBroker | undefined;
  private readonly http: HttpServer;
  private endpoint: WebSocketEndpoint | undefined;
  private tcp: NetServer | undefined;
  private stopping: Promise<void> | undefined;
  /** Where a stop or drain is: running, serving while the balancer notices, closing. */
  private phase: 'running' | 'draining' | 'stopping' = 'running';
  /** A quick stop was asked for during a drain: no more waiting nor spreading. */
  private hurried = false;
  private endDelay: (() => void) | undefined;
  /** The ports bound, kept for after the listeners closed. */
  private readonly bound: { http?: number; tcp?: number } = {};
  private adminServer: AdminServer | undefined;
  private readonly tls: { cert: Buffer; key: Buffer } | undefined;

  constructor(options: Partial<ServerOptions> = {}) {
    this.options = { ...DEFAULT_SERVER_OPTIONS, ...options };
    this.tls = this.tlsOptions();
    const onRequest = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res);
    this.http = this.tls ? createHttpsServer(this.tls, onRequest) : createHttpServer(onRequest);
  }

  /** The broker; made by {@link start}. */
  get broker(): StompBroker {
    if (!this.current) throw new Error('stompbus: StompServer.start() first');
    return this.current;
  }

  /** Open sessions. */
  get sessions(): ReadonlySet<Session> {
    return this.current?.sessions ?? new Set();
  }

  /** Starts the broker (cluster mode: joins Kafka) and both listeners. */
  async start(): Promise<void> {
    const broker = createBroker({
      ...this.options,
      ...(await securityHooks(this.options)),
      fanout: await this.fanout(),
    });
    this.current = broker;
    await broker.ready();
    this.endpoint = attachWebSocket(broker, {
      server: this.http,
      path: this.options.wsPath,
      allowedOrigins: this.options.allowedOrigins,
    });
    await listen(this.http, this.options.port, this.options.host, '--port');
    this.bound.http = (this.http.address() as AddressInfo).port;
    if (this.options.tcpPort !== null) {
      this.tcp = this.tls
        ? createTlsServer(this.tls, broker.handle)
        : createNetServer(broker.handle);
      await listen(this.tcp, this.options.tcpPort, this.options.host, '--tcp-port');
      this.bound.tcp = (this.tcp.address() as AddressInfo).port;
    }
    this.adminServer = new AdminServer(broker, this.options, this.tls);
    await this.adminServer.start();
  }

  /** The admin endpoints (metrics, registry, console); made by {@link start}. */
  get admin(): AdminServer | undefined {
    return this.adminServer;
  }

  /** The WebSocket port actually bound (still known once stopped); NaN before {@link start}. */
  get port(): number {
    return this.bound.http ?? Number.NaN;
  }

  /** The TCP port actually bound (still known once stopped), or undefined when TCP is off. */
  get tcpPort(): number | undefined {
    return this.bound.tcp;
  }

  /** `ws://` (or `wss://`) URL of the endpoint on loopback, for tests and logs. */
  get url(): string {
    const scheme = this.options.tlsCert ? 'wss' : 'ws';
    return `${scheme}://127.0.0.1:${this.port}${this.options.wsPath}`;
  }

  /**
   * Whether this instance should be given clients (what `/readyz` answers):
   * both listeners open, the broker started and, in cluster mode, Kafka
   * connected and the history read back; never while draining or stopping.
   */
  readiness(): ServerReadiness {
    if (this.phase === 'draining') {
      return { ready: false, status: 'draining', reason: 'draining: closing soon' };
    }
    if (this.phase === 'stopping') {
      return { ready: false, status: 'stopping', reason: 'closing the connections' };
    }
    const listening =
      this.http.listening && (this.options.tcpPort === null || this.tcp?.listening === true);
    if (!this.current || !listening) {
      return { ready: false, status: 'not ready', reason: 'starting' };
    }
    const broker = this.current.readiness();
    if (!broker.ready) return { ready: false, status: 'not ready', reason: broker.reason };
    return { ready: true, status: 'ready' };
  }

  /**
   * Stops at once: the TCP listener closes, every client gets an ERROR
   * (`STOMP_ERR_SHUTDOWN`) and its connection is closed; after
   * `shutdownTimeoutMs` what is left is destroyed; in cluster mode what was
   * receipted is flushed to Kafka. Resolves when everything is closed.
   * During a {@link drain}, hurries it: no more waiting, the sessions left
   * get their ERROR now.
   */
  stop(): Promise<void> {
    if (this.stopping) {
      this.hurry();
      return this.stopping;
    }
    this.stopping = this.shutdown(0, 0);
    return this.stopping;
  }

  /**
   * Drains, for a rolling restart behind a load balancer: `/readyz` answers
   * 503 at once while new connections are still served for `delayMs`
   * (default `drainDelayMs`), so that the balancer stops sending them; then
   * the TCP listener closes (WebSocket upgrades get 503), and the open
   * sessions get their ERROR one after the other, evenly over `timeMs`
   * (default `drainTimeMs`), so that their reconnects reach the other
   * instances spread out; then as {@link stop}. Resolves when everything is
   * closed; {@link stop} meanwhile hurries it.
   */
  drain(options: DrainOptions = {}): Promise<void> {
    const { delayMs = this.options.drainDelayMs, timeMs = this.options.drainTimeMs } = options;
    this.stopping ??= this.shutdown(delayMs, timeMs);
    return this.stopping;
  }

  /** True from {@link drain} or {@link stop} on. */
  get draining(): boolean {
    return this.phase !== 'running';
  }

  private hurry(): void {
    this.hurried = true;
    this.endDelay?.();
    if (this.phase === 'stopping') void this.current?.close({ spreadMs: 0 });
  }

  private async shutdown(delayMs: number, spreadMs: number): Promise<void> {
    this.phase = 'draining';
    if (delayMs > 0 && !this.hurried) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delayMs);
        this.endDelay = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.phase = 'stopping';
    // No new TCP clients; WebSocket upgrades are refused by the closing broker
    // (503), while /healthz and /readyz go on answering until the end.
    const tcpClosed = this.tcp?.listening
      ? new Promise<void>((resolve) => this.tcp?.close(() => resolve()))
      : undefined;
    await this.current?.close({
      graceMs: this.options.shutdownTimeoutMs,
      spreadMs: this.hurried ? 0 : spreadMs,
    });
    const httpClosed = this.http.listening
      ? new Promise<void>((resolve) => this.http.close(() => resolve()))
      : undefined;
    this.http.closeAllConnections?.();
    this.endpoint?.close();
    await Promise.all([tcpClosed, httpClosed]);
    // The admin endpoints last: metrics and the console show the drain to its end.
    await this.adminServer?.stop();
  }

  /** The fan-out the options ask for: given, Kafka (loaded only then), or none (embedded). */
  private async fanout(): Promise<Fanout | undefined> {
    const o = this.options;
    if (o.fanout || !o.kafkaBrokers) return o.fanout;
    const { KafkaFanout } = await import('./kafka.js');
    return new KafkaFanout({
      brokers: o.kafkaBrokers,
      topic: o.kafkaTopic,
      partitions: o.kafkaPartitions,
      bridges: o.kafkaBridges,
      historyMaxAgeMs: o.historyMaxAgeMs,
      offlineMaxAgeMs: o.offlineMaxAgeMs,
      presenceIntervalMs: o.presenceIntervalMs,
      logger: o.logger,
      sendTimeoutMs: o.kafkaSendTimeoutMs,
      maxPendingRecords: o.kafkaMaxPending,
      maxPendingBytes: o.kafkaMaxPendingBytes,
      interest: o.kafkaInterest,
      interestLingerMs: o.kafkaInterestLingerMs,
      fetchIntervalMs: o.kafkaFetchIntervalMs,
      produceIntervalMs: o.kafkaProduceIntervalMs,
      recordFormat: o.kafkaHeaders,
      queues: o.queues,
      queueMaxAgeMs: o.queueMaxAgeMs,
      maxQueueMessages: o.maxQueueMessages,
      maxDeliveries: o.maxDeliveries,
      deadLetterQueue: o.deadLetterQueue,
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    // Liveness: the process answers. 200 while draining and stopping too (an
    // orchestrator must not kill an instance that is closing its sessions);
    // `status` says which.
    if (path === '/healthz') {
      const status = this.phase === 'running' ? 'ok' : this.phase;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status, connections: this.sessions.size }));
      return;
    }
    // Readiness: whether a load balancer should send new clients here.
    if (path === '/readyz') {
      const readiness = this.readiness();
      res.writeHead(readiness.ready ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ...readiness, connections: this.sessions.size }));
      return;
    }
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
    res.end(`stompbus: connect a STOMP client over WebSocket to ${this.options.wsPath}\n`);
  }

  private tlsOptions(): { cert: Buffer; key: Buffer } | undefined {
    const { tlsCert, tlsKey } = this.options;
    if (!tlsCert && !tlsKey) return undefined;
    if (!tlsCert || !tlsKey) throw new Error('stompbus: --tls-cert and --tls-key go together');
    return { cert: readFileSync(tlsCert), key: readFileSync(tlsKey) };
  }
}

/**
 * Listens, turning EADDRINUSE into a one-line message naming the flag and
 * how to pass it from the quick start (`npm start -- <flag> <port + 10>`).
 */
function listen(server: HttpServer | NetServer, port: number, host: string, flag: string) {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') {
        const other = port + 10 <= 65535 ? port + 10 : port - 10;
        reject(
          new Error(
            `stompbus: port ${port} is already in use; choose another with ${flag} ` +
              `(npm start -- ${flag} ${other})`,
          ),
        );
      } else {
        reject(error);
      }
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
