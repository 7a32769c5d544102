import type { Server as HttpServer, IncomingMessage } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Connection, TransportKind } from './connection.js';
import { WsConnection } from './ws-connection.js';

/** WebSocket sub-protocols spoken, best first (STOMP 1.2 "STOMP over WebSocket" names). */
export const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

/** What {@link attachWebSocket} serves STOMP to: a broker's `accept`. */
export interface ConnectionAcceptor {
  accept(connection: Connection): void;
  readonly options: { readonly maxFrameSize: number };
  /**
   * Whether a connection from this client IP address fits the connection
   * limits; asked before an upgrade completes (refused: HTTP 503). Optional.
   */
  admits?(remoteAddress: string): boolean;
}

/** Where and how {@link attachWebSocket} serves. */
export interface AttachOptions {
  /**
   * The HTTP(S) server whose upgrades to `path` become STOMP sessions; its
   * other routes and upgrades are left to their own handlers (with none, an
   * upgrade to another path gets 404 rather than hanging). Leave out with `noServer`.
   */
  server?: HttpServer | HttpsServer;
  /** Serve nothing by itself: call `handleUpgrade` from your own `upgrade` handler. */
  noServer?: boolean;
  /** The endpoint path. Default `/stomp`. */
  path?: string;
  /**
   * Browser origins allowed to open a session, exactly as browsers send the
   * `Origin` header (`https://app.example.com`, `http://localhost:8080`);
   * `*` allows any. An upgrade with another `Origin` gets HTTP 403 (against
   * Cross-Site WebSocket Hijacking: a page elsewhere riding on the visitor's
   * cookies). Upgrades without `Origin` (non-browser clients) are always
   * allowed. Default: any origin.
   */
  allowedOrigins?: readonly string[] | undefined;
}

/** A WebSocket endpoint serving a broker. */
export interface WebSocketEndpoint {
  /** The endpoint path. */
  readonly path: string;
  /** Whether an upgrade request is for this endpoint (its path). */
  matches(request: IncomingMessage): boolean;
  /** Completes an upgrade to this endpoint and serves STOMP on it. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Stops taking upgrades (open connections stay; close them through the broker). */
  close(): void;
}

/**
 * Serves STOMP over WebSocket for `broker`, on an existing `http.Server`
 * (Express, Fastify, plain `node:http`) or, with `noServer`, through your
 * own upgrade handler. Sub-protocols `v12.stomp`, `v11.stomp`, `v10.stomp`;
 * a WebSocket message may hold several frames and a frame may span messages.
 */
export function attachWebSocket(
  broker: ConnectionAcceptor,
  options: AttachOptions,
): WebSocketEndpoint {
  const path = options.path ?? '/stomp';
  const wss = new WebSocketServer({
    noServer: true,
    // A WebSocket message may hold several frames: the per-frame limit is
    // the parser's, with this as a transport ceiling (ws closes with 1009).
    maxPayload: 2 * broker.options.maxFrameSize,
    perMessageDeflate: false,
    handleProtocols: (offered) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
  });
  const server = options.noServer ? undefined : options.server;
  if (!server && !options.noServer) {
    throw new Error('stompbus: attachWebSocket needs a server, or noServer: true');
  }
  const matches = (request: IncomingMessage) => (request.url ?? '/').split('?')[0] === path;
  const originAllowed = originCheck(options.allowedOrigins);
  const handleUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Origin first: a refused page learns nothing about the server's load.
    if (!originAllowed(request.headers.origin)) {
      refuse(socket, 403, 'Forbidden', 'stompbus: this Origin may not open a WebSocket here\n');
      return;
    }
    if (broker.admits && !broker.admits(request.socket.remoteAddress ?? '')) {
      refuse(socket, 503, 'Service Unavailable', 'stompbus: too many connections\n');
      return;
    }
    // A TLS socket says so: `wss` behind an https server.
    const kind: TransportKind =
      (socket as Duplex & { encrypted?: boolean }).encrypted === true ? 'wss' : 'ws';
    wss.handleUpgrade(request, socket, head, (ws: WebSocket) => {
      broker.accept(new WsConnection(ws, socket, kind));
    });
  };
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (matches(request)) handleUpgrade(request, socket, head);
    // Nobody else listens for upgrades: answer, or the socket would hang
    // (Node.js puts no timeout on an upgrade nobody takes).
    else if (server?.listenerCount('upgrade') === 1) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    }
  };
  server?.on('upgrade', onUpgrade);
  return {
    path,
    matches,
    handleUpgrade,
    close() {
      server?.off('upgrade', onUpgrade);
      wss.close();
    },
  };
}

/** A test of an upgrade's `Origin` header against `allowedOrigins` (undefined or `*`: any). */
function originCheck(
  allowed: readonly string[] | undefined,
): (origin: string | undefined) => boolean {
  if (!allowed || allowed.includes('*')) return () => true;
  // Scheme and host are case-insensitive; a trailing slash in the setting is a slip.
  const set = new Set(allowed.map((o) => o.trim().toLowerCase().replace(/\/+$/, '')));
  return (origin) => origin === undefined || set.has(origin.toLowerCase());
}

/** Answers an upgrade with an HTTP error and closes: no WebSocket, no session. */
function refuse(socket: Duplex, status: number, reason: string, body: string): void {
  // Closed once the answer is out, whatever the client does (as ws's own refusals).
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
