/**
 * The admin port: Prometheus metrics (`/metrics`), the connection registry
 * (`/users/<name>`) and the live console (`/console`), on a listener of its
 * own, on loopback by default and behind a bearer token when one is set
 * (docs/operations.md "Admin port").
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { StompBroker } from '../stomp-broker.js';
import { VERSION } from '../version.js';
import { ConsoleFeed, SlowConsumers } from './console-feed.js';

/** Where the admin endpoints listen. */
export interface AdminOptions {
  /** Port of the admin endpoints; 0 picks a free one, `null` turns them off. Default 61615. */
  adminPort: number | null;
  /** Interface of the admin port. Default `127.0.0.1` (loopback only). */
  adminHost: string;
  /** When set, every admin request needs `Authorization: Bearer <token>` (or the console's cookie). */
  adminToken: string | undefined;
}

/** The defaults of {@link AdminOptions}. */
export const DEFAULT_ADMIN_OPTIONS: Readonly<AdminOptions> = Object.freeze({
  adminPort: 61615,
  adminHost: '127.0.0.1',
  adminToken: undefined,
});

/** How often the console gets a snapshot, ms. */
const TICK_MS = 1000;
/** The console's cookie: the token's stand-in for EventSource, which cannot send headers. */
const COOKIE = 'stompbus_admin';

/** The console's files: the page and its script from this package, uPlot from its own. */
function consoleFiles(): Record<string, { file: string; type: string }> {
  const require = createRequire(import.meta.url);
  const here = (name: string) =>
    fileURLToPath(new URL(`../../assets/console/${name}`, import.meta.url));
  return {
    '/console': { file: here('index.html'), type: 'text/html; charset=utf-8' },
    '/console/app.js': { file: here('app.js'), type: 'text/javascript; charset=utf-8' },
    '/console/console.css': { file: here('console.css'), type: 'text/css; charset=utf-8' },
    '/console/uplot.js': {
      file: require.resolve('uplot/dist/uPlot.esm.js'),
      type: 'text/javascript; charset=utf-8',
    },
    '/console/uplot.css': {
      file: require.resolve('uplot/dist/uPlot.min.css'),
      type: 'text/css; charset=utf-8',
    },
  };
}

/**
 * The admin listener of one broker. `StompServer` starts it after its own
 * listeners and stops it first; an app that embeds a broker can run one too.
 */
export class AdminServer {
  readonly options: AdminOptions;
  private readonly http: HttpServer;
  private readonly feed: ConsoleFeed;
  private probe: ConsoleFeed | undefined;
  private readonly slow = new SlowConsumers();
  private readonly files = consoleFiles();
  private readonly cache = new Map<string, Buffer>();
  private readonly streams = new Set<ServerResponse>();
  private ticker: NodeJS.Timeout | undefined;
  /** The cookie value that stands for the token (an HMAC of it, not the token itself). */
  private readonly cookieValue: string | undefined;

  constructor(
    private readonly broker: StompBroker,
    options: Partial<AdminOptions> = {},
    private readonly tls?: { cert: Buffer; key: Buffer },
  ) {
    this.options = { ...DEFAULT_ADMIN_OPTIONS, ...options };
    const { adminToken } = this.options;
    this.cookieValue = adminToken
      ? createHmac('sha256', adminToken).update('stompbus console').digest('base64url')
      : undefined;
    this.feed = new ConsoleFeed(broker, VERSION, this.slow);
    // Made now: the produce-latency histogram observes from its creation on.
    void broker.metrics;
    broker.on('error', ({ error, user, remoteAddress, transport }) => {
      if (error.code === 'STOMP_ERR_SLOW_CONSUMER') {
        this.slow.add({ at: Date.now(), user, remoteAddress, transport });
      }
    });
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      this.onRequest(req, res).catch((error: unknown) => {
        console.error('stompbus: admin request failed', error);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    };
    this.http = tls ? createHttpsServer(tls, onRequest) : createHttpServer(onRequest);
  }

  /** Listens on `adminPort` (nothing when it is `null`). */
  start(): Promise<void> {
    const { adminPort, adminHost } = this.options;
    if (adminPort === null) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => {
        reject(
          error.code === 'EADDRINUSE'
            ? new Error(
                `stompbus: port ${adminPort} is already in use; choose another with --admin-port`,
              )
            : error,
        );
      };
      this.http.once('error', onError);
      this.http.listen(adminPort, adminHost, () => {
        this.http.off('error', onError);
        resolve();
      });
    });
  }

  /** Whether it listens. */
  get listening(): boolean {
    return this.http.listening;
  }

  /** The port actually bound; undefined when off. */
  get port(): number | undefined {
    return this.http.listening ? (this.http.address() as AddressInfo).port : undefined;
  }

  /** `http://host:port` of the admin endpoints (loopback when bound to any interface); undefined when off. */
  get url(): string | undefined {
    const port = this.port;
    if (port === undefined) return undefined;
    const scheme = this.tls ? 'https' : 'http';
    const host = ['0.0.0.0', '::'].includes(this.options.adminHost)
      ? '127.0.0.1'
      : this.options.adminHost;
    return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /** Ends the console streams and closes the listener. */
  async stop(): Promise<void> {
    clearInterval(this.ticker);
    this.ticker = undefined;
    for (const res of this.streams) res.end();
    this.streams.clear();
    if (!this.http.listening) return;
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeAllConnections();
    await closed;
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] as string;
    const file = this.files[path];
    // The console's page and scripts hold no data: they load without the token, and ask for it.
    if (file && req.method === 'GET') return this.serveFile(res, path, file);
    if (path === '/console/login' && req.method === 'POST') return this.login(req, res);
    if (!this.authorized(req)) {
      res.writeHead(401, {
        'content-type': 'text/plain',
        'www-authenticate': 'Bearer realm="stompbus admin"',
      });
      res.end('stompbus: this admin endpoint needs Authorization: Bearer <token>\n');
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/metrics') {
      const registry = this.broker.metrics;
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType }).end(text);
      return;
    }
    if (path === '/console/events') return this.subscribe(res);
    if (path === '/console/snapshot') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      // A feed of its own: a one-off request does not shorten the stream's interval.
      this.probe ??= new ConsoleFeed(this.broker, VERSION, this.slow);
      res.end(JSON.stringify(this.probe.snapshot()));
      return;
    }
    const user = /^\/users\/([^/]+)$/.exec(path)?.[1];
    if (user !== undefined) return this.userEntry(res, user);
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('stompbus admin: /metrics, /users/<name>, /console\n');
  }

  /** The connection registry: where a user has a session now (cluster-wide in cluster mode). */
  private userEntry(res: ServerResponse, encoded: string): void {
    let name: string;
    try {
      name = decodeURIComponent(encoded);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const instances = this.broker.whereIs(name);
    const waiting = this.broker.waitingFor(name);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ user: name, online: instances.length > 0, instances, waiting }));
  }

  /** The token checked once, exchanged for a cookie that EventSource sends by itself. */
  private login(req: IncomingMessage, res: ServerResponse): void {
    if (!this.authorized(req)) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('wrong token\n');
      return;
    }
    const headers: Record<string, string> = { 'cache-control': 'no-store' };
    if (this.cookieValue) {
      headers['set-cookie'] = `${COOKIE}=${this.cookieValue}; Path=/; HttpOnly; SameSite=Strict`;
    }
    res.writeHead(204, headers).end();
  }

  /** With a token: `Authorization: Bearer <token>`, or the console's cookie. Compared in constant time. */
  private authorized(req: IncomingMessage): boolean {
    const { adminToken } = this.options;
    if (!adminToken) return true;
    const bearer = /^Bearer +(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer !== undefined && sameSecret(bearer.trim(), adminToken)) return true;
    const cookie = cookieOf(req.headers.cookie, COOKIE);
    return cookie !== undefined && sameSecret(cookie, this.cookieValue as string);
  }

  private async serveFile(
    res: ServerResponse,
    path: string,
    file: { file: string; type: string },
  ): Promise<void> {
    let body = this.cache.get(path);
    if (!body) {
      body = await readFile(file.file);
      this.cache.set(path, body);
    }
    res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' }).end(body);
  }

  /** A Server-Sent Events stream: a snapshot now, then one per second. */
  private subscribe(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    res.write(`retry: 2000\ndata: ${JSON.stringify(this.feed.snapshot())}\n\n`);
    this.streams.add(res);
    res.on('close', () => {
      this.streams.delete(res);
      if (this.streams.size === 0) {
        clearInterval(this.ticker);
        this.ticker = undefined;
      }
    });
    // One snapshot per tick for every viewer, and no work while nobody watches.
    this.ticker ??= setInterval(() => this.tick(), TICK_MS);
    this.ticker.unref();
  }

  private tick(): void {
    const line = `data: ${JSON.stringify(this.feed.snapshot())}\n\n`;
    for (const res of this.streams) res.write(line);
  }
}

/** Compares two secrets in constant time (their SHA-256 digests, so lengths do not show). */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function cookieOf(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
