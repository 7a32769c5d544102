/**
 * The messages between the harness (run.ts) and its client processes
 * (worker.ts), over the Node IPC channel with `advanced` serialization (typed
 * arrays travel as such).
 */
import type { Endpoint } from './client.js';

/** How subscriber connections count what they receive. */
export type SubscriberMode =
  /** Every connection sees every message: lost and duplicated per connection. */
  | 'topic'
  /** Competing consumers: lost and duplicated across all of them (the harness merges). */
  | 'queue'
  /** Connect and subscribe, then stay quiet. */
  | 'idle';

/** Open `count` subscriber connections. */
export interface OpenRequest {
  op: 'open';
  endpoint: Endpoint;
  count: number;
  /** Destination; `{i}` is replaced by `firstIndex + i` (one topic per connection). */
  destination: string;
  firstIndex: number;
  mode: SubscriberMode;
  /** This run's id, written into and checked in every body. */
  run: string;
  /** Handshakes in flight at once. */
  concurrency: number;
  /** Per connection: open, CONNECTED and RECEIPT within this time. */
  timeoutMs: number;
  /** Stop opening new connections after this long. */
  deadlineMs: number;
  /** Stop opening after this many failures in a row (a broker at its limit). */
  giveUpAfter: number;
}

/** Publish to `destination` from one connection. */
export interface PublishRequest {
  op: 'publish';
  endpoint: Endpoint;
  destination: string;
  run: string;
  bodySize: number;
  /**
   * `max`: as fast as the window allows (messages sent minus messages the
   * harness says were received, see `ack`); `paced`: `rate` messages a second;
   * `flood`: as fast as the socket takes them, whatever is received (flood.ts).
   */
  pace: 'max' | 'paced' | 'flood';
  window: number;
  rate: number;
  /** Measured part of the run, after the warm-up. */
  durationMs: number;
  /** End of the warm-up (ms, see `nowMs`): the measured part starts here. */
  fromMs: number;
  maxCount: number;
}

/** Everything the harness sends a worker. */
export type ToWorker =
  | OpenRequest
  | { op: 'connect'; endpoint: Endpoint }
  /**
   * Start counting. Latency is taken from frames read at or after `fromMs`
   * (before it is warm-up); throughput from frames read in [`fromMs`, `toMs`].
   */
  | { op: 'start'; fromMs: number; toMs: number }
  | Omit<PublishRequest, 'endpoint'>
  | { op: 'ack'; value: number }
  | { op: 'report' }
  | { op: 'close' };

/** What one subscriber process counted. */
export interface SubscriberReport {
  op: 'report';
  connections: number;
  /** Frames read in [fromMs, toMs]: the throughput figure. */
  inWindow: number;
  /** WebSocket messages read in [fromMs, toMs] (frames ÷ messages = how well writes coalesce). */
  wsMessagesInWindow: number;
  /** Topic mode: per connection, messages seen for the first time (warm-up included). */
  unique: number;
  /** Topic mode: per connection, a sequence number seen again (or out of order). */
  duplicates: number;
  /** Messages of another run (leftovers in a RabbitMQ queue). */
  stale: number;
  /** Latencies below zero (clock skew between processes), counted in the first bucket. */
  negative: number;
  /** Latency histogram (see stats.ts). */
  hist: Float64Array;
  /** When the first and the last frame after the warm-up were read (ms, see `nowMs`). */
  firstMs: number;
  lastMs: number;
  /** Connections that got an ERROR or were closed by the broker during the run. */
  troubles: number;
  troubleSamples: string[];
  /** Queue mode: deliveries per sequence number. */
  counts: Uint8Array | undefined;
}

/** The publisher is done. */
export interface Published {
  op: 'published';
  /** Messages sent, warm-up included: sequence numbers 1..sent. */
  sent: number;
  endMs: number;
}

/** Everything a worker sends the harness. */
export type FromWorker =
  | { op: 'opened'; ok: number; failed: number; errors: string[]; ms: number }
  | { op: 'started' }
  | { op: 'progress'; value: number }
  | Published
  | SubscriberReport
  | { op: 'closed' }
  | { op: 'crashed'; error: string };
