/**
 * A count of what a broker holds right now (connections, sessions,
 * subscriptions, destinations, kept messages), made by walking its sessions
 * and destinations once. The metrics and the console both read it; it costs
 * O(connections + destinations), paid per scrape or per console tick, never
 * per frame.
 */
import type { Destination } from '../broker/destinations/destination.js';
import type { Router } from '../broker/router.js';
import type { Fanout } from '../broker/seams.js';
import type { Session } from '../session/session.js';

/** What the census needs of a broker (`StompBroker` has it all). */
export interface Observed {
  readonly router: Router;
  readonly sessions: ReadonlySet<Session>;
  readonly fanout: Fanout;
}

/** The transports as the metrics name them: `wss` counts as `websocket`, `tls` as `tcp`. */
export type TransportLabel = 'websocket' | 'tcp';

/** How many queues the metrics name one by one (the deepest). */
export const TOP_QUEUES = 10;

/** One destination as the census saw it. */
export interface DestinationSeen {
  readonly name: string;
  readonly subscribers: number;
  readonly depth: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
}

/** What a broker holds now. */
export interface Census {
  /** When it was taken, ms since 1970. */
  readonly at: number;
  /** Open connections by transport. */
  readonly connections: Readonly<Record<TransportLabel, number>>;
  /** Connected sessions (CONNECTED sent, not closing). */
  readonly sessions: number;
  readonly subscriptions: number;
  /** Every destination in use, unordered. */
  readonly destinations: readonly DestinationSeen[];
  /** Messages waiting in `/queue/…` destinations, all together. */
  readonly queued: number;
  /** Messages kept for resumes, all topics together. */
  readonly history: number;
  /** Messages kept in users' mailboxes, all users together. */
  readonly mailboxes: number;
}

/** Takes the census of `broker`. */
export function takeCensus(broker: Observed): Census {
  const connections = { websocket: 0, tcp: 0 };
  let sessions = 0;
  let subscriptions = 0;
  for (const session of broker.sessions) {
    const kind = session.connection.kind;
    if (kind === 'ws' || kind === 'wss') connections.websocket++;
    else connections.tcp++;
    if (session.connected) sessions++;
    subscriptions += session.subscriptions.size;
  }
  const destinations: DestinationSeen[] = [];
  let queued = 0;
  for (const d of broker.router.active) {
    const seen = see(d);
    destinations.push(seen);
    queued += seen.depth;
  }
  return {
    at: Date.now(),
    connections,
    sessions,
    subscriptions,
    destinations,
    queued,
    history: broker.router.history.size,
    mailboxes: broker.router.mailboxes.size,
  };
}

function see(d: Destination): DestinationSeen {
  // A user queue's depth walks its user's mailbox: the mailbox total says it already.
  const depth = d.name.startsWith('/queue/') ? d.depth : 0;
  return {
    name: d.name,
    subscribers: d.subscribers,
    depth,
    messagesIn: d.messagesIn,
    messagesOut: d.messagesOut,
  };
}

/** The `n` deepest queues, deepest first (ties by name, so a scrape is stable). */
export function deepestQueues(census: Census, n = TOP_QUEUES): DestinationSeen[] {
  return census.destinations
    .filter((d) => d.name.startsWith('/queue/') && d.depth > 0)
    .sort((a, b) => b.depth - a.depth || (a.name < b.name ? -1 : 1))
    .slice(0, n);
}
