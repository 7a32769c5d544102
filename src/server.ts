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
  type Socket,
} from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { WebSocketServer } from 'ws';
import { Broker, type BrokerOptions, DEFAULT_BROKER_OPTIONS } from './broker/broker.js';
import type { Fanout } from './cluster/fanout.js';
import { KafkaFanout } from './cluster/kafka-fanout.js';
import { DEFAULT_SESSION_OPTIONS, type SessionOptions } from './session/options.js';
import { Session } from './session/session.js';
import { TcpConnection } from './transport/tcp-connection.js';
import { WsConnection } from './transport/ws-connection.js';
import { VERSION } from './version.js';

/** Everything a {@link StompServer} can be configured with. */
export interface ServerOptions extends SessionOptions, BrokerOptions {
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
  /** Shutdown grace: how long clients get to read their ERROR before being cut, in ms. */
  shutdownTimeoutMs: number;
  /** The fan-out; default in-process (embedded broker), or Kafka when `kafkaBrokers` is set. */
  fanout: Fanout | undefined;
  /** Kafka bootstrap servers (`host:port[,…]`): cluster mode. Default off (embedded broker). */
  kafkaBrokers: string | undefined;
  /** Cluster mode: the Kafka topic of `/topic/…` traffic. Default `stompbus.topics`. */
  kafkaTopic: string;
  /** Cluster mode: partitions of `kafkaTopic` when it is created. Default 6. */
  kafkaPartitions: number;
  /** Cluster mode: Kafka topics bridged to a destination, e.g. `{ prices: '/topic/prices' }`. Default none. */
  kafkaBridges: Record<string, string>;
  /** Cluster mode: how often the connection registry hears from this instance, ms. Default 2,000. */
  presenceIntervalMs: number;
}

/** Defaults from DESIGN.md "Interfaces users and tests rely on". */
export const DEFAULT_SERVER_OPTIONS: Readonly<ServerOptions> = Object.freeze({
  ...DEFAULT_SESSION_OPTIONS,
  ...DEFAULT_BROKER_OPTIONS,
  host: '0.0.0.0',
  port: 61614,
  wsPath: '/stomp',
  tcpPort: 61613,
  tlsCert: undefined,
  tlsKey: undefined,
  shutdownTimeoutMs: 5000,
  fanout: undefined,
  kafkaBrokers: undefined,
  kafkaTopic: 'stompbus.topics',
  kafkaPartitions: 6,
  kafkaBridges: {},
  presenceIntervalMs: 2_000,
  serverName: `stompbus/${VERSION}`,
});

/** WebSocket sub-protocols spoken, best first (STOMP 1.2 "STOMP over WebSocket" names). */
const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

/**
 * The composition root: one broker, a WebSocket endpoint and a TCP listener
 * (TLS for both when configured), a session per connection.
 */
export class StompServer {
  readonly options: ServerOptions;
  readonly broker: Broker;
  /** Open sessions. */
  readonly sessions = new Set<Session>();
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private tcp: NetServer | undefined;
  private stopping: Promise<void> | undefined;

  constructor(options: Partial<ServerOptions> = {}) {
    this.options = { ...DEFAULT_SERVER_OPTIONS, ...options };
    const { fanout, kafkaBrokers, kafkaTopic, kafkaPartitions, kafkaBridges } = this.options;
    this.broker = new Broker(
      this.options,
      fanout ??
        (kafkaBrokers
          ? new KafkaFanout({
              brokers: kafkaBrokers,
              topic: kafkaTopic,
              partitions: kafkaPartitions,
              bridges: kafkaBridges,
              historyMaxAgeMs: this.options.historyMaxAgeMs,
              offlineMaxAgeMs: this.options.offlineMaxAgeMs,
              presenceIntervalMs: this.options.presenceIntervalMs,
            })
          : undefined),
    );
    const tls = this.tlsOptions();
    this.http = tls
      ? createHttpsServer(tls, (req, res) => this.onRequest(req, res))
      : createHttpServer((req, res) => this.onRequest(req, res));
    this.wss = new WebSocketServer({
      noServer: true,
      // A WebSocket message may hold several frames: the per-frame limit is
      // the parser's, with this as a transport ceiling (ws closes with 1009).
      maxPayload: 2 * this.options.maxFrameSize,
      perMessageDeflate: false,
      handleProtocols: (offered) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
    });
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== this.options.wsPath) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.accept(new WsConnection(ws, socket, tls ? 'wss' : 'ws'));
      });
    });
    if (this.options.tcpPort !== null) {
      const onSocket = (socket: Socket) =>
        this.accept(new TcpConnection(socket, tls ? 'tls' : 'tcp'));
      this.tcp = tls ? createTlsServer(tls, onSocket) : createNetServer(onSocket);
    }
  }

  /** Starts the broker and both listeners. */
  async start(): Promise<void> {
    await this.broker.start();
    await listen(this.http, this.options.port, this.options.host, '--port');
    if (this.tcp)
      await listen(this.tcp, this.options.tcpPort ?? 0, this.options.host, '--tcp-port');
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
      new Promise<void>((resolve) => this.http.close(() => resolve())),
      this.tcp ? new Promise<void>((resolve) => this.tcp?.close(() => resolve())) : undefined,
    ]);
    for (const session of [...this.sessions]) session.shutdown();
    const deadline = Date.now() + this.options.shutdownTimeoutMs;
    while (this.connectionsOpen() && Date.now() < deadline) await sleep(20);
    for (const ws of this.wss.clients) ws.terminate();
    // TCP clients too: one that keeps its half of the connection open would
    // otherwise hold the process until closeTimeoutMs.
    for (const tcp of this.tcpConnections) tcp.destroy();
    this.http.closeAllConnections?.();
    await closed;
    this.wss.close();
    await this.broker.stop();
  }

  private connectionsOpen(): boolean {
    return this.wss.clients.size > 0 || this.tcpConnections.size > 0;
  }

  private readonly tcpConnections = new Set<TcpConnection>();

  private accept(connection: TcpConnection | WsConnection): void {
    if (this.stopping) {
      connection.destroy();
      return;
    }
    if (connection instanceof TcpConnection) {
      this.tcpConnections.add(connection);
      connection.onceClosed(() => this.tcpConnections.delete(connection));
    }
    const session = new Session(this.broker, connection, this.options, (s) =>
      this.sessions.delete(s),
    );
    this.sessions.add(session);
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
    if (user !== undefined && req.method === 'GET') {
      let name: string;
      try {
        name = decodeURIComponent(user);
      } catch {
        res.writeHead(400).end();
        return;
      }
      const instances = this.broker.whereIs(name);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ user: name, online: instances.length > 0, instances }));
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
