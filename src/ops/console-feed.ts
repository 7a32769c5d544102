/**
 * What the live console shows, one JSON snapshot per tick: the census, rates
 * per second (from the difference of the counters since the last tick), the
 * busiest destinations, the latest slow-consumer disconnects, dead letters
 * and, in cluster mode, the instances and the consumer lag.
 */
import type { PartitionLag } from '../broker/seams.js';
import { type Census, type Observed, takeCensus } from './census.js';

/** How many destinations the console lists (the busiest). */
export const CONSOLE_DESTINATIONS = 10;
/** The shortest time rates are measured over, ms. */
const MIN_INTERVAL_MS = 500;
/** The longest: past it a snapshot starts afresh, ms. */
const MAX_INTERVAL_MS = 5000;
/** How many slow-consumer disconnects the console remembers. */
const RECENT_SLOW = 10;

/** A destination in the console. */
export interface DestinationRow {
  readonly name: string;
  readonly subscribers: number;
  /** Messages waiting (queues). */
  readonly depth: number;
  /** Messages that arrived per second. */
  readonly inRate: number;
  /** Deliveries per second. */
  readonly outRate: number;
}

/** An instance in the console (cluster mode). */
export interface InstanceRow {
  readonly id: string;
  /** This instance (its numbers are now, the others' as of their last announcement). */
  readonly self: boolean;
  readonly connections: number | undefined;
  readonly users: number | undefined;
  readonly lag: number | undefined;
}

/** A slow consumer that was disconnected. */
export interface SlowConsumer {
  readonly at: number;
  readonly user: string | undefined;
  readonly remoteAddress: string;
  readonly transport: string;
}

/** The latest slow consumers that were disconnected, newest first (from the broker's events). */
export class SlowConsumers {
  private readonly list: SlowConsumer[] = [];

  /** A slow consumer was disconnected. */
  add(entry: SlowConsumer): void {
    this.list.unshift(entry);
    if (this.list.length > RECENT_SLOW) this.list.pop();
  }

  recent(): SlowConsumer[] {
    return [...this.list];
  }
}

/** One console tick. */
export interface ConsoleSnapshot {
  readonly at: number;
  readonly version: string;
  readonly mode: 'embedded' | 'cluster';
  readonly connections: Census['connections'];
  readonly sessions: number;
  readonly subscriptions: number;
  readonly destinationCount: number;
  /** Whether {@link rates} were measured (false on a first snapshot: they are 0). */
  readonly ratesKnown: boolean;
  /** Per second since the last tick: SEND frames received, MESSAGE frames delivered, bytes. */
  readonly rates: {
    readonly messagesIn: number;
    readonly messagesOut: number;
    readonly bytesIn: number;
    readonly bytesOut: number;
  };
  readonly totals: {
    readonly messagesIn: number;
    readonly messagesOut: number;
    readonly errors: number;
    readonly slowConsumers: number;
    readonly deadLetters: number;
  };
  /** The busiest destinations, by messages per second, then subscribers. */
  readonly destinations: readonly DestinationRow[];
  readonly slowConsumers: readonly SlowConsumer[];
  /** Messages waiting in the dead-letter queue (`--dead-letter-queue`). */
  readonly deadLetterQueues: readonly { readonly name: string; readonly depth: number }[];
  readonly queued: number;
  readonly history: number;
  readonly mailboxes: number;
  readonly cluster:
    | { readonly instances: readonly InstanceRow[]; readonly lag: readonly PartitionLag[] }
    | undefined;
}

interface Previous {
  readonly at: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly byDestination: Map<string, { messagesIn: number; messagesOut: number }>;
}

/** Makes console snapshots of one broker; keep one per broker (it remembers the last tick). */
export class ConsoleFeed {
  private previous: Previous | undefined;

  constructor(
    private readonly broker: Observed,
    private readonly version: string,
    private readonly slow: SlowConsumers = new SlowConsumers(),
  ) {}

  /** The snapshot now; rates are over the time since the last call (zero on the first). */
  snapshot(): ConsoleSnapshot {
    const census = takeCensus(this.broker);
    const stats = this.broker.router.stats;
    const now = census.at;
    // Rates need a reference at most a few seconds old (a viewer after a quiet spell starts afresh).
    const prev =
      this.previous && now - this.previous.at <= MAX_INTERVAL_MS ? this.previous : undefined;
    const seconds = prev ? Math.max(0.001, (now - prev.at) / 1000) : 1;
    const rate = (value: number, before: number | undefined) =>
      before === undefined ? 0 : round(Math.max(0, value - before) / seconds);
    const messagesIn = stats.received.SEND ?? 0;
    const messagesOut = stats.sent.MESSAGE;
    const byDestination = new Map<string, { messagesIn: number; messagesOut: number }>();
    const rows: DestinationRow[] = [];
    const deadLetterQueues: { name: string; depth: number }[] = [];
    for (const d of census.destinations) {
      byDestination.set(d.name, { messagesIn: d.messagesIn, messagesOut: d.messagesOut });
      const before = prev?.byDestination.get(d.name);
      // A destination forgotten and made again counts from zero.
      const fresh = before && before.messagesIn <= d.messagesIn ? before : undefined;
      rows.push({
        name: d.name,
        subscribers: d.subscribers,
        depth: d.depth,
        inRate: prev ? rate(d.messagesIn, fresh?.messagesIn ?? 0) : 0,
        outRate: prev ? rate(d.messagesOut, fresh?.messagesOut ?? 0) : 0,
      });
      if (d.name === this.broker.router.options.deadLetterQueue && d.depth > 0) {
        deadLetterQueues.push({ name: d.name, depth: d.depth });
      }
    }
    rows.sort(
      (a, b) =>
        b.inRate + b.outRate - (a.inRate + a.outRate) ||
        b.subscribers - a.subscribers ||
        (a.name < b.name ? -1 : 1),
    );
    // A snapshot asked for right after another (a page opening) keeps the older
    // reference: rates over a few milliseconds would only show the rounding.
    if (!prev || now - prev.at >= MIN_INTERVAL_MS) {
      this.previous = {
        at: now,
        messagesIn,
        messagesOut,
        bytesIn: stats.bytesIn,
        bytesOut: stats.bytesOut,
        byDestination,
      };
    }
    let errors = 0;
    for (const n of stats.errors.values()) errors += n;
    const cluster = this.broker.fanout.stats;
    return {
      at: now,
      version: this.version,
      mode: cluster ? 'cluster' : 'embedded',
      ratesKnown: prev !== undefined,
      connections: census.connections,
      sessions: census.sessions,
      subscriptions: census.subscriptions,
      destinationCount: census.destinations.length,
      rates: {
        messagesIn: rate(messagesIn, prev?.messagesIn),
        messagesOut: rate(messagesOut, prev?.messagesOut),
        bytesIn: rate(stats.bytesIn, prev?.bytesIn),
        bytesOut: rate(stats.bytesOut, prev?.bytesOut),
      },
      totals: {
        messagesIn,
        messagesOut,
        errors,
        slowConsumers: stats.errors.get('STOMP_ERR_SLOW_CONSUMER') ?? 0,
        deadLetters: stats.deadLetters,
      },
      destinations: rows.slice(0, CONSOLE_DESTINATIONS),
      slowConsumers: this.slow.recent(),
      deadLetterQueues,
      queued: census.queued,
      history: census.history,
      mailboxes: census.mailboxes,
      cluster: cluster && {
        instances: [
          {
            id: cluster.instanceId,
            self: true,
            connections: census.connections.websocket + census.connections.tcp,
            users: undefined,
            lag: cluster.lag().reduce((sum, p) => sum + p.lag, 0),
          },
          ...cluster.instances().map((i) => ({
            id: i.id,
            self: false,
            connections: i.connections,
            users: i.users,
            lag: i.lag,
          })),
        ],
        lag: cluster.lag(),
      },
    };
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
