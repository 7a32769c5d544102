import type { Pending, Subscription } from './subscription.js';

/**
 * A `/queue/...` destination: messages wait here until one consumer takes
 * each, round robin among the consumers that are ready.
 */
export class Queue {
  /** Subscriptions consuming from this queue. */
  readonly consumers: Subscription[] = [];
  private items: Pending[] = [];
  private head = 0;
  private next = 0;

  constructor(
    /** The destination name. */
    readonly name: string,
  ) {}

  /** Messages waiting for a consumer. */
  get size(): number {
    return this.items.length - this.head;
  }

  /** Appends a message at the back. */
  push(pending: Pending): void {
    this.items.push(pending);
  }

  /** Puts messages back at the front, in their original order (redelivery). */
  requeue(list: Pending[]): void {
    this.compact();
    this.items.unshift(...list);
  }

  /** Removes and returns the oldest message. */
  shift(): Pending | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head] as Pending;
    this.items[this.head++] = undefined as unknown as Pending;
    if (this.head > 1024 && this.head * 2 > this.items.length) this.compact();
    return item;
  }

  /** The next consumer that is ready, round robin; undefined if none is. */
  nextReady(): Subscription | undefined {
    const n = this.consumers.length;
    for (let i = 0; i < n; i++) {
      const sub = this.consumers[(this.next + i) % n] as Subscription;
      if (sub.ready) {
        this.next = (this.next + i + 1) % n;
        return sub;
      }
    }
    return undefined;
  }

  private compact(): void {
    if (this.head === 0) return;
    this.items = this.items.slice(this.head);
    this.head = 0;
  }
}
