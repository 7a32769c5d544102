import type { InstanceSeen, Registry } from '../broker/seams.js';
import type { ConsumedRecord, ProducedRecord } from './kafka-client.js';

/** What a {@link Presence} needs from the fan-out it serves. */
export interface PresenceOptions {
  /** This instance's name in the registry. */
  readonly instanceId: string;
  /** The Kafka topic of the announcements (`<topic>.presence`). */
  readonly topic: string;
  /** How often this instance announces its users, ms; entries live 3 times as long. */
  readonly intervalMs: number;
  /** Users with a session on this instance now. */
  readonly localUsers: () => Iterable<string>;
  /** What else this instance announces: its connections and consumer lag now. */
  readonly status?: () => { connections: number | undefined; lag: number };
  /** Produces one announcement (failures are for the caller to ignore). */
  readonly produce: (record: ProducedRecord) => Promise<void>;
  /** Logs a warning once per kind. */
  readonly warnOnce: (key: string, message: string) => void;
}

/**
 * The connection registry of cluster mode (issue 5): every instance announces
 * the users it has sessions of on a Kafka topic, every `intervalMs` and soon
 * after a change, and keeps the others' announcements. An instance that stops
 * announcing (it died) drops out after three intervals; one that stops
 * cleanly says so at once. It is the {@link Registry} of `KafkaFanout`.
 */
export class Presence implements Registry {
  private readonly others = new Map<
    string,
    { users: Set<string>; seenAt: number; connections: number | undefined; lag: number | undefined }
  >();
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;

  constructor(private readonly options: PresenceOptions) {}

  /** This instance's name in the registry. */
  get instanceId(): string {
    return this.options.instanceId;
  }

  /** Starts announcing (once the producer is connected); idempotent. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.announce(), this.options.intervalMs);
    this.timer.unref();
    this.announce();
  }

  /** A session of some user came or went here: announce soon. */
  usersChanged(): void {
    if (this.soon || !this.timer) return;
    // A burst of connects (a reconnect storm) makes one announcement.
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.announce();
    }, 50);
    this.soon.unref();
  }

  /** Stops announcing and, when `leave` is set, tells the others at once. */
  stop(leave: boolean): void {
    clearInterval(this.timer);
    clearTimeout(this.soon);
    if (leave && this.timer) this.announce(true);
    this.timer = undefined;
  }

  /** The instances where `user` has a session now, this one included. */
  whereIs(user: string): string[] {
    const out: string[] = [];
    for (const u of this.options.localUsers()) {
      if (u === user) {
        out.push(this.options.instanceId);
        break;
      }
    }
    const oldest = Date.now() - 3 * this.options.intervalMs;
    for (const [instance, entry] of this.others) {
      if (entry.seenAt < oldest) this.others.delete(instance);
      else if (entry.users.has(user)) out.push(instance);
    }
    return out;
  }

  /** The other instances alive now, with what they last announced. */
  instances(): InstanceSeen[] {
    const oldest = Date.now() - 3 * this.options.intervalMs;
    const out: InstanceSeen[] = [];
    for (const [id, entry] of this.others) {
      if (entry.seenAt < oldest) continue;
      const { connections, lag, seenAt } = entry;
      out.push({ id, users: entry.users.size, connections, lag, seenAt });
    }
    return out;
  }

  /** One announcement read from the topic. */
  onRecord(record: ConsumedRecord): void {
    const instance = record.key?.toString();
    if (!instance || instance === this.options.instanceId) return;
    // An old announcement read again (a consumer restart) must not revive a dead instance.
    if (record.timestamp < Date.now() - 3 * this.options.intervalMs) return;
    try {
      const { users, leaving, connections, lag } = JSON.parse(record.value?.toString() ?? '{}') as {
        users?: unknown;
        leaving?: unknown;
        connections?: unknown;
        lag?: unknown;
      };
      if (leaving === true) this.others.delete(instance);
      else if (Array.isArray(users)) {
        this.others.set(instance, {
          users: new Set(users.map(String)),
          seenAt: Date.now(),
          connections: typeof connections === 'number' ? connections : undefined,
          lag: typeof lag === 'number' ? lag : undefined,
        });
      }
    } catch {
      this.options.warnOnce(
        this.options.topic,
        `skipping a malformed record on ${this.options.topic}`,
      );
    }
  }

  private announce(leaving = false): void {
    const users = leaving ? [] : [...this.options.localUsers()];
    // Older instances read `users` and `leaving` only; the rest is for the console.
    const status = leaving ? undefined : this.options.status?.();
    this.options
      .produce({
        topic: this.options.topic,
        key: this.options.instanceId,
        value: Buffer.from(JSON.stringify({ users, leaving, ...status })),
        headers: [],
      })
      .catch(() => {});
  }
}
