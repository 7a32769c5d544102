/**
 * Cluster benchmark (issue 4, "Benchmark"): cross-instance delivery through Kafka next to
 * the single-instance embedded broker and next to Kafka's own produce-to-consume latency
 * (the floor), all measured by the same harness in this process.
 *
 * ```sh
 * npx tsx bench/cluster.bench.ts        # builds dist/, ~1.5 min, writes bench/results/cluster.md
 * ```
 *
 * Starts a real Kafka (scripts/kafka.ts) and stompbus child processes
 * (`node bin/stompbus.js …`) on 127.0.0.1 only, and stops every process it started by PID.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import WebSocket from 'ws';
import { KAFKA_VERSION, type RunningKafka, startKafka } from '../scripts/kafka.js';
import { FrameScanner, headerOf, Kind } from './load/stomp-wire.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const HOST = '127.0.0.1';
const RATE = 5_000; // messages/s
const BODY_SIZE = 256;
const WARMUP_S = 1; // paced like the run, excluded from the figures
const MEASURE_S = 10;
const DRAIN_MS = 3_000;
const PARTITIONS = 6;
const INSTANCES = 3;
const GOAL_MS = 10;
const WATCHDOG_MS = 170_000;
const DESTINATION = '/topic/bench';

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => console.error(`[cluster.bench] ${msg}`);

// ---- processes we started (stopped by PID) ----

const children = new Set<ChildProcess>();
let kafka: RunningKafka | undefined;

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    children.delete(child);
    return;
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const signal = (sig: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, sig);
    } catch {} // already gone
  };
  const started = Date.now();
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
  log(`stopped pid ${child.pid} in ${Date.now() - started} ms`);
  children.delete(child);
}

async function cleanup(): Promise<void> {
  await Promise.allSettled([...children].map(stopChild));
  if (kafka) {
    const k = kafka;
    kafka = undefined;
    await k.stop().catch((e: unknown) => log(`stopping Kafka: ${String(e)}`));
  }
}

process.once('exit', () => {
  for (const child of children) if (child.pid && child.exitCode === null) child.kill('SIGKILL');
});

/** Starts `node bin/stompbus.js …` and resolves with its WebSocket URL from the ready lines. */
async function startInstance(extra: string[]): Promise<{ url: string; child: ChildProcess }> {
  const args = ['bin/stompbus.js', '--host', HOST, '--port', '0', '--tcp-port', '0', ...extra];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('stompbus not ready in 30 s')), 30_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      void stopChild(child);
      reject(new Error(`${e.message}\n${out}${err}`));
    };
    const onExit = (code: number | null) => fail(new Error(`stompbus exited (${code})`));
    child.once('exit', onExit);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /(ws:\/\/127\.0\.0\.1:\d+\S*)\s+STOMP over WebSocket/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        child.off('exit', onExit);
        child.stdout?.off('data', onData);
        child.stdout?.resume(); // keep draining the pipe
        resolve({ url: m[1], child });
      }
    };
    child.stdout?.on('data', onData);
  });
}

// ---- raw STOMP over WebSocket clients ----

class StompClient {
  private waiters = new Map<string, () => void>();
  onMessage: (buf: Buffer, start: number, end: number) => void = () => {};

  private constructor(private readonly ws: WebSocket) {}

  static async connect(url: string): Promise<StompClient> {
    const ws = new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false });
    const client = new StompClient(ws);
    const connected = new Promise<void>((resolve, reject) => {
      client.waiters.set('CONNECTED', resolve);
      ws.once('error', reject);
      setTimeout(() => reject(new Error(`no CONNECTED from ${url}`)), 10_000);
    });
    const scanner = new FrameScanner((buf, start, end) => {
      const kind = buf[start];
      if (kind === Kind.MESSAGE) client.onMessage(buf, start, end);
      else if (kind === Kind.CONNECTED) client.waiters.get('CONNECTED')?.();
      else if (kind === Kind.RECEIPT) {
        const id = headerOf(buf, start, end, 'receipt-id') ?? '';
        client.waiters.get(id)?.();
      } else if (kind === Kind.ERROR) log(`ERROR frame: ${buf.toString('utf8', start, end)}`);
    });
    ws.on('message', (data: Buffer) => scanner.push(data));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send('CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\n\n\0');
    await connected;
    return client;
  }

  async subscribe(destination: string, id: string): Promise<void> {
    const receipt = `sub-${id}`;
    const done = new Promise<void>((resolve, reject) => {
      this.waiters.set(receipt, resolve);
      setTimeout(() => reject(new Error(`no receipt for ${destination}`)), 10_000);
    });
    this.ws.send(
      `SUBSCRIBE\nid:${id}\ndestination:${destination}\nack:auto\nreceipt:${receipt}\n\n\0`,
    );
    await done;
  }

  send(frame: string): void {
    this.ws.send(frame);
  }

  close(): void {
    this.ws.close();
  }
}

// ---- measurement ----

const WARMUP = RATE * WARMUP_S;
const TOTAL = WARMUP + RATE * MEASURE_S;
const PAD = 'x'.repeat(BODY_SIZE);

/** What one receiver saw: latency per measured seq, duplicates. */
class Recorder {
  readonly latencies: number[] = [];
  readonly seen = new Uint8Array(TOTAL);
  duplicates = 0;
  first = 0;
  last = 0;

  constructor(
    readonly label: string,
    readonly path: string,
  ) {}

  record(seq: number, sentMs: number): void {
    if (seq < WARMUP || seq >= TOTAL) return;
    const t = now();
    if (this.seen[seq]) {
      this.duplicates++;
      return;
    }
    this.seen[seq] = 1;
    if (this.first === 0) this.first = t;
    this.last = t;
    this.latencies.push(t - sentMs);
  }

  /** The `x-seq` and `x-sent` headers of a MESSAGE frame. */
  recordFrame(buf: Buffer, start: number, end: number): void {
    const blank = buf.indexOf('\n\n', start);
    const head = buf.toString('latin1', start, blank < 0 || blank > end ? end : blank);
    const seq = /\nx-seq:(\d+)/.exec(head);
    const sent = /\nx-sent:([\d.]+)/.exec(head);
    if (seq?.[1] && sent?.[1]) this.record(Number(seq[1]), Number(sent[1]));
  }
}

interface Row {
  scenario: string;
  path: string;
  sent: number;
  delivered: number;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
  lost: number;
  duplicated: number;
}

function summarize(r: Recorder, sent: number, publishSeconds: number): Row {
  const sorted = Float64Array.from(r.latencies).sort();
  const pct = (p: number) =>
    sorted.length
      ? (sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0)
      : NaN;
  const delivered = r.latencies.length;
  // Diagnostics on stderr: p99 of each second of arrivals, to tell a transient from a steady tail.
  const perSecond: string[] = [];
  for (let i = 0; i < delivered; i += RATE) {
    const s = Float64Array.from(r.latencies.slice(i, i + RATE)).sort();
    perSecond.push((s[Math.ceil(0.99 * s.length) - 1] ?? 0).toFixed(0));
  }
  log(`${r.label}: p99 ms per second of arrivals: ${perSecond.join(' ')}`);
  return {
    scenario: r.label,
    path: r.path,
    sent,
    delivered,
    // Measured deliveries over the measured publishing window.
    perSecond: delivered / publishSeconds,
    p50: pct(0.5),
    p99: pct(0.99),
    max: sorted.length ? (sorted[sorted.length - 1] ?? NaN) : NaN,
    lost: sent - delivered,
    duplicated: r.duplicates,
  };
}

/**
 * Calls `emit(seq, sentMs)` paced at RATE per second (ticks of ~1 ms, catching up on
 * what is due), WARMUP then the measured messages; resolves with the measured window (s).
 */
async function pace(emit: (seq: number, sentMs: number) => void): Promise<number> {
  let seq = 0;
  const start = performance.now();
  let measureStart = 0;
  let measureEnd = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(TOTAL, Math.floor(((performance.now() - start) * RATE) / 1000));
      while (seq < due) {
        if (seq === WARMUP) measureStart = performance.now();
        emit(seq, now());
        seq++;
      }
      if (seq >= TOTAL) {
        measureEnd = performance.now();
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, 1);
  });
  return (measureEnd - measureStart) / 1000;
}

function sendFrame(seq: number, sentMs: number): string {
  return (
    `SEND\ndestination:${DESTINATION}\ncontent-type:text/plain\nx-seq:${seq}\n` +
    `x-sent:${sentMs.toFixed(3)}\ncontent-length:${BODY_SIZE}\n\n${PAD}\0`
  );
}

/** Publisher on `pubUrl`, one subscriber per `subs` entry; all raw STOMP over WebSocket. */
async function runStomp(
  pubUrl: string,
  subs: Array<{ url: string; label: string; path: string }>,
): Promise<Row[]> {
  const recorders: Recorder[] = [];
  const clients: StompClient[] = [];
  try {
    for (const [i, s] of subs.entries()) {
      const c = await StompClient.connect(s.url);
      clients.push(c);
      const r = new Recorder(s.label, s.path);
      recorders.push(r);
      c.onMessage = (buf, start, end) => r.recordFrame(buf, start, end);
      await c.subscribe(DESTINATION, String(i));
    }
    const pub = await StompClient.connect(pubUrl);
    clients.push(pub);
    log(`${subs.length} subscriber(s) in place; publishing`);
    const seconds = await pace((seq, sentMs) => pub.send(sendFrame(seq, sentMs)));
    await drain(recorders);
    log(`received ${recorders.map((r) => r.latencies.length).join(', ')} of ${TOTAL - WARMUP}`);
    return recorders.map((r) => summarize(r, TOTAL - WARMUP, seconds));
  } finally {
    for (const c of clients) c.close();
  }
}

/** Waits until every recorder has every measured message, or DRAIN_MS of silence-bound time. */
async function drain(recorders: Recorder[]): Promise<void> {
  const deadline = Date.now() + DRAIN_MS;
  while (Date.now() < deadline && recorders.some((r) => r.latencies.length < TOTAL - WARMUP))
    await sleep(50);
}

/** Kafka's own produce-to-consume latency with plain kafkajs, batching like the fan-out. */
async function runKafkaFloor(brokers: string): Promise<Row> {
  const topic = `stompbus-bench-floor-${randomBytes(4).toString('hex')}`;
  const client = new Kafka({
    clientId: 'stompbus-bench-floor',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
  });
  const admin = client.admin();
  const producer = client.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  const consumer = client.consumer({
    groupId: `${topic}-group`,
    sessionTimeout: 6_000,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: 250,
    allowAutoTopicCreation: false,
  });
  const r = new Recorder('Kafka floor (plain kafkajs)', 'produce → consume, acks -1');
  try {
    await admin.connect();
    await admin.createTopics({
      topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true,
    });
    await producer.connect();
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: false });
    const joined = new Promise<void>((resolve) =>
      consumer.on(consumer.events.GROUP_JOIN, () => resolve()),
    );
    await consumer.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) {
          const seq = m.headers?.['x-seq'];
          const sent = m.headers?.['x-sent'];
          if (seq && sent) r.record(Number(seq.toString()), Number(sent.toString()));
        }
      },
    });
    await joined;
    await sleep(500);

    // One event-loop turn of records goes out as one sendBatch; one request in flight.
    type Msg = { key: string; value: string; headers: Record<string, string> };
    let queue: Msg[] = [];
    let scheduled = false;
    let flushing: Promise<void> | undefined;
    const flush = async () => {
      while (queue.length > 0) {
        const messages = queue;
        queue = [];
        await producer.sendBatch({ topicMessages: [{ topic, messages }], acks: -1 });
      }
    };
    const schedule = () => {
      if (scheduled || flushing) return;
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        flushing ??= flush().finally(() => {
          flushing = undefined;
          if (queue.length > 0) schedule();
        });
      });
    };
    const seconds = await pace((seq, sentMs) => {
      queue.push({
        key: DESTINATION,
        value: PAD,
        headers: { 'x-seq': String(seq), 'x-sent': sentMs.toFixed(3) },
      });
      schedule();
    });
    await drain([r]);
    await flushing;
    return summarize(r, TOTAL - WARMUP, seconds);
  } finally {
    await consumer.disconnect().catch(() => {});
    await producer.disconnect().catch(() => {});
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}

// ---- report ----

function machine() {
  let nproc = String(cpus().length);
  try {
    nproc = execFileSync('nproc').toString().trim();
  } catch {}
  return { nproc, cpu: cpus()[0]?.model.trim() ?? 'unknown', node: process.version };
}

const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');

function report(rows: Row[], load: string): string {
  const m = machine();
  const cross = rows.find((r) => r.scenario.startsWith('cluster, cross'));
  const floor = rows.find((r) => r.scenario.startsWith('Kafka floor'));
  const lines = [
    '# Cluster benchmark',
    '',
    `Date: ${new Date().toISOString()} · machine: ${m.nproc} CPU (\`nproc\`), ${m.cpu} · ` +
      `Node ${m.node} · Kafka ${KAFKA_VERSION} (single node, KRaft, loopback) · load before run: ${load}`,
    '',
    `${RATE.toLocaleString('en-US')} messages/s paced for ${MEASURE_S} s (after ${WARMUP_S} s warm-up), ` +
      `${BODY_SIZE}-byte bodies, one destination; ${INSTANCES} stompbus child processes on one ` +
      `Kafka topic of ${PARTITIONS} partitions; raw STOMP over WebSocket clients (\`ws\`), one ` +
      'process; latency = send time stamped in a header → MESSAGE (or record) received.',
    '',
    '| scenario | path | sent | delivered | deliveries/s | p50 ms | p99 ms | max ms | lost | duplicated |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.path} | ${r.sent} | ${r.delivered} | ${Math.round(r.perSecond)} | ` +
        `${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} | ${r.lost} | ${r.duplicated} |`,
    ),
    '',
  ];
  if (cross && floor) {
    const gap = cross.p99 - floor.p99;
    const ok = Number.isFinite(gap) && gap <= GOAL_MS && cross.lost === 0;
    lines.push(
      `Goal: cross-instance p99 within ${GOAL_MS} ms of the Kafka floor p99 at ` +
        `${RATE.toLocaleString('en-US')} messages/s — ${ms(cross.p99)} − ${ms(floor.p99)} = ` +
        `${ms(gap)} ms: **${ok ? 'met' : 'not met'}**.`,
      '',
    );
  }
  lines.push('Command: `npx tsx bench/cluster.bench.ts`', '');
  return lines.join('\n');
}

// ---- main ----

async function main(): Promise<void> {
  const load = execFileSync('uptime')
    .toString()
    .trim()
    .replace(/.*load average:\s*/, '');
  log('building dist/ (npm run build)');
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  const rows: Row[] = [];

  log('single instance, embedded broker');
  const single = await startInstance([]);
  rows.push(
    ...(await runStomp(single.url, [
      { url: single.url, label: 'single instance, embedded', path: 'no Kafka' },
    ])),
  );
  await stopChild(single.child);

  log('starting Kafka');
  kafka = await startKafka();
  const topic = `stompbus-bench-${randomBytes(4).toString('hex')}`;
  const urls: string[] = [];
  for (let i = 0; i < INSTANCES; i++) {
    // One after the other: the first creates the topic.
    const inst = await startInstance([
      '--kafka-brokers',
      kafka.brokers,
      '--kafka-topic',
      topic,
      '--kafka-partitions',
      String(PARTITIONS),
    ]);
    urls.push(inst.url);
  }
  log(`cluster of ${INSTANCES} on ${kafka.brokers}, topic ${topic}`);
  const [url1, url2] = urls as [string, string];
  rows.push(
    ...(await runStomp(url1, [
      { url: url2, label: 'cluster, cross-instance', path: 'SEND on 1 → Kafka → MESSAGE on 2' },
      { url: url1, label: 'cluster, same instance', path: 'SEND on 1 → Kafka → MESSAGE on 1' },
    ])),
  );
  await Promise.allSettled([...children].map(stopChild));

  log('Kafka floor');
  rows.push(await runKafkaFloor(kafka.brokers));

  // Order of the table: cluster rows, then the references.
  const order = ['cluster, cross', 'cluster, same', 'single', 'Kafka'];
  rows.sort(
    (a, b) =>
      order.findIndex((p) => a.scenario.startsWith(p)) -
      order.findIndex((p) => b.scenario.startsWith(p)),
  );
  const md = report(rows, load);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/cluster.md'), md);
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
