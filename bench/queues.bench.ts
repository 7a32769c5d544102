/**
 * Cluster queues benchmark (issue 14, "Benchmark"): one `/queue/<name>` shared by 3
 * instances through Kafka next to the same queue on one embedded instance, and what an
 * instance's loss costs.
 *
 * ```sh
 * npx tsx bench/queues.bench.ts        # ~6-10 min, writes bench/results/queues.md
 * ```
 *
 * Part 1, side by side, rounds alternating the order after a warm-up: 4 competing
 * consumers (`ack:client-individual`, every MESSAGE ACKed, `prefetch-count`), 2 + 1 + 1 over
 * the 3 instances of a cluster or all on the embedded instance, and one producer per
 * instance (3 on the embedded one). Each round runs, per side, a closed-loop max rate (each
 * producer keeps at most WINDOW SENDs without their RECEIPT, and all of them together at
 * most IN_FLIGHT messages sent but not yet delivered) and a paced run (send → MESSAGE
 * latency, the send time stamped in the body). Every run checks that each message sent
 * was delivered exactly once and that every SEND got its RECEIPT.
 *
 * Part 2, an instance's loss: a consumer on B holding its prefetch unacknowledged, one with
 * room on C; B is SIGKILLed and the harness times until C has all of B's messages again
 * (`redelivered:true`), with `--presence-interval` 2000 (default) and 500. Then the owner of
 * the queue's partition is SIGKILLed and the harness times until messages sent right after
 * the kill are delivered. B is started again between repetitions.
 *
 * Compiles src/ into bench/load/.build-queues, starts a real Kafka (scripts/kafka.ts) and
 * stompbus child processes (`node bench/load/run-cli.mjs <build>/cli.js …`) on 127.0.0.1
 * only, and stops every process it started by PID; a watchdog ends a run that hangs.
 *
 * Environment: BENCH_ROUNDS (4), BENCH_MAX_S (5), BENCH_PACED_S (6), BENCH_RATES (`250,1000`),
 * BENCH_LOSS_REPS (3), BENCH_PREFETCH (100), BENCH_PARTS (`throughput,consumer,owner,fast`:
 * which parts run; a run without all of them is a trial, its report names the parts),
 * BENCH_CHECKOUT (compile and run another checkout's src/, e.g. a patched copy), BENCH_LOG_DIR
 * (each instance's stderr into `<dir>/<pid>.log`).
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { KAFKA_VERSION, type RunningKafka, startKafka } from '../scripts/kafka.js';
import { partitionFor } from '../src/cluster/partitioner.js';
import { startInstance as startStompbus, stopChild, stopChildren } from './load/instances.js';
import { FrameScanner, headerOf, Kind, readStamp, type Stamp } from './load/stomp-wire.js';
import { type Baseline, compileCheckout } from './load/targets.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values: args } = parseArgs({
  options: { out: { type: 'string', default: 'bench/results/queues.md' } },
});
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
/** Seconds of one max-rate run; the first second is not counted. */
const MAX_S = Number(process.env.BENCH_MAX_S ?? 5);
/** Seconds of one paced run; the first second is not counted. */
const PACED_S = Number(process.env.BENCH_PACED_S ?? 6);
/** Paced rates, messages/s: one the cluster keeps up with on a busy 2-core machine, and 1,000. */
const RATES = (process.env.BENCH_RATES ?? '250,1000').split(',').map(Number);
const LOSS_REPS = Number(process.env.BENCH_LOSS_REPS ?? 3);
const BODY_SIZE = 256;
const PARTITIONS = 6;
const PREFETCH = Number(process.env.BENCH_PREFETCH ?? 100);
const PARTS = new Set((process.env.BENCH_PARTS ?? 'throughput,consumer,owner,fast').split(','));
/** Unreceipted SENDs per producer in the max-rate runs. */
const WINDOW = 100;
/** Messages sent but not delivered, all producers of a side together (under the queue limit). */
const IN_FLIGHT = 2_000;
/** Unacknowledged messages the consumer on B holds when B is killed. */
const HELD = 50;
const DRAIN_MS = 20_000;
const WATCHDOG_MS = 20 * 60_000;
const CLOCK_TICKS = 100; // USER_HZ of /proc/<pid>/stat on Linux

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) =>
  console.error(`[queues.bench ${new Date().toISOString().slice(11, 23)}] ${msg}`);

// ---- processes we started (stopped by PID, bench/load/instances.ts) ----

let kafka: RunningKafka | undefined;

async function cleanup(): Promise<void> {
  await stopChildren();
  if (kafka) {
    const k = kafka;
    kafka = undefined;
    await k.stop().catch((e: unknown) => log(`stopping Kafka: ${String(e)}`));
  }
}

interface Instance {
  url: string;
  admin: string;
  child: ChildProcess;
  args: string[];
}

/** Starts a stompbus of `build` (heart-beats off, admin port on) with `extra` flags. */
async function startInstance(build: Baseline, extra: string[]): Promise<Instance> {
  const started = await startStompbus(build.build, ['--heartbeat', '0,0', ...extra], {
    nodeFlags: [],
    readyTimeoutMs: 60_000,
    logDir: process.env.BENCH_LOG_DIR,
  });
  if (!started.admin) throw new Error('stompbus started without its admin port');
  return { ...started, admin: started.admin, args: extra };
}

// ---- raw STOMP over WebSocket ----

const incidents: string[] = [];
let currentRun = 'start';
const BLANK = Buffer.from('\n\n');
const ACK_HEADER = Buffer.from('\nack:');
const REDELIVERED = Buffer.from('\nredelivered:true');

/** The raw value of the header found by `needle` (`\n<name>:`) in the frame, if any. */
function rawHeader(buf: Buffer, start: number, end: number, needle: Buffer): string | undefined {
  const blank = buf.indexOf(BLANK, start);
  const i = buf.indexOf(needle, start);
  if (i < 0 || i > blank || i > end) return undefined;
  const s = i + needle.length;
  return buf.toString('latin1', s, buf.indexOf(10, s));
}

function hasHeader(buf: Buffer, start: number, needle: Buffer): boolean {
  const blank = buf.indexOf(BLANK, start);
  const i = buf.indexOf(needle, start);
  return i >= 0 && i < blank;
}

/** One STOMP connection; frames written in one event-loop turn go out as one WebSocket message. */
class Conn {
  private readonly waiters = new Map<string, () => void>();
  private out: string[] = [];
  /** Called for each MESSAGE; what it returns (an ACK frame) is written back. */
  onMessage: (buf: Buffer, start: number, end: number) => string | undefined = () => undefined;
  onReceipt: () => void = () => {};
  receipts = 0;
  errors = 0;

  private constructor(
    private readonly ws: WebSocket,
    readonly url: string,
  ) {}

  static async open(url: string): Promise<Conn> {
    const ws = new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false });
    const conn = new Conn(ws, url);
    const connected = new Promise<void>((resolve, reject) => {
      conn.waiters.set('CONNECTED', resolve);
      ws.once('error', reject);
      setTimeout(() => reject(new Error(`no CONNECTED from ${url}`)), 15_000);
    });
    const scanner = new FrameScanner((buf, start, end) => {
      const kind = buf[start];
      if (kind === Kind.MESSAGE) {
        const reply = conn.onMessage(buf, start, end);
        if (reply) conn.out.push(reply);
      } else if (kind === Kind.RECEIPT) {
        const id = headerOf(buf, start, end, 'receipt-id') ?? '';
        const waiter = conn.waiters.get(id);
        if (waiter) {
          conn.waiters.delete(id);
          waiter();
        } else {
          conn.receipts++;
          conn.onReceipt();
        }
      } else if (kind === Kind.CONNECTED) conn.waiters.get('CONNECTED')?.();
      else if (kind === Kind.ERROR) {
        const text = buf.toString('utf8', start, Math.min(end, start + 400));
        if (conn.errors++ === 0) incidents.push(`${currentRun}: ERROR from ${url}: ${text}`);
        log(`ERROR frame from ${url}: ${text}`);
      }
    });
    ws.on('message', (data: Buffer) => {
      scanner.push(data);
      conn.flush();
    });
    ws.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send('CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\n\n\0');
    await connected;
    return conn;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  write(frame: string): void {
    this.out.push(frame);
  }

  flush(): void {
    if (this.out.length === 0 || !this.open) return;
    this.ws.send(this.out.join(''));
    this.out = [];
  }

  private request(frame: string, receipt: string): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.waiters.set(receipt, resolve);
      setTimeout(() => reject(new Error(`no RECEIPT ${receipt} from ${this.url}`)), 15_000);
    });
    this.write(frame);
    this.flush();
    return done;
  }

  subscribe(destination: string, id: string, prefetch: number): Promise<void> {
    return this.request(
      `SUBSCRIBE\nid:${id}\ndestination:${destination}\nack:client-individual\n` +
        `prefetch-count:${prefetch}\nreceipt:sub-${id}\n\n\0`,
      `sub-${id}`,
    );
  }

  close(): void {
    this.ws.terminate();
  }
}

const BODY_PAD = 'x'.repeat(BODY_SIZE);

/** A SEND with a receipt and a body stamped `<run> <seq> <sent-ms> ` (stomp-wire.ts). */
function sendFrame(destination: string, run: string, seq: number): string {
  const stamp = `${run} ${seq} ${now().toFixed(3)} `;
  const body = stamp + BODY_PAD.slice(stamp.length);
  return `SEND\ndestination:${destination}\ncontent-type:text/plain\nreceipt:${seq}\n\n${body}\0`;
}

// ---- one run: what was sent and what came back ----

class Run {
  readonly id = randomBytes(4).toString('hex');
  readonly idBuf = Buffer.from(this.id);
  private readonly seen: Uint8Array;
  sent = 0;
  delivered = 0;
  duplicates = 0;
  /** MESSAGEs of another run or with no stamp (leftovers). */
  strays = 0;
  redelivered = 0;
  latencies: number[] = [];
  /** Deliveries counted for the throughput (inside the measured window). */
  counted = 0;
  counting = false;
  /** Sequence numbers from here on count for the latency. */
  measureFrom = 0;
  private readonly stamp: Stamp = { ours: false, seq: 0, sentMs: 0 };

  constructor(capacity: number) {
    this.seen = new Uint8Array(capacity);
  }

  /** Records one MESSAGE; returns its ACK frame. */
  take(buf: Buffer, start: number, end: number): string | undefined {
    const t = now();
    readStamp(buf, start, end, this.idBuf, this.stamp);
    const ack = rawHeader(buf, start, end, ACK_HEADER);
    if (!this.stamp.ours || this.stamp.seq >= this.seen.length) this.strays++;
    else {
      const seq = this.stamp.seq;
      if (this.seen[seq]) this.duplicates++;
      else {
        this.seen[seq] = 1;
        this.delivered++;
        if (this.counting) this.counted++;
        if (seq >= this.measureFrom) this.latencies.push(t - this.stamp.sentMs);
      }
      if (hasHeader(buf, start, REDELIVERED)) this.redelivered++;
    }
    return ack === undefined ? undefined : `ACK\nid:${ack}\n\n\0`;
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? NaN;
}

// ---- CPU and load ----

function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');

interface Usage {
  /** Cores of the side's stompbus processes, of Kafka and of this harness. */
  brokers: number;
  kafka: number;
  harness: number;
  machineBusy: number;
  load: string;
}

async function measureUsage(pids: number[], fn: () => Promise<void>): Promise<Usage> {
  const sum = (list: number[]) => list.reduce((a, p) => a + cpuSeconds(p), 0);
  const b0 = sum(pids);
  const k0 = kafka ? cpuSeconds(kafka.pid) : NaN;
  const h0 = cpuSeconds(process.pid);
  const m0 = machineJiffies();
  const t0 = performance.now();
  await fn();
  const s = (performance.now() - t0) / 1000;
  const m1 = machineJiffies();
  return {
    brokers: (sum(pids) - b0) / s,
    kafka: ((kafka ? cpuSeconds(kafka.pid) : NaN) - k0) / s,
    harness: (cpuSeconds(process.pid) - h0) / s,
    machineBusy: (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total),
    load: loadAverage(),
  };
}

// ---- part 1: throughput and latency ----

interface Side {
  name: string;
  queue: string;
  pids: number[];
  producers: Conn[];
  consumers: Conn[];
  results: RunResult[];
}

interface RunResult {
  round: number;
  /** `max`, or `paced <rate>/s`. */
  kind: string;
  sent: number;
  delivered: number;
  duplicates: number;
  strays: number;
  lost: number;
  missingReceipts: number;
  redelivered: number;
  perSecond: number;
  p50: number;
  p99: number;
  usage: Usage;
  drainMs: number;
}

async function openSide(name: string, urls: { producers: string[]; consumers: string[] }) {
  const queue = `/queue/bench-${randomBytes(3).toString('hex')}`;
  const consumers = await Promise.all(urls.consumers.map((u) => Conn.open(u)));
  for (const [i, c] of consumers.entries()) await c.subscribe(queue, `c${i}`, PREFETCH);
  const producers = await Promise.all(urls.producers.map((u) => Conn.open(u)));
  return { name, queue, consumers, producers };
}

/** Waits until every message sent was delivered and every SEND receipted, or DRAIN_MS. */
async function drainRun(side: Side, run: Run, receipts0: number[]): Promise<number> {
  const t0 = Date.now();
  const receipted = () =>
    side.producers.reduce((a, p, i) => a + p.receipts - (receipts0[i] ?? 0), 0);
  while (Date.now() - t0 < DRAIN_MS && (run.delivered < run.sent || receipted() < run.sent))
    await sleep(20);
  // Anything arriving late, twice, or from elsewhere shows up in this extra wait.
  await sleep(300);
  return Date.now() - t0;
}

function attach(side: Side, run: Run, onDelivery?: () => void): void {
  for (const c of side.consumers) {
    c.onMessage = (buf, start, end) => {
      const ack = run.take(buf, start, end);
      onDelivery?.();
      return ack;
    };
  }
}

function result(
  round: number,
  kind: string,
  run: Run,
  side: Side,
  receipts0: number[],
  usage: Usage,
  perSecond: number,
  drainMs: number,
): RunResult {
  const sorted = Float64Array.from(run.latencies).sort();
  const receipted = side.producers.reduce((a, p, i) => a + p.receipts - (receipts0[i] ?? 0), 0);
  const r: RunResult = {
    round,
    kind,
    sent: run.sent,
    delivered: run.delivered,
    duplicates: run.duplicates,
    strays: run.strays,
    lost: run.sent - run.delivered,
    missingReceipts: run.sent - receipted,
    redelivered: run.redelivered,
    perSecond,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    usage,
    drainMs,
  };
  if (r.lost || r.duplicates || r.strays || r.missingReceipts)
    incidents.push(
      `${currentRun}: sent ${r.sent}, delivered ${r.delivered}, lost ${r.lost}, duplicated ` +
        `${r.duplicates}, strays ${r.strays}, SENDs without RECEIPT ${r.missingReceipts}`,
    );
  log(
    `${currentRun}: ${Math.round(perSecond)}/s p50 ${r.p50.toFixed(1)} p99 ${r.p99.toFixed(1)} ms ` +
      `sent ${r.sent} lost ${r.lost} dup ${r.duplicates} strays ${r.strays} load ${usage.load}`,
  );
  return r;
}

/** Closed loop: as fast as the window allows, MAX_S seconds; the first second not counted. */
async function maxRun(side: Side, round: number): Promise<RunResult> {
  const run = new Run(2_000_000);
  const receipts0 = side.producers.map((p) => p.receipts);
  const sentBy = side.producers.map(() => 0);
  const outstanding = (i: number) =>
    (sentBy[i] ?? 0) - ((side.producers[i] as Conn).receipts - (receipts0[i] ?? 0));
  const end = performance.now() + MAX_S * 1000;
  let scheduled = false;
  const pump = () => {
    scheduled = false;
    if (performance.now() >= end) return;
    for (const [i, p] of side.producers.entries()) {
      while (outstanding(i) < WINDOW && run.sent - run.delivered < IN_FLIGHT) {
        p.write(sendFrame(side.queue, run.id, run.sent++));
        sentBy[i] = (sentBy[i] ?? 0) + 1;
      }
      p.flush();
    }
  };
  const later = () => {
    if (!scheduled) {
      scheduled = true;
      setImmediate(pump);
    }
  };
  attach(side, run, later);
  for (const p of side.producers) p.onReceipt = later;
  let perSecond = 0;
  const usage = await measureUsage(side.pids, async () => {
    const ticker = setInterval(later, 5); // also after a quiet spell
    pump();
    await sleep(1000);
    run.counting = true;
    const t0 = performance.now();
    await sleep(Math.max(0, end - performance.now()));
    run.counting = false;
    perSecond = run.counted / ((performance.now() - t0) / 1000);
    clearInterval(ticker);
  });
  const drainMs = await drainRun(side, run, receipts0);
  for (const p of side.producers) p.onReceipt = () => {};
  return result(round, 'max', run, side, receipts0, usage, perSecond, drainMs);
}

/** `rate` messages/s over the producers in turn, PACED_S seconds; the first second not measured. */
async function pacedRun(side: Side, round: number, rate: number): Promise<RunResult> {
  const count = rate * PACED_S;
  const run = new Run(count);
  run.measureFrom = rate;
  const receipts0 = side.producers.map((p) => p.receipts);
  attach(side, run);
  const usage = await measureUsage(side.pids, async () => {
    const start = performance.now();
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const due = Math.min(count, Math.floor(((performance.now() - start) * rate) / 1000));
        const used = new Set<Conn>();
        while (run.sent < due) {
          const p = side.producers[run.sent % side.producers.length] as Conn;
          p.write(sendFrame(side.queue, run.id, run.sent++));
          used.add(p);
        }
        for (const p of used) p.flush();
        if (run.sent >= count) {
          clearInterval(timer);
          resolve();
        }
      }, 1);
    });
  });
  const drainMs = await drainRun(side, run, receipts0);
  return result(round, `paced ${rate}/s`, run, side, receipts0, usage, rate, drainMs);
}

// ---- part 2: an instance's loss ----

async function metricsOf(instance: Instance): Promise<number[]> {
  const text = await (await fetch(`${instance.admin}/metrics`)).text();
  return [...text.matchAll(/^stompbus_queue_partitions_owned\{partition="(\d+)"\} 1$/gm)].map((m) =>
    Number(m[1]),
  );
}

/** Waits until every partition of the queues topic has one owner and every instance owns some. */
async function ownersSettled(instances: Instance[]): Promise<Map<number, number>> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const owners = new Map<number, number>();
    let twice = false;
    for (const [i, instance] of instances.entries()) {
      for (const p of await metricsOf(instance).catch(() => [])) {
        if (owners.has(p)) twice = true;
        owners.set(p, i);
      }
    }
    // A restarted instance takes its share in a rebalance: settled once every one owns some.
    const members = new Set(owners.values());
    if (!twice && owners.size === PARTITIONS && members.size === instances.length) return owners;
    if (Date.now() > deadline) throw new Error(`queue partitions not settled: ${[...owners]}`);
    await sleep(250);
  }
}

/** A fresh queue name whose partition instance `index` owns. */
function queueOwnedBy(owners: Map<number, number>, index: number, prefix: string): string {
  const base = `/queue/${prefix}-${randomBytes(3).toString('hex')}`;
  for (let n = 0; n < 10_000; n++) {
    const name = `${base}-${n}`;
    if (owners.get(partitionFor(name, PARTITIONS)) === index) return name;
  }
  throw new Error(`instance ${index} owns no partition of the queues topic`);
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

/** Logs, every 100 ms until stopped, changes in an instance's redeliveries and partitions. */
function watchOwner(instance: Instance, t0: number): { stop: () => void } {
  let last = '';
  let stopped = false;
  void (async () => {
    while (!stopped) {
      const text = await (await fetch(`${instance.admin}/metrics`)).text().catch(() => '');
      const redelivered = /^stompbus_queue_redeliveries_total (\d+)/m.exec(text)?.[1] ?? '?';
      const owned = [
        ...text.matchAll(/^stompbus_queue_partitions_owned\{partition="(\d+)"\} 1$/gm),
      ].map((m) => m[1]);
      const line = `owner redeliveries ${redelivered}, partitions ${owned.join(',')}`;
      if (line !== last) log(`${currentRun}: +${(now() - t0).toFixed(0)} ms: ${line}`);
      last = line;
      await sleep(100);
    }
  })().catch(() => {});
  return {
    stop: () => {
      stopped = true;
    },
  };
}

interface LossResult {
  case: string;
  rep: number;
  /** Kill → first and last of the messages delivered elsewhere, ms (NaN: timed out). */
  firstMs: number;
  lastMs: number;
  got: number;
  expected: number;
  redelivered: number;
  duplicates: number;
  load: string;
}

async function restart(instances: Instance[], index: number, build: Baseline): Promise<void> {
  const old = instances[index] as Instance;
  instances[index] = await startInstance(build, old.args);
}

/**
 * B (index 1) holds HELD unacknowledged messages of a queue owned by A (index 0); C (index
 * 2) has room. Times SIGKILL of B → C has them all.
 */
async function consumerLoss(
  instances: Instance[],
  build: Baseline,
  label: string,
  rep: number,
): Promise<LossResult> {
  const owners = await ownersSettled(instances);
  const queue = queueOwnedBy(owners, 0, 'loss');
  const [a, b, c] = instances as [Instance, Instance, Instance];
  currentRun = `${label}, rep ${rep}`;
  const run = new Run(HELD);
  const onB = await Conn.open(b.url);
  let heldByB = 0;
  onB.onMessage = () => {
    heldByB++;
    return undefined; // never acknowledged
  };
  await onB.subscribe(queue, 'held', HELD);
  const producer = await Conn.open(a.url);
  for (let i = 0; i < HELD; i++) producer.write(sendFrame(queue, run.id, run.sent++));
  producer.flush();
  const filled = await until(() => heldByB >= HELD, 30_000);
  if (!filled) incidents.push(`${currentRun}: B got only ${heldByB} of ${HELD} before the kill`);
  const onC = await Conn.open(c.url);
  let first = NaN;
  let t0 = NaN;
  onC.onMessage = (buf, start, end) => {
    if (Number.isNaN(first)) first = now() - t0;
    return run.take(buf, start, end);
  };
  await onC.subscribe(queue, 'room', PREFETCH);
  await sleep(300);
  const early = run.delivered;
  t0 = now();
  const load = loadAverage();
  await stopChild(b.child, 'SIGKILL');
  // Diagnostics on stderr: when the owner (A) counts the redeliveries, and its partitions.
  const watch = watchOwner(a, t0);
  const ok = await until(() => run.delivered >= heldByB && heldByB > 0, 60_000);
  watch.stop();
  const last = ok ? now() - t0 : NaN;
  await sleep(300);
  const r: LossResult = {
    case: label,
    rep,
    firstMs: first,
    lastMs: last,
    got: run.delivered - early,
    expected: heldByB,
    redelivered: run.redelivered,
    duplicates: run.duplicates,
    load,
  };
  if (early || run.duplicates || run.redelivered !== run.delivered || !ok)
    incidents.push(
      `${currentRun}: C got ${early} before the kill, ${run.delivered} in all of ${heldByB}, ` +
        `${run.redelivered} redelivered, ${run.duplicates} duplicated`,
    );
  log(`${currentRun}: first ${first.toFixed(0)} ms, all ${last.toFixed(0)} ms, load ${load}`);
  for (const conn of [onB, onC, producer]) conn.close();
  await restart(instances, 1, build);
  return r;
}

/**
 * The owner of the queue's partition (B, index 1) is SIGKILLed with consumers on A and C;
 * times kill → delivery of the SENDs written right after it.
 */
async function ownerLoss(instances: Instance[], build: Baseline, rep: number): Promise<LossResult> {
  const owners = await ownersSettled(instances);
  const queue = queueOwnedBy(owners, 1, 'owner');
  const [a, b, c] = instances as [Instance, Instance, Instance];
  currentRun = `owner loss, rep ${rep}`;
  const count = 20;
  const run = new Run(count * 2);
  const consumers = [await Conn.open(a.url), await Conn.open(c.url)];
  let first = NaN;
  let t0 = NaN;
  for (const [i, conn] of consumers.entries()) {
    conn.onMessage = (buf, start, end) => {
      const ack = run.take(buf, start, end);
      if (run.sent > count && Number.isNaN(first) && run.delivered > count) first = now() - t0;
      return ack;
    };
    await conn.subscribe(queue, `o${i}`, PREFETCH);
  }
  const producer = await Conn.open(c.url);
  // Before the kill: the queue works.
  for (let i = 0; i < count; i++) producer.write(sendFrame(queue, run.id, run.sent++));
  producer.flush();
  const before = await until(() => run.delivered >= count, 30_000);
  log(`${currentRun}: ${run.delivered} of ${count} delivered before the kill`);
  if (!before) incidents.push(`${currentRun}: only ${run.delivered} of ${count} before the kill`);
  await sleep(500);
  const load = loadAverage();
  t0 = now();
  try {
    process.kill(b.child.pid as number, 'SIGKILL');
  } catch {}
  for (let i = 0; i < count; i++) producer.write(sendFrame(queue, run.id, run.sent++));
  producer.flush();
  const exited = stopChild(b.child, 'SIGKILL');
  const ok = await until(() => run.delivered >= 2 * count, 90_000);
  log(`${currentRun}: ${run.delivered} of ${2 * count} delivered, ${producer.receipts} RECEIPTs`);
  const last = ok ? now() - t0 : NaN;
  await exited;
  await sleep(500);
  const r: LossResult = {
    case: 'owner killed (session timeout 6 s)',
    rep,
    firstMs: first,
    lastMs: last,
    got: run.delivered - count,
    expected: count,
    redelivered: run.redelivered,
    duplicates: run.duplicates,
    load,
  };
  if (run.duplicates || !ok || producer.receipts < 2 * count)
    incidents.push(
      `${currentRun}: delivered ${run.delivered} of ${2 * count}, ${run.duplicates} duplicated, ` +
        `${producer.receipts} RECEIPTs`,
    );
  log(`${currentRun}: first ${first.toFixed(0)} ms, all ${last.toFixed(0)} ms, load ${load}`);
  for (const conn of [...consumers, producer]) conn.close();
  await restart(instances, 1, build);
  return r;
}

// ---- report ----

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');

function median(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

function range(values: number[], fmt: (n: number) => string): string {
  const v = values.filter(Number.isFinite);
  return v.length ? `${fmt(Math.min(...v))}–${fmt(Math.max(...v))}` : '–';
}

function machine(): string {
  let nproc = String(cpus().length);
  try {
    nproc = execFileSync('nproc').toString().trim();
  } catch {}
  return `${nproc} CPU (\`nproc\`), ${cpus()[0]?.model.trim() ?? 'unknown'}, Node ${process.version}`;
}

function report(
  build: Baseline,
  sides: Side[],
  ownerNote: string,
  loss: LossResult[],
  loadBefore: string,
): string {
  const [cluster, single] = sides as [Side, Side];
  const lines = [
    '# Cluster queues benchmark',
    '',
    `Date: ${new Date().toISOString()} · ${machine()} · Kafka ${KAFKA_VERSION} (single node, ` +
      `KRaft, loopback) · code \`${build.label}\` · load average before: ${loadBefore}, after: ` +
      `${loadAverage()}`,
    '',
    `Command: \`npx tsx bench/queues.bench.ts\` (BENCH_ROUNDS=${ROUNDS}, BENCH_MAX_S=${MAX_S}, ` +
      `BENCH_PACED_S=${PACED_S}, BENCH_RATES=${RATES.join(',')}, BENCH_LOSS_REPS=${LOSS_REPS}, ` +
      `BENCH_PREFETCH=${PREFETCH}, BENCH_PARTS=${[...PARTS].join(',')})`,
    '',
    '## Throughput and latency',
    '',
    `4 consumers (\`ack:client-individual\`, every MESSAGE ACKed, \`prefetch-count:${PREFETCH}\`) ` +
      `on one queue, ${BODY_SIZE}-byte bodies. **cluster**: 3 instances on a Kafka topic of ` +
      `${PARTITIONS} partitions, consumers 2 + 1 + 1 over them, one producer on each ` +
      `(${ownerNote}). **single**: one embedded instance (no Kafka), the 4 consumers and 3 ` +
      'producers on it. All instances and connections stay up through every run; the clients ' +
      'are raw STOMP over WebSocket in the harness process. **max**: closed loop, each ' +
      `producer at most ${WINDOW} SENDs without RECEIPT and at most ${IN_FLIGHT} messages ` +
      `sent but not delivered in all, ${MAX_S} s, deliveries/s over the last ${MAX_S - 1} s. ` +
      `**paced**: ${RATES.join(' and ')} messages/s over the 3 producers in turn for ${PACED_S} s; latency = ` +
      'send time stamped in the body → MESSAGE read, for the messages after the first second. ' +
      'Every SEND asks for a RECEIPT. After each run the harness waits until every message ' +
      'was delivered and receipted; lost / duplicated / strays count what was not delivered, ' +
      'delivered twice, or came from another run. Rounds alternate the order of the sides ' +
      '(cluster first in odd rounds), after a warm-up of one max and one paced run per side.',
    '',
    '| round | side | run | sent | deliveries/s | p50 ms | p99 ms | lost | duplicated | strays | no RECEIPT | redelivered | drain ms | broker cores | Kafka cores | harness cores | machine busy | load average |',
    '|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const side of sides)
    for (const r of side.results)
      lines.push(
        `| ${r.round || 'warm-up'} | ${side.name} | ${r.kind} | ${r.sent} | ${Math.round(r.perSecond)} | ` +
          `${f1(r.p50)} | ${f1(r.p99)} | ${r.lost} | ${r.duplicates} | ${r.strays} | ` +
          `${r.missingReceipts} | ${r.redelivered} | ${r.drainMs} | ${f2(r.usage.brokers)} | ` +
          `${f2(r.usage.kafka)} | ${f2(r.usage.harness)} | ${(r.usage.machineBusy * 100).toFixed(0)}% | ${r.usage.load} |`,
      );
  const of = (side: Side, kind: string, k: 'perSecond' | 'p50' | 'p99') =>
    side.results.filter((r) => r.round > 0 && r.kind === kind).map((r) => r[k]);
  const ratio = (kind: string, k: 'perSecond' | 'p50' | 'p99') => {
    const a = of(cluster, kind, k);
    const b = of(single, kind, k);
    return a.map((x, i) => x / (b[i] ?? NaN));
  };
  const x = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '–');
  lines.push(
    '',
    'Summary over the measured rounds (median, range, and the per-round ratio cluster ÷ single):',
    '',
    '| figure | cluster median (range) | single median (range) | cluster ÷ single, median (range) |',
    '|---|---|---|---|',
  );
  const rows: Array<[string, string, 'perSecond' | 'p50' | 'p99', (n: number) => string]> = [
    ['max deliveries/s', 'max', 'perSecond', (n) => String(Math.round(n))],
    ...RATES.flatMap(
      (rate): Array<[string, string, 'p50' | 'p99', (n: number) => string]> => [
        [`p50 ms at ${rate}/s`, `paced ${rate}/s`, 'p50', f1],
        [`p99 ms at ${rate}/s`, `paced ${rate}/s`, 'p99', f1],
      ],
    ),
  ];
  for (const [name, kind, k, fmt] of rows)
    lines.push(
      `| ${name} | ${fmt(median(of(cluster, kind, k)))} (${range(of(cluster, kind, k), fmt)}) | ` +
        `${fmt(median(of(single, kind, k)))} (${range(of(single, kind, k), fmt)}) | ` +
        `${x(median(ratio(kind, k)))} (${range(ratio(kind, k), x)}) |`,
    );
  const cases = [...new Set(loss.map((l) => l.case))];
  lines.push(
    '',
    '## An instance lost',
    '',
    `**Consumer's instance killed**: a consumer on B holds ${HELD} messages unacknowledged ` +
      `(\`prefetch-count:${HELD}\`), a consumer on C has room (\`prefetch-count:${PREFETCH}\`), ` +
      "the queue's partition is owned by A (which also runs the producer). B is SIGKILLed; " +
      'the time runs from the kill to the first and to the last of the messages reaching C ' +
      '(all must come with `redelivered:true`). **Owner killed**: consumers on A and C, the ' +
      `producer on C, the queue's partition owned by B; B is SIGKILLed and ${20} SENDs are ` +
      'written right after; the time runs from the kill to their delivery. In both, B is ' +
      'started again after each repetition and the next waits until every partition has one ' +
      'owner again.',
    '',
    '| case | rep | kill → first ms | kill → last ms | delivered / expected | redelivered | duplicated | load average |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...loss.map(
      (l) =>
        `| ${l.case} | ${l.rep} | ${f1(l.firstMs)} | ${f1(l.lastMs)} | ${l.got} / ${l.expected} | ` +
        `${l.redelivered} | ${l.duplicates} | ${l.load} |`,
    ),
    '',
    '| case | kill → last, median (range) ms |',
    '|---|---|',
    ...cases.map((c) => {
      const v = loss.filter((l) => l.case === c).map((l) => l.lastMs);
      return `| ${c} | ${f1(median(v))} (${range(v, f1)}) |`;
    }),
    '',
  );
  if (incidents.length)
    lines.push('Incidents:', '', ...incidents.map((i) => `- ${i.replace(/\n/g, '\\n')}`), '');
  else lines.push('Incidents: none (nothing lost, duplicated or refused).', '');
  return lines.join('\n');
}

// ---- main ----

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  // BENCH_CHECKOUT: another checkout's src/ (e.g. a patched copy), compiled into its own bench/load/.
  const checkout = process.env.BENCH_CHECKOUT ?? ROOT;
  log(`compiling ${checkout}/src into bench/load/.build-queues`);
  const build = compileCheckout(checkout, '.build-queues');
  log('starting Kafka');
  kafka = await startKafka();
  const kafkaArgs = (topic: string, presence: number) => [
    '--kafka-brokers',
    (kafka as RunningKafka).brokers,
    '--kafka-topic',
    topic,
    '--kafka-partitions',
    String(PARTITIONS),
    '--presence-interval',
    String(presence),
  ];
  const topic = `stompbus-qbench-${randomBytes(4).toString('hex')}`;
  const instances: Instance[] = [];
  // One after the other: the first creates the topics.
  for (let i = 0; i < 3; i++) instances.push(await startInstance(build, kafkaArgs(topic, 2000)));
  const embedded = await startInstance(build, []);
  const [a, b, c] = instances as [Instance, Instance, Instance];
  const owners = await ownersSettled(instances);

  const clusterSide: Side = {
    ...(await openSide('cluster', {
      consumers: [a.url, a.url, b.url, c.url],
      producers: [a.url, b.url, c.url],
    })),
    pids: instances.map((i) => i.child.pid ?? 0),
    results: [],
  };
  const ownerIndex = owners.get(partitionFor(clusterSide.queue, PARTITIONS));
  const ownerNote = `the queue's partition owned by the instance with ${
    ownerIndex === 0 ? '2 consumers' : '1 consumer'
  }`;
  const singleSide: Side = {
    ...(await openSide('single', {
      consumers: Array(4).fill(embedded.url),
      producers: Array(3).fill(embedded.url),
    })),
    pids: [embedded.child.pid ?? 0],
    results: [],
  };
  const sides = [clusterSide, singleSide];
  const rounds = PARTS.has('throughput') ? ROUNDS : -1;
  for (const side of rounds < 0 ? [] : sides) {
    currentRun = `warm-up, ${side.name}, max`;
    side.results.push(await maxRun(side, 0));
    currentRun = `warm-up, ${side.name}, paced`;
    side.results.push(await pacedRun(side, 0, RATES[0] ?? 250));
  }
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 ? sides : [...sides].reverse();
    for (const side of order) {
      currentRun = `round ${round}, ${side.name}, max`;
      side.results.push(await maxRun(side, round));
    }
    for (const rate of RATES) {
      for (const side of order) {
        currentRun = `round ${round}, ${side.name}, paced ${rate}/s`;
        side.results.push(await pacedRun(side, round, rate));
      }
    }
  }
  for (const side of sides) for (const conn of [...side.producers, ...side.consumers]) conn.close();
  await stopChild(embedded.child);
  const out = isAbsolute(args.out as string)
    ? (args.out as string)
    : join(ROOT, args.out as string);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, report(build, sides, ownerNote, [], loadBefore));

  const loss: LossResult[] = [];
  for (let rep = 1; PARTS.has('consumer') && rep <= LOSS_REPS; rep++)
    loss.push(await consumerLoss(instances, build, 'consumer instance killed, presence 2000', rep));
  for (let rep = 1; PARTS.has('owner') && rep <= LOSS_REPS; rep++)
    loss.push(await ownerLoss(instances, build, rep));
  writeFileSync(out, report(build, sides, ownerNote, loss, loadBefore));
  await Promise.allSettled(instances.map((i) => stopChild(i.child)));

  if (!PARTS.has('fast')) {
    writeFileSync(out, report(build, sides, ownerNote, loss, loadBefore));
    return;
  }
  const fast = `stompbus-qbench-${randomBytes(4).toString('hex')}`;
  const fastInstances: Instance[] = [];
  for (let i = 0; i < 3; i++) fastInstances.push(await startInstance(build, kafkaArgs(fast, 500)));
  for (let rep = 1; rep <= LOSS_REPS; rep++)
    loss.push(
      await consumerLoss(fastInstances, build, 'consumer instance killed, presence 500', rep),
    );
  const md = report(build, sides, ownerNote, loss, loadBefore);
  writeFileSync(out, md);
  console.log(md);
}

const watchdog = setTimeout(() => {
  log(`watchdog: still running after ${WATCHDOG_MS / 1000} s, stopping`);
  void cleanup().finally(() => process.exit(1));
}, WATCHDOG_MS);

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await cleanup();
  clearTimeout(watchdog);
}
process.exit();
