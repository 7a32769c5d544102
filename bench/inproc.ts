/**
 * What the in-process benchmarks share (`metrics.bench.ts`, `security-inproc.ts`): a
 * connection that keeps nothing and only counts what the broker sends it, so that a
 * benchmark measures the broker and not a transport.
 */
import type { Connection } from '../src/transport/connection.js';

/** A connection fed by the benchmark and counting the bytes the broker sends. */
export interface Counting extends Connection {
  bytes: number;
  receive(text: string): void;
}

/**
 * A counting connection built on `Base`: the `Connection` class of the checkout under
 * test (a benchmark may load two checkouts side by side).
 */
export function countingConnection(Base: typeof Connection): Counting {
  class CountingConnection extends Base {
    readonly remoteAddress = '127.0.0.1:1';
    readonly kind = 'tcp' as const;
    bytes = 0;
    receive(text: string): void {
      this.events?.onData(Buffer.from(text));
    }
    protected send(data: Buffer): void {
      this.bytes += data.length;
    }
    protected transportBuffered(): number {
      return 0;
    }
    protected close(): void {}
    destroy(): void {
      this.events?.onClose();
    }
    pause(): void {}
    resume(): void {}
  }
  return new CountingConnection();
}

/** One event-loop turn: what the broker does for the frames fed so far is done. */
export const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
