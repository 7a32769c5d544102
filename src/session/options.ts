import { DEFAULT_FRAME_LIMITS, type FrameLimits } from '../frame/limits.js';

/** Per-connection protocol settings and limits. */
export interface SessionOptions extends FrameLimits {
  /**
   * The server's side of the heart-beat negotiation, `[can send, wants to
   * receive]` in ms; 0 turns a direction off. Each direction comes out as the
   * larger of this, the client's value and {@link heartbeatMin} (STOMP 1.2
   * "Heart-beating"), so the default, `[100, 100]`, gives clients what they ask for.
   */
  heartbeat: [number, number];
  /**
   * The shortest heart-beat interval negotiated in either direction, in ms,
   * whatever the client or `heartbeat` says: a guard against clients that ask
   * for a heart-beat every millisecond. Default 100.
   */
  heartbeatMin: number;
  /** A client silent for this many times the negotiated interval is disconnected. Default 2. */
  heartbeatTolerance: number;
  /** Time a new connection has to send CONNECT, in ms. Default 10,000. */
  connectTimeoutMs: number;
  /** Most subscriptions per connection. Default 1024. */
  maxSubscriptions: number;
  /** Most open transactions per connection. Default 16. */
  maxTransactions: number;
  /** Most frames buffered in one transaction. Default 1000. */
  maxTransactionFrames: number;
  /**
   * Unsent output (bytes) above which a connection counts as a slow consumer:
   * topic deliveries disconnect it, queues stop giving it messages until it
   * drains. Default 4 MiB. Any output passes twice this disconnects.
   */
  highWaterMark: number;
  /** Time to flush and close a connection before it is destroyed, in ms. Default 5000. */
  closeTimeoutMs: number;
  /** The `server` header of CONNECTED. */
  serverName: string;
  /**
   * Frames a connection may send per second; a faster client is slowed by
   * backpressure (its socket is not read for a while), never dropped. 0 (default): no limit.
   */
  maxFramesPerSecond: number;
  /**
   * Frames of one connection whose answers wait: SENDs (and COMMITs, and ACKs
   * whose consumption is being recorded) waiting for the bus (cluster mode: for
   * Kafka's acknowledgement), and any frame behind one of them, whose RECEIPT
   * keeps frame order. Past this many the connection stops being read, and
   * frames it had read already (the rest of a read, a WebSocket message the
   * socket held) wait unhandled; they are handled, and the connection read
   * again, once half of them are answered. A publisher far ahead of Kafka
   * (Kafka restarting, say) is slowed by backpressure this way rather than
   * buffered without bound. Default 512.
   */
  maxPendingSends: number;
}

/** The defaults of {@link SessionOptions} (docs/configuration.md "Defaults for limits"). */
export const DEFAULT_SESSION_OPTIONS: Readonly<SessionOptions> = Object.freeze({
  ...DEFAULT_FRAME_LIMITS,
  heartbeat: [100, 100] as [number, number],
  heartbeatMin: 100,
  heartbeatTolerance: 2,
  connectTimeoutMs: 10_000,
  maxSubscriptions: 1024,
  maxTransactions: 16,
  maxTransactionFrames: 1000,
  highWaterMark: 4 * 1024 * 1024,
  closeTimeoutMs: 5000,
  serverName: 'stompbus',
  maxFramesPerSecond: 0,
  maxPendingSends: 512,
});
