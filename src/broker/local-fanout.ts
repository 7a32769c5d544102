import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { createMessage, type Outgoing } from './message.js';
import type { DurableLog, Fanout, FanoutSink, MessageBus, Registry } from './seams.js';

/**
 * The embedded default: one process is the whole cluster. A message goes
 * straight to the local subscribers; positions count up from 1 within one
 * process start (the epoch), so a position from an earlier process is
 * recognized as unknown; nothing needs recording for other instances.
 */
export class LocalFanout implements Fanout, MessageBus, DurableLog, Registry {
  readonly instanceId = `${hostname()}-${process.pid}`;
  readonly bus: MessageBus = this;
  readonly log: DurableLog = this;
  readonly registry: Registry = this;
  readonly ready = true;
  private readonly epoch = randomBytes(4).toString('hex');
  private seq = 0;
  private sink: FanoutSink | undefined;

  async start(sink: FanoutSink): Promise<void> {
    this.sink = sink;
  }

  publish(message: Outgoing): void | Promise<void> {
    this.sink?.deliver(createMessage(message, { epoch: this.epoch, n: ++this.seq }, Date.now()));
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
