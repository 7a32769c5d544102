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
import { DEFAULT_KAFKA_FANOUT_OPTIONS } from './cluster/kafka-options.js';
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
  /** Shutdown grace: how long clients get to read their ERROR before being cut, in ms. Default 5,000. */
  shutdownTimeoutMs: number;
  /** WebSocket `Origin`s allowed (`*`: any); requests without `Origin` always are. Default: any. */
  allowedOrigins: string[] | undefined;
}

/** Cluster mode, as the command line sets it up (a Kafka fan-out). */
export interface ClusterOptions {
  /** Kafka bootstrap servers (`host:port[,…]`): cluster mode. Default off (embedded broker). */
  kafkaBrokers: string | undefined;
  /** The Kafka topic of `/topic/…` traffic. Default `stompbus.topics`. */
  kafkaTopic: string;
  /** Partitions of `kafkaTopic` when it is created. Default 6. */
  kafkaPartitions: number;
  /** Kafka topics bridged to a destination, e.g. `{ prices: '/topic/prices' }`. Default none. */
  kafkaBridges: Record<string, string>;
  /** How often the connection registry hears from this instance, ms. Default 2,000. */
  presenceIntervalMs: number;
  /**
   * Which partitions of `kafkaTopic` an instance fetches: `subscribed` (those holding a
   * destination a local session subscribes to, docs/cluster-interest.md) or `all`. Default
   * `subscribed` (the Kafka fan-out's own default is `all`).
   */
  kafkaInterest: KafkaInterest;
  /** With `subscribed`: how long a partition nobody here wants is still fetched, ms. Default 30,000. */
  kafkaInterestLingerMs: number;
}

/** Everything a {@link StompServer} can be configured with: listeners, cluster, security, broker. */
export interface ServerOptions
  extends ListenerOptions,
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
  allowedOrigins: undefined,
});

/** The defaults of {@link ClusterOptions}: the Kafka fan-out's own. */
export const DEFAULT_CLUSTER_OPTIONS: Readonly<ClusterOptions> = Object.freeze({
  kafkaBrokers: undefined,
  kafkaTopic: DEFAULT_KAFKA_FANOUT_OPTIONS.topic,
  kafkaPartitions: DEFAULT_KAFKA_FANOUT_OPTIONS.partitions,
  kafkaBridges: DEFAULT_KAFKA_FANOUT_OPTIONS.bridges,
  presenceIntervalMs: DEFAULT_KAFKA_FANOUT_OPTIONS.presenceIntervalMs,
  // The command scales by default; a KafkaFanout used on its own (an app's, the fan-out's
  // unit specs) reads everything unless asked, as a sink without a router declares no interest.
  kafkaInterest: 'subscribed',
  kafkaInterestLingerMs: DEFAULT_KAFKA_FANOUT_OPTIONS.interestLingerMs,
});

/** Every default, one place each (DESIGN.md "Interfaces users and tests rely on"). */
export const DEFAULT_SERVER_OPTIONS: Readonly<ServerOptions> = Object.freeze({
  ...DEFAULT_STOMP_BROKER_OPTIONS,
  ...DEFAULT_LISTENER_OPTIONS,
  ...DEFAULT_CLUSTER_OPTIONS,
  ...DEFAULT_SECURITY_OPTIONS,
});

/**
 * The `stompbus` command's server: a broker ({@link createBroker}) with a
 * WebSocket endpoint and a TCP listener (TLS for both when configured), and
 * the health and registry endpoints on the same HTTP port.
 */
export class StompServer {
  readonly options: ServerOptions;
  private current: StompBroker | undefined;
  private readonly http: HttpServer;
  private endpoint: WebSocketEndpoint | undefined;
  private tcp: NetServer | undefined;
  private stopping: Promise<void> | undefined;
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
    if (this.options.tcpPort !== null) {
      this.tcp = this.tls
        ? createTlsServer(this.tls, broker.handle)
        : createNetServer(broker.handle);
      await listen(this.tcp, this.options.tcpPort, this.options.host, '--tcp-port');
    }
  }

  /** The WebSocket port actually bound. */
  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  /** The TCP port actually bound, or undefined when TCP is off. */
  get tcpPort(): number | undefined {
    return this.tcp ? (this.tcp.address() as AddressInfo).port : undefined;
  }

  /** `ws://` (or `wss://`) URL of the endpoint on loopback, for tests and logs. */
  get url(): string {
    const scheme = this.options.tlsCert ? 'wss' : 'ws';
    return `${scheme}://127.0.0.1:${this.port}${this.options.wsPath}`;
  }

  /**
   * Stops: listeners close, every client gets an ERROR (`STOMP_ERR_SHUTDOWN`)
   * and its connection is closed; after `shutdownTimeoutMs` what is left is
   * destroyed. Resolves when everything is closed.
   */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const closed = Promise.all([
      this.http.listening
        ? new Promise<void>((resolve) => this.http.close(() => resolve()))
        : undefined,
      this.tcp?.listening
        ? new Promise<void>((resolve) => this.tcp?.close(() => resolve()))
        : undefined,
    ]);
    await this.current?.close(this.options.shutdownTimeoutMs);
    this.http.closeAllConnections?.();
    this.endpoint?.close();
    await closed;
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
      interest: o.kafkaInterest,
      interestLingerMs: o.kafkaInterestLingerMs,
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (req.url === '/healthz') {
      res.writeHead(this.stopping ? 503 : 200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          status: this.stopping ? 'stopping' : 'ok',
          connections: this.sessions.size,
        }),
      );
      return;
    }
    // The connection registry: where a user has a session now (cluster-wide in cluster mode).
    const user = /^\/users\/([^/?]+)$/.exec(req.url ?? '')?.[1];
    if (user !== undefined && req.method === 'GET' && this.current) {
      let name: string;
      try {
        name = decodeURIComponent(user);
      } catch {
        res.writeHead(400).end();
        return;
      }
      const instances = this.current.whereIs(name);
      const waiting = this.current.waitingFor(name);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ user: name, online: instances.length > 0, instances, waiting }));
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

/** Listens, turning EADDRINUSE into a one-line message naming the flag. */
function listen(server: HttpServer | NetServer, port: number, host: string, flag: string) {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') {
        reject(new Error(`stompbus: port ${port} is already in use; choose another with ${flag}`));
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
