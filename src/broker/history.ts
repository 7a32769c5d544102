import type { Message, Position } from './message.js';

/** Bounds of the history kept per destination for resumes. */
export interface HistoryOptions {
  /** Most messages kept per destination. */
  maxMessages: number;
  /** Oldest message kept, ms. */
  maxAgeMs: number;
}

/** What a resume gets: the retained messages after the position, and whether that is all of them. */
export interface Replay {
  readonly messages: Message[];
  /** False when messages after the position were dropped (count or age) or never seen here. */
  readonly complete: boolean;
}

interface Retained {
  /** In position order; `start` is the first live slot. */
  items: Message[];
  start: number;
  /** The newest position dropped from this destination, per epoch. */
  dropped: Map<string, number>;
}

/**
 * The recent messages of each topic and user-topic destination, for a
 * SUBSCRIBE that resumes after a position (issue 5: "no gap, no duplicate").
 * Bounded per destination by count and age. A position older than what is
 * kept gives an incomplete replay, never a silent gap: every drop is remembered
 * per destination, and, once an idle destination is forgotten, per epoch.
 */
export class History {
  private readonly byDestination = new Map<string, Retained>();
  /** Newest position dropped with a destination that was forgotten, per epoch. */
  private readonly forgotten = new Map<string, number>();

  constructor(readonly options: HistoryOptions) {}

  /**
   * Keeps a message that has a position; drops what falls out of the bounds.
   * A message at or before the last one kept of its epoch is kept already
   * (read again by a cluster that reads a partition back): ignored, unless
   * no message of its position is kept, in which case it goes in its place
   * (a cluster reading back records from before the ones it kept).
   */
  append(message: Message, now: number): void {
    const { position } = message;
    if (!position || this.options.maxMessages <= 0) return;
    let retained = this.byDestination.get(message.destination);
    if (!retained) {
      retained = { items: [], start: 0, dropped: new Map() };
      this.byDestination.set(message.destination, retained);
    }
    if (position.n <= (retained.dropped.get(position.epoch) ?? -1)) return;
    const last = retained.items.at(-1)?.position;
    if (retained.items.length > retained.start && last?.epoch === position.epoch) {
      if (position.n === last.n) return;
      if (position.n < last.n) {
        if (!this.insert(retained, message)) return;
      } else retained.items.push(message);
    } else retained.items.push(message);
    while (retained.items.length - retained.start > this.options.maxMessages) this.drop(retained);
    this.expire(retained, now);
  }

  /**
   * The retained messages of `destination` after `after`. `coveredFrom` is
   * the first position of the epoch that this instance has seen everything
   * from (undefined: an epoch it does not know, e.g. a previous process).
   */
  replay(
    destination: string,
    after: Position,
    coveredFrom: number | undefined,
    now: number,
  ): Replay {
    const retained = this.byDestination.get(destination);
    if (retained) this.expire(retained, now);
    const items = retained ? retained.items.slice(retained.start) : [];
    const known = coveredFrom !== undefined && after.n + 1 >= coveredFrom;
    const dropped = Math.max(
      retained?.dropped.get(after.epoch) ?? -1,
      this.forgotten.get(after.epoch) ?? -1,
    );
    const sameEpoch = items.every((m) => m.position?.epoch === after.epoch);
    // Keeping no history (maxMessages 0) can never vouch for a resume.
    if (!known || !sameEpoch || this.options.maxMessages <= 0) {
      return { messages: items, complete: false };
    }
    return {
      messages: items.filter((m) => (m.position?.n ?? 0) > after.n),
      complete: dropped <= after.n,
    };
  }

  /**
   * Puts an older message of the last one's epoch in position order; false
   * when one of its position is kept already, or the epochs before it differ.
   */
  private insert(retained: Retained, message: Message): boolean {
    const { epoch, n } = message.position as Position;
    const { items } = retained;
    let low = retained.start;
    let high = items.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const at = (items[mid] as Message).position as Position;
      if (at.epoch !== epoch) return false;
      if (at.n < n) low = mid + 1;
      else high = mid;
    }
    if (low < items.length && items[low]?.position?.n === n) return false;
    items.splice(low, 0, message);
    return true;
  }

  /** Drops expired messages everywhere and forgets empty destinations (a periodic sweep). */
  sweep(now: number): void {
    for (const [destination, retained] of this.byDestination) {
      this.expire(retained, now);
      if (retained.items.length > retained.start) continue;
      for (const [epoch, n] of retained.dropped) {
        this.forgotten.set(epoch, Math.max(n, this.forgotten.get(epoch) ?? -1));
      }
      this.byDestination.delete(destination);
    }
  }

  /** Messages kept, all destinations together (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const r of this.byDestination.values()) n += r.items.length - r.start;
    return n;
  }

  private expire(retained: Retained, now: number): void {
    const oldest = now - this.options.maxAgeMs;
    while (retained.start < retained.items.length) {
      const at = retained.items[retained.start]?.at ?? now;
      if (at >= oldest) break;
      this.drop(retained);
    }
  }

  private drop(retained: Retained): void {
    const message = retained.items[retained.start] as Message;
    retained.items[retained.start++] = undefined as unknown as Message;
    const { epoch, n } = message.position as Position;
    retained.dropped.set(epoch, Math.max(n, retained.dropped.get(epoch) ?? -1));
    // Compact once the dead front is as long as the live part.
    if (retained.start > 64 && retained.start * 2 > retained.items.length) {
      retained.items = retained.items.slice(retained.start);
      retained.start = 0;
    }
  }
}
