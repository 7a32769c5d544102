import { destinationUser } from './destination.js';
import type { Message } from './message.js';
import type { Pending } from './subscription.js';

/** Bounds of what is kept for each user. */
export interface MailboxOptions {
  /** Most messages kept per user (all of the user's queues together); the oldest goes first. */
  maxMessages: number;
  /** Oldest message kept, ms. */
  maxAgeMs: number;
}

/** A user-queue message kept until it is consumed. */
export interface Letter extends Pending {
  /** Local subscriptions holding it unacknowledged right now. */
  holders: number;
}

/**
 * The messages sent to each user's queues (`/user/<name>/queue/…`) that no
 * session has consumed yet: acknowledged in the client ack modes, written
 * out in `auto`. They wait here while the user is offline and are delivered
 * in order on the next SUBSCRIBE (issue 5 "Offline delivery"). In cluster mode
 * the mailboxes come from the Kafka topic of user traffic, where consumption is
 * recorded too (every instance, or with cluster interest those where the user
 * has a session, which read it back when the user connects), so losing one
 * instance loses nothing.
 */
export class Mailboxes {
  /** By user, then by message id in arrival order. */
  private readonly byUser = new Map<string, Map<string, Letter>>();

  constructor(readonly options: MailboxOptions) {}

  /** Keeps a message for its user; the user's oldest goes when the bound is reached. */
  add(message: Message, now: number): Letter {
    const user = destinationUser(message.destination);
    let letters = this.byUser.get(user);
    if (!letters) {
      letters = new Map();
      this.byUser.set(user, letters);
    }
    const had = letters.get(message.id);
    if (had) return had;
    const letter: Letter = { message, deliveries: 0, holders: 0 };
    letters.set(message.id, letter);
    this.expire(user, letters, now);
    while (letters.size > this.options.maxMessages) {
      letters.delete(letters.keys().next().value as string);
    }
    return letter;
  }

  /** Forgets a consumed message; false when it was not kept. */
  remove(destination: string, messageId: string): boolean {
    const user = destinationUser(destination);
    const letters = this.byUser.get(user);
    if (!letters?.delete(messageId)) return false;
    if (letters.size === 0) this.byUser.delete(user);
    return true;
  }

  /** The kept letter of a message still waiting to be consumed. */
  letter(destination: string, messageId: string): Letter | undefined {
    return this.byUser.get(destinationUser(destination))?.get(messageId);
  }

  /** The kept messages of one user destination, oldest first. */
  waiting(destination: string, now: number): Letter[] {
    const user = destinationUser(destination);
    const letters = this.byUser.get(user);
    if (!letters) return [];
    this.expire(user, letters, now);
    const out: Letter[] = [];
    for (const letter of letters.values()) {
      if (letter.message.destination === destination) out.push(letter);
    }
    return out;
  }

  /** Drops expired messages of every user (a periodic sweep). */
  sweep(now: number): void {
    for (const [user, letters] of this.byUser) this.expire(user, letters, now);
  }

  /** Messages kept, all users together (for metrics and the console). */
  get size(): number {
    let n = 0;
    for (const letters of this.byUser.values()) n += letters.size;
    return n;
  }

  /** Messages kept for `user` (for tests and metrics). */
  count(user: string): number {
    return this.byUser.get(user)?.size ?? 0;
  }

  private expire(user: string, letters: Map<string, Letter>, now: number): void {
    const oldest = now - this.options.maxAgeMs;
    for (const [id, letter] of letters) {
      if ((letter.message.at ?? now) >= oldest) break;
      letters.delete(id);
    }
    if (letters.size === 0) this.byUser.delete(user);
  }
}
