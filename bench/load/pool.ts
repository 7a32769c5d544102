/**
 * The harness's side of its client processes: spawn, ask, wait for the
 * answer (always with a deadline), close.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromWorker, ToWorker } from './protocol.js';
import { spawnWithFds, stopChild, TSX } from './targets.js';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

type Op = FromWorker['op'];
type Reply<O extends Op> = Extract<FromWorker, { op: O }>;

/** One client process. */
export class WorkerProcess {
  private readonly child: ChildProcess;
  private readonly waiting = new Map<Op, (message: FromWorker) => void>();
  private failure: Error | undefined;
  /** Latest progress value reported (see protocol.ts). */
  progress = 0;
  /** Called on every progress report. */
  onProgress: () => void = () => {};

  constructor(readonly label: string) {
    this.child = spawnWithFds([process.execPath, ...TSX, WORKER], true);
    this.child.on('message', (message: FromWorker) => {
      if (message.op === 'progress') {
        this.progress = message.value;
        this.onProgress();
        return;
      }
      if (message.op === 'crashed') return this.fail(new Error(`${label}: ${message.error}`));
      const resolve = this.waiting.get(message.op);
      this.waiting.delete(message.op);
      resolve?.(message);
    });
    this.child.once('exit', (code, signal) => {
      this.fail(new Error(`${label} exited (${code ?? signal})`));
    });
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const resolve of this.waiting.values()) resolve({ op: 'crashed', error: error.message });
    this.waiting.clear();
  }

  /** The process id (for CPU accounting). */
  get pid(): number {
    return this.child.pid as number;
  }

  /** Sends a message that needs no answer. */
  send(message: ToWorker): void {
    if (this.child.connected) this.child.send(message);
  }

  /** Sends `message` and waits for the reply `op`, at most `timeoutMs`. */
  ask<O extends Op>(message: ToWorker, op: O, timeoutMs: number): Promise<Reply<O>> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(op);
        reject(new Error(`${this.label}: no ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(op, (reply) => {
        clearTimeout(timer);
        if (reply.op === 'crashed') reject(new Error(reply.error));
        else resolve(reply as Reply<O>);
      });
      this.send(message);
    });
  }

  /** Asks the worker to close its connections and exit; kills it if it does not. */
  async close(): Promise<void> {
    if (!this.failure) await this.ask({ op: 'close' }, 'closed', 10_000).catch(() => {});
    const exited = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) resolve();
      else this.child.once('exit', () => resolve());
    });
    const timer = setTimeout(() => void stopChild(this.child), 3000);
    await exited;
    clearTimeout(timer);
  }
}

/** Spawns `n` workers labelled `<prefix>-<i>`. */
export function spawnWorkers(prefix: string, n: number): WorkerProcess[] {
  return Array.from({ length: n }, (_, i) => new WorkerProcess(`${prefix}-${i}`));
}
