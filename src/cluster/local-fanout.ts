import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Message } from '../broker/message.js';
import type { Fanout, FanoutSink } from './fanout.js';

/**
 * The embedded default: a message goes straight to the local subscribers.
 * Positions count up from 1 within one process start (the epoch), so a
 * position from an earlier process is recognized as unknown.
 */
export class LocalFanout implements Fanout {
  readonly instanceId = `${hostname()}-${process.pid}`;
  private readonly epoch = randomBytes(4).toString('hex');
  private seq = 0;
  private sink: FanoutSink | undefined;

  async start(sink: FanoutSink): Promise<void> {
    this.sink = sink;
  }

  publish(message: Message): void {
    message.position = { epoch: this.epoch, n: ++this.seq };
    message.at = Date.now();
    this.sink?.deliver(message);
  }

  consumed(): void {}

  coveredFrom(_destination: string, epoch: string): number | undefined {
    return epoch === this.epoch ? 1 : undefined;
  }

  usersChanged(): void {}

  whereIs(user: string): string[] {
    for (const u of this.sink?.localUsers() ?? []) if (u === user) return [this.instanceId];
    return [];
  }

  async stop(): Promise<void> {}
}
