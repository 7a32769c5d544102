/**
 * What the multi-process cluster benchmarks (cluster, ceiling, interest-skew, queues)
 * share: stompbus instances as child processes of a compiled src/ (stopped by PID), a raw
 * STOMP-over-WebSocket client, and the CPU figures of `/proc`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { FrameScanner, Kind } from './stomp-wire.js';
import { REPO } from './targets.js';

/** Processes started here and not stopped yet. */
export const children = new Set<ChildProcess>();

process.once('exit', () => {
  for (const child of children) if (child.pid && child.exitCode === null) child.kill('SIGKILL');
});

/** Children stopped on purpose: their exit is no surprise. */
const stopRequested = new WeakSet<ChildProcess>();

/** `signal` (SIGTERM), SIGKILL after 5 s; resolves once the process exited. */
export async function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  stopRequested.add(child);
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    children.delete(child);
    return;
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const kill = (sig: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, sig);
    } catch {} // already gone
  };
  kill(signal);
  const timer = setTimeout(() => kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

/** Stops every process started here and not stopped yet. */
export function stopChildren(): Promise<unknown> {
  return Promise.allSettled([...children].map((child) => stopChild(child)));
}

export interface Instance {
  url: string;
  /** The admin port's base URL (metrics at `/metrics`). */
  admin: string | undefined;
  child: ChildProcess;
}

/** More of {@link startInstance}. */
export interface StartOptions {
  /** Node flags of the instance; default `BENCH_NODE_FLAGS` (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). */
  nodeFlags?: string[];
  /** How long it may take to print its ready line, ms. Default 30,000. */
  readyTimeoutMs?: number;
  /** A folder where `<pid>.log` gets the instance's log lines (stderr) too. */
  logDir?: string;
}

/**
 * Starts the stompbus of a compiled src/ (`<build>/cli.js`, see `compileCheckout`) on
 * 127.0.0.1 with `flags`, through bench/load/run-cli.mjs (no TypeScript loader in the
 * broker), and resolves with its URLs from the ready line.
 */
export async function startInstance(
  build: string,
  flags: string[],
  options: StartOptions = {},
): Promise<Instance> {
  const nodeFlags =
    options.nodeFlags ?? (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const { child, ready } = await startUntilReady(
    'stompbus',
    [
      ...nodeFlags,
      join(REPO, 'bench', 'load', 'run-cli.mjs'),
      join(build, 'cli.js'),
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--tcp-port',
      '0',
      ...flags,
    ],
    {
      env: { ...process.env, STOMPBUS_ADMIN_PORT: '0' },
      readyMs: options.readyTimeoutMs,
      logDir: options.logDir,
      // The ready line: JSON, since stdout is a pipe.
      ready: (out) => {
        const ws = /"ws":"(ws:\/\/127\.0\.0\.1:\d+[^"]*)"/.exec(out)?.[1];
        const admin = /"admin":"(http:\/\/[^"]+)\/console"/.exec(out)?.[1];
        return ws ? { url: ws, admin } : undefined;
      },
    },
  );
  return { ...ready, child };
}

/** More of {@link startUntilReady}. */
export interface ReadyOptions<T> {
  /** Reads the child's stdout so far: what it announced once it is ready, else undefined. */
  ready(out: string): T | undefined;
  env?: NodeJS.ProcessEnv;
  /** How long it may take to be ready, ms. Default 30,000. */
  readyMs?: number | undefined;
  /** A folder where `<pid>.log` gets the child's stderr, and its stdout once ready. */
  logDir?: string | undefined;
  /** The child exited after it was ready, and not through {@link stopChild}. */
  onLateExit?(code: number | null, signal: NodeJS.Signals | null): void;
}

/**
 * Starts `node <args>` in the checkout, among {@link children}, and resolves once
 * `options.ready` finds what it announces on stdout; rejects, with its output, when it
 * exits first or takes longer than `readyMs`. Its output stays drained afterwards.
 */
export function startUntilReady<T>(
  what: string,
  args: string[],
  options: ReadyOptions<T>,
): Promise<{ child: ChildProcess; ready: T }> {
  const readyMs = options.readyMs ?? 30_000;
  const child = spawn(process.execPath, args, {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
  });
  children.add(child);
  const started = Date.now();
  let out = '';
  let err = '';
  let isReady = false;
  const logFile = options.logDir && join(options.logDir, `${child.pid}.log`);
  child.stderr?.on('data', (d: Buffer) => {
    if (logFile) appendFileSync(logFile, d);
    err += d.toString();
    if (err.length > 20_000) err = err.slice(-10_000);
  });
  return new Promise((resolve, reject) => {
    const fail = (e: Error) => {
      clearTimeout(timer);
      void stopChild(child);
      reject(new Error(`${e.message}\n${out}${err}`));
    };
    const timer = setTimeout(() => fail(new Error(`${what} not ready in ${readyMs} ms`)), readyMs);
    // 'close': after the pipes are read, so that a child that fails says why.
    child.once('close', (code, signal) => {
      if (!isReady) fail(new Error(`${what} exited (${code ?? signal})`));
      else if (!stopRequested.has(child)) options.onLateExit?.(code, signal);
    });
    const onData = (d: Buffer) => {
      out += d.toString();
      const ready = options.ready(out);
      if (ready === undefined) return;
      isReady = true;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      // Keep draining the pipe; with a log folder, what the child prints goes there too
      // (`--trace-gc` lines, say), after a line with the wall-clock time it started.
      if (logFile) {
        appendFileSync(logFile, `[bench] started at ${new Date(started).toISOString()}\n${out}`);
        child.stdout?.on('data', (more: Buffer) => appendFileSync(logFile, more));
      } else {
        child.stdout?.resume();
      }
      resolve({ child, ready });
    };
    child.stdout?.on('data', onData);
  });
}

/**
 * Raw STOMP over WebSocket: resolves once CONNECTED and every SUBSCRIBE of
 * `subscribe` is receipted. MESSAGE frames go to `onMessage`, ERROR frames to `onError`.
 */
export async function stompClient(
  url: string,
  subscribe: readonly string[],
  onMessage: (buf: Buffer, start: number, end: number) => void,
  onError: (text: string) => void = () => {},
): Promise<WebSocket> {
  const ws = new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false });
  let receipts = 0;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no CONNECTED/RECEIPT from ${url}`)), 20_000);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    const scanner = new FrameScanner((buf, start, end) => {
      const kind = buf[start];
      if (kind === Kind.MESSAGE) onMessage(buf, start, end);
      else if (kind === Kind.CONNECTED) {
        subscribe.forEach((d, i) => {
          ws.send(`SUBSCRIBE\nid:${i}\ndestination:${d}\nack:auto\nreceipt:r${i}\n\n\0`);
        });
        if (subscribe.length === 0) done();
      } else if (kind === Kind.RECEIPT) {
        if (++receipts === subscribe.length) done();
      } else if (kind === Kind.ERROR) onError(buf.toString('utf8', start, end));
    });
    ws.on('message', (data: Buffer) => scanner.push(data));
    ws.once('error', reject);
    ws.once('open', () =>
      ws.send('CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\n\n\0'),
    );
  });
  return ws;
}

/** CPU seconds (user + system) of a process so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ
  } catch {
    return NaN;
  }
}

/** Busy and total jiffies of the whole machine (any process), from /proc/stat. */
export function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - (v[3] ?? 0) - (v[4] ?? 0), total };
}

export const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');

/** Calls `emit(from, to)` every ~1 ms with the messages due at `rate`; resolves when all are out. */
export function pace(
  count: number,
  rate: number,
  emit: (from: number, to: number) => void,
): Promise<void> {
  const start = performance.now();
  let i = 0;
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(count, Math.floor(((performance.now() - start) * rate) / 1000));
      if (due > i) emit(i, due);
      i = due;
      if (i >= count) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
}
