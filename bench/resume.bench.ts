/**
 * Resume benchmark (issue 5, "Benchmark"): the time and broker CPU to replay missed
 * messages to clients that come back with `x-resume-after`, embedded and in cluster
 * mode (after a restart of the instance, whose history is then read back from Kafka).
 *
 * ```sh
 * npx tsx bench/resume.bench.ts     # compiles src/, starts a Kafka, ~1 min; writes bench/results/resume.md
 * # one case, its broker profiled (no report written when filtered):
 * BENCH_FILTER='embedded 1000x100' BENCH_NODE_FLAGS='--cpu-prof --cpu-prof-dir=/tmp/prof' \
 *   npx tsx bench/resume.bench.ts
 * ```
 *
 * `BENCH_FILTER`: run only the cases whose name (`<mode> <clients>x<missed>`, e.g.
 * `cluster 100x100`) contains this text; no Kafka is started when no cluster case is left.
 * `BENCH_NODE_FLAGS`: Node flags for every stompbus instance started (the publisher's too).
 *
 * Every client checks what it got: exactly the missed sequence numbers, in order, none
 * twice, and `x-resume:complete`. A run that loses anything fails instead of printing.
 * Only 127.0.0.1; every process started here is stopped by PID.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { KAFKA_VERSION, type RunningKafka, startKafka } from '../scripts/kafka.js';
import { markdownTable } from './harness.js';
import { FrameScanner, headerOf, Kind } from './load/stomp-wire.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const HOST = '127.0.0.1';
const DESTINATION = '/topic/resume';
const GOAL_MS = 5_000;
const CLOCK_TICK_MS = 10; // USER_HZ = 100 on Linux

const log = (msg: string) => console.error(`[resume.bench] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- processes started here (stopped by PID) ----

const children = new Set<ChildProcess>();
let kafka: RunningKafka | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

interface Instance {
  child: ChildProcess;
  port: number;
  url: string;
}

/**
 * Where src/ is compiled at the start of a run (git-ignored), like the load
 * harness does: a private build, so that a `dist/` rebuilt or removed by
 * something else running in this checkout (a test's global setup) cannot
 * pull the code from under the instances in the middle of a run.
 */
const BUILD_ROOT = join(ROOT, 'bench', 'load', '.build-resume');
const BUILD = join(BUILD_ROOT, 'dist');

function buildStompbus(): void {
  rmSync(BUILD_ROOT, { recursive: true, force: true });
  mkdirSync(BUILD_ROOT, { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(BUILD_ROOT, 'package.json'));
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const args = ['-p', 'tsconfig.build.json', '--outDir', BUILD, '--declaration', 'false'];
  try {
    execFileSync(process.execPath, [tsc, ...args, '--sourceMap', 'false'], {
      cwd: ROOT,
      stdio: 'ignore',
    });
  } catch {
    // tsc exits non-zero on type errors but still emits; a missing cli.js is the failure.
  }
  if (!existsSync(join(BUILD, 'cli.js'))) throw new Error('could not compile src/');
}

async function startInstance(port: number, extra: string[]): Promise<Instance> {
  const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const run = [...flags, join(ROOT, 'bench', 'load', 'run-cli.mjs'), join(BUILD, 'cli.js')];
  const args = [...run, '--host', HOST, '--port', String(port), '--tcp-port', '0'];
  const child = spawn(process.execPath, [...args, ...extra], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, STOMPBUS_ADMIN_PORT: '0' },
  });
  children.add(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`stompbus exited:\n${output}`);
    const ok = await fetch(`http://${HOST}:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`stompbus not ready in 30 s:\n${output}`);
    await sleep(20);
  }
  return { child, port, url: `ws://${HOST}:${port}/stomp` };
}

async function stopInstance(instance: Instance, signal: NodeJS.Signals = 'SIGTERM') {
  const { child } = instance;
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(child.pid, signal);
    const timer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
  children.delete(child);
}

/** CPU time (user + system) a process has used so far, ms. */
function cpuMs(child: ChildProcess): number {
  const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS;
}

process.once('exit', () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
});

// ---- a minimal client that checks what it resumes ----

class Reader {
  position: string | undefined;
  got = 0;
  nextSeq = 0;
  problems: string[] = [];
  complete: string | undefined;
  private ws: WebSocket | undefined;
  private onDone: (() => void) | undefined;
  private expect = 0;

  /** Connects, subscribes (resuming after `position` when set), resolves on the RECEIPT. */
  open(url: string, firstSeq: number, count: number, resumeAfter?: string) {
    return new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false });
      this.ws = ws;
      this.got = 0;
      this.nextSeq = firstSeq;
      this.expect = count;
      const resume = resumeAfter ? `x-resume-after:${resumeAfter}\n` : '';
      const scanner = new FrameScanner((buf, start, end) => {
        const kind = buf[start];
        if (kind === Kind.MESSAGE) this.onMessage(buf, start, end);
        else if (kind === Kind.CONNECTED) {
          ws.send(`SUBSCRIBE\nid:s\ndestination:${DESTINATION}\n${resume}receipt:s\n\n\0`);
        } else if (kind === Kind.RECEIPT) {
          this.complete = headerOf(buf, start, end, 'x-resume');
          resolve();
        } else reject(new Error(buf.toString('utf8', start, end)));
      });
      ws.on('message', (data: Buffer) => scanner.push(data));
      ws.once('error', reject);
      ws.once('open', () => ws.send('CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0'));
    });
  }

  /** Resolves once `expect` messages arrived. */
  done(): Promise<void> {
    if (this.got >= this.expect) return Promise.resolve();
    return new Promise((resolve) => {
      this.onDone = resolve;
    });
  }

  close(): void {
    this.ws?.terminate();
  }

  private onMessage(buf: Buffer, start: number, end: number): void {
    const blank = buf.indexOf('\n\n', start);
    const seq = Number(buf.toString('latin1', blank + 2, end).split(' ', 1)[0]);
    this.position = headerOf(buf, start, end, 'x-position') ?? this.position;
    if (seq !== this.nextSeq) this.problems.push(`expected ${this.nextSeq}, got ${seq}`);
    this.nextSeq = seq + 1;
    if (++this.got >= this.expect && this.onDone) {
      this.onDone();
      this.onDone = undefined;
    }
  }
}

async function publish(url: string, from: number, count: number, bodySize: number) {
  const pad = 'x'.repeat(bodySize);
  const ws = new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const receipted = new Promise<void>((resolve, reject) => {
    const scanner = new FrameScanner((buf, start, end) => {
      if (buf[start] === Kind.RECEIPT) resolve();
      else if (buf[start] === Kind.ERROR) reject(new Error(buf.toString('utf8', start, end)));
    });
    ws.on('message', (d: Buffer) => scanner.push(d));
  });
  ws.send('CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0');
  for (let i = 0; i < count; i++) {
    const last = i === count - 1 ? 'receipt:done\n' : '';
    ws.send(`SEND\ndestination:${DESTINATION}\n${last}\n${from + i} ${pad}\0`);
  }
  await receipted;
  ws.terminate();
}

// ---- one scenario ----

interface Result {
  mode: string;
  clients: number;
  missed: number;
  restartMs: number | undefined;
  ms: number;
  cpuMs: number;
  /** CPU of this process (the readers' side) during the resume, ms. */
  clientsCpuMs: number;
  deliveries: number;
}

/**
 * `clients` readers subscribe and see message 0; they drop; `missed` messages are
 * published; (cluster: the readers' instance restarts;) then all readers come back at
 * once with their position and must get exactly messages 1..missed.
 */
async function scenario(
  mode: 'embedded' | 'cluster',
  clients: number,
  missed: number,
  start: (port: number) => Promise<Instance>,
  publisherUrl: ((readers: Instance) => string) | undefined,
): Promise<Result> {
  const port = await freePort();
  let broker = await start(port);
  const readers = Array.from({ length: clients }, () => new Reader());
  await Promise.all(readers.map((r) => r.open(broker.url, 0, 1)));
  const pubUrl = publisherUrl ? publisherUrl(broker) : broker.url;
  await publish(pubUrl, 0, 1, 64);
  await Promise.all(readers.map((r) => r.done()));
  for (const r of readers) r.close();
  await publish(pubUrl, 1, missed, 64);
  let restartMs: number | undefined;
  if (mode === 'cluster') {
    await sleep(500); // the readers' instance has consumed everything before it dies
    const t = performance.now();
    await stopInstance(broker, 'SIGKILL');
    broker = await start(port);
    restartMs = performance.now() - t;
  }
  const cpu0 = cpuMs(broker.child);
  const clients0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(readers.map((r) => r.open(broker.url, 1, missed, r.position)));
  await Promise.all(readers.map((r) => r.done()));
  const ms = performance.now() - t0;
  const cpu = cpuMs(broker.child) - cpu0;
  const used = process.cpuUsage(clients0);
  const clientsCpu = (used.user + used.system) / 1000;
  for (const r of readers) {
    r.close();
    if (r.problems.length > 0) throw new Error(`${mode}: ${r.problems.slice(0, 3).join('; ')}`);
    if (r.got !== missed) throw new Error(`${mode}: a reader got ${r.got} of ${missed}`);
    if (r.complete !== 'complete') throw new Error(`${mode}: resume was ${r.complete}`);
  }
  await stopInstance(broker);
  log(
    `${mode}: ${clients} x ${missed} in ${ms.toFixed(0)} ms (broker CPU ${cpu} ms, ` +
      `clients CPU ${clientsCpu.toFixed(0)} ms)`,
  );
  return {
    mode,
    clients,
    missed,
    restartMs,
    ms,
    cpuMs: cpu,
    clientsCpuMs: clientsCpu,
    deliveries: clients * missed,
  };
}

// ---- main ----

const CASES: Array<[number, number]> = [
  [1, 10_000],
  [100, 100],
  [1_000, 100],
];
const FILTER = process.env.BENCH_FILTER ?? '';
const selected = (mode: string, [clients, missed]: [number, number]) =>
  `${mode} ${clients}x${missed}`.includes(FILTER);

async function main(): Promise<void> {
  const watchdog = setTimeout(() => {
    log('watchdog: took longer than 5 minutes, stopping');
    process.exit(2);
  }, 300_000);
  buildStompbus();
  const history = ['--history-max-messages', '20000'];
  const results: Result[] = [];
  for (const [clients, missed] of CASES.filter((c) => selected('embedded', c))) {
    results.push(
      await scenario(
        'embedded',
        clients,
        missed,
        (port) => startInstance(port, history),
        undefined,
      ),
    );
  }
  const clusterCases = CASES.filter((c) => selected('cluster', c));
  if (clusterCases.length > 0) kafka = await startKafka();
  const brokers = kafka?.brokers ?? '';
  for (const [clients, missed] of clusterCases) {
    const topic = `stompbus-resume-bench-${clients}-${Date.now()}`;
    const cluster = ['--kafka-brokers', brokers, '--kafka-topic', topic, ...history];
    const publisher = await startInstance(await freePort(), cluster);
    try {
      results.push(
        await scenario(
          'cluster',
          clients,
          missed,
          (port) => startInstance(port, cluster),
          () => publisher.url,
        ),
      );
    } finally {
      await stopInstance(publisher);
    }
  }
  await kafka?.stop();
  kafka = undefined;
  clearTimeout(watchdog);

  const rows = results.map((r) => [
    r.mode,
    String(r.clients),
    r.missed.toLocaleString('en-US'),
    r.restartMs === undefined ? '-' : `${(r.restartMs / 1000).toFixed(1)} s`,
    `${(r.ms / 1000).toFixed(2)} s`,
    `${(r.cpuMs / 1000).toFixed(2)} s`,
    `${(r.clientsCpuMs / 1000).toFixed(2)} s`,
    Math.round(r.deliveries / (r.ms / 1000)).toLocaleString('en-US'),
    r.clients === 1_000 ? (r.ms < GOAL_MS ? 'met' : 'missed') : '',
  ]);
  const table = markdownTable(
    [
      'mode',
      'clients',
      'missed each',
      'restart',
      'resume time',
      'broker CPU',
      'clients CPU',
      'replayed/s',
      `goal < ${GOAL_MS / 1000} s`,
    ],
    rows,
  );
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const report = [
    `Resume benchmark, ${new Date().toISOString().slice(0, 10)}: ${cpus().length} cores (${cpu}), Node ${process.version}, Kafka ${KAFKA_VERSION}.`,
    '',
    table,
    '',
    'resume time: from the first reconnect to the last reader holding all its missed messages',
    '(every reader checked: exactly the missed sequence, in order, x-resume:complete).',
    "restart (cluster): SIGKILL of the readers' instance to its restart answering /healthz,",
    "history read back from Kafka included. broker CPU: user+system of the readers' instance",
    'during the resume. clients CPU: this harness process (all the readers) during the resume.',
  ].join('\n');
  if (!FILTER && !process.env.BENCH_NODE_FLAGS) {
    mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench', 'results', 'resume.md'), `${report}\n`);
  }
  console.log(report);
}

main().catch(async (error: unknown) => {
  console.error(error);
  for (const child of children) child.kill('SIGKILL');
  await kafka?.stop().catch(() => {});
  process.exit(1);
});
