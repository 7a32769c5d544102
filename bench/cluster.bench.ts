/**
 * Cluster benchmark (issue 4, "Benchmark"): cross-instance delivery through Kafka next to
 * the single-instance embedded broker and next to Kafka's own produce-to-consume latency
 * (the floor), all measured by the same harness in this process.
 *
 * ```sh
 * npx tsx bench/cluster.bench.ts        # ~2 min, writes bench/results/cluster.md
 * # the current code next to another checkout (e.g. an older commit), rounds alternating:
 * npx tsx bench/cluster.bench.ts --baseline /tmp/stompbus-base
 * ```
 *
 * Compiles src/ into bench/load/.build-cluster (and, with `--baseline <dir>`, that
 * checkout's src/ into `<dir>/bench/load/.build-cluster`), starts a real Kafka
 * (scripts/kafka.ts) and stompbus child processes (`node bench/load/run-cli.mjs
 * <build>/cli.js …`) on 127.0.0.1 only, and stops every process it started by PID.
 *
 * Options: `--baseline <dir>`, `--rounds <n>` (default BENCH_ROUNDS or 6), `--quick`
 * (3 rounds of 3 s measured, 6 s start warm-up), `--noise` (the floor a second time in every
 * round: how far a round's p99 moves with nothing changed, next to the goal's margin),
 * `--relay` (a run a round through two plain kafkajs relays: the path without stompbus),
 * `--out <file>`; `BENCH_RATE` (messages/s, default 5,000: the issue's goal is at that rate;
 * lower ones show what depends on the rate, higher ones are for profiles); `BENCH_MEASURE_S` (measured seconds a run, default 5);
 * `BENCH_BASELINE_NODE_FLAGS` and `BENCH_BASELINE_INSTANCE_FLAGS` (Node flags, stompbus flags
 * for the baseline's instances only).
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import kafkajs, { Kafka, logLevel, Partitioners } from 'kafkajs';
import WebSocket from 'ws';
import { KAFKA_VERSION, type RunningKafka, startKafka } from '../scripts/kafka.js';
import { fixKafkajs } from '../src/cluster/kafkajs-fixes.js';
import { floorQueue, LOG_APPEND_TIME, startFloorConsumer } from './load/floor-client.mjs';
import {
  type Instance,
  startInstance as startStompbus,
  startUntilReady,
  stopChild,
  stopChildren,
} from './load/instances.js';
import { balancedOrders, inRoundOrder } from './load/orders.js';
import { FrameScanner, headerOf, Kind } from './load/stomp-wire.js';
import { type Baseline, compileCheckout } from './load/targets.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values: args } = parseArgs({
  options: {
    baseline: { type: 'string' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    noise: { type: 'boolean', default: false },
    split: { type: 'boolean', default: false },
    relay: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results/cluster.md' },
  },
});
const QUICK = args.quick === true;
/** The space-separated words of environment variable `name` (none when unset). */
function envWords(name: string): string[] {
  return (process.env[name] ?? '').split(' ').filter(Boolean);
}
/** The floor an extra time a round (`--noise`): the A/A check of the usual floor run. */
const NOISE = args.noise === true;
/**
 * `--split`: the first build's cluster topic and the floor's topic stamp records with
 * Kafka's append time, and a plain kafkajs consumer in the harness reads the cluster topic
 * too, so that each measured message's latency splits at Kafka: send → append, append →
 * received. A diagnostic: the extra consumer adds to Kafka's work during the cluster runs.
 */
const SPLIT = args.split === true;
/**
 * `--relay`: one more run a round, through two relays (`bench/load/relay.mjs`: plain kafkajs
 * and just enough STOMP, nothing of stompbus) in the cluster's shape: the publisher on relay
 * 1, a subscriber on relay 2 and one on relay 1. What the cluster path costs on this machine
 * through processes that do little more than forward, next to what it costs through
 * stompbus.
 */
const RELAY = args.relay === true;
/**
 * The relays' fetch interval, ms (BENCH_RELAY_FETCH_INTERVAL): by default the instances'
 * `--kafka-fetch-interval` default, so that both load Kafka and the machine alike.
 */
const RELAY_FETCH_INTERVAL_MS = Number(process.env.BENCH_RELAY_FETCH_INTERVAL ?? 5);
/** Messages/s (BENCH_RATE; the issue's goal is at 5,000). */
const RATE = Number(process.env.BENCH_RATE ?? 5_000);
const BODY_SIZE = 256;
const WARMUP_S = 1; // paced like each run, excluded from the figures
/** Measured seconds of one run. */
const MEASURE_S = Number(process.env.BENCH_MEASURE_S ?? (QUICK ? 3 : 5));
/**
 * Measured rounds; each runs every cluster and every floor once, in an order that changes
 * from round to round (bench/load/orders.ts: each run in every place, and right after
 * every other run, equally often), so that a busy spell of the (shared) machine, or what
 * one run leaves behind for the next, hits them all alike.
 */
const ROUNDS = Number(args.rounds ?? process.env.BENCH_ROUNDS ?? (QUICK ? 3 : 6));
/**
 * Paced traffic through the cluster once Kafka and the instances are up (a fresh Kafka
 * JVM is slow for seconds), then half as long through the floor: reported apart, not
 * part of the goal.
 */
const START_WARMUP_S = Number(process.env.BENCH_START_WARMUP_S ?? (QUICK ? 6 : 10));
const DRAIN_MS = 3_000;
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 6);
const INSTANCES = 3;
/** More stompbus flags for the cluster instances (BENCH_INSTANCE_FLAGS, e.g. `--kafka-interest all`). */
const INSTANCE_FLAGS = envWords('BENCH_INSTANCE_FLAGS');
/**
 * More stompbus flags for the `--baseline` build's instances only (BENCH_BASELINE_INSTANCE_FLAGS,
 * its single instance included): with a baseline of the same commit, one run compares a
 * setting side by side (e.g. `--history-max-messages 0`). The report's label names them.
 */
const BASELINE_INSTANCE_FLAGS = envWords('BENCH_BASELINE_INSTANCE_FLAGS');
const GOAL_MS = 10;
/** Builds compared: ours, plus the `--baseline` one. */
const BUILDS = args.baseline ? 2 : 1;
/** Generous: starts, warm-ups and every run with its drain, 1.5 times over. */
const WATCHDOG_MS = Math.max(
  300_000,
  120_000 +
    1_500 *
      ((BUILDS + (RELAY ? 1 : 0)) * (START_WARMUP_S + 10) +
        ROUNDS *
          (BUILDS + 2 + (NOISE ? 1 : 0) + (RELAY ? 1 : 0)) *
          (WARMUP_S + MEASURE_S + DRAIN_MS / 1000 + 2)),
);
const DESTINATION = '/topic/bench';
/** The fan-out's default `maxBatchRecords`; the floor batches alike. */
const MAX_BATCH_RECORDS = 1_000;
const CLOCK_TICKS = 100; // USER_HZ of /proc/<pid>/stat on Linux

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Progress on stderr; with BENCH_LOG_DIR each line has its time, to match the instances' logs. */
const log = (msg: string) =>
  console.error(
    `[cluster.bench]${process.env.BENCH_LOG_DIR ? ` ${new Date().toISOString()}` : ''} ${msg}`,
  );

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

/**
 * Node flags for the `--baseline` build's instances only (BENCH_BASELINE_NODE_FLAGS): with
 * a baseline checkout of the same commit, one run compares a Node setting side by side
 * (e.g. `--single-threaded-gc`). The report's label for that build names them.
 */
const BASELINE_NODE_FLAGS = envWords('BENCH_BASELINE_NODE_FLAGS');
let baselineBuild: Baseline | undefined;

/**
 * Starts the stompbus of `build` (a compiled src/, see {@link compileCheckout}). Node flags
 * from BENCH_NODE_FLAGS, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`; with BENCH_FLAGS_FOR
 * (e.g. `cluster-2`: the first build's second cluster instance) only for that one
 * (bench/cluster-profile.ts profiles one instance this way).
 */
function startInstance(build: Baseline, extra: string[], role = 'single'): Promise<Instance> {
  const only = process.env.BENCH_FLAGS_FOR;
  const nodeFlags = [
    ...(only === undefined || only === role ? envWords('BENCH_NODE_FLAGS') : []),
    ...(build === baselineBuild ? BASELINE_NODE_FLAGS : []),
  ];
  const logDir = process.env.BENCH_LOG_DIR;
  if (logDir) mkdirSync(logDir, { recursive: true });
  const flags = build === baselineBuild ? [...extra, ...BASELINE_INSTANCE_FLAGS] : extra;
  return startStompbus(build.build, flags, { nodeFlags, ...(logDir ? { logDir } : {}) });
}

// ---- raw STOMP over WebSocket clients ----

/**
 * What went wrong during the runs, for the report: ERROR frames the clients got (a broker
 * closes the connection after one, e.g. `STOMP_ERR_CLUSTER_UNAVAILABLE` when its queue for
 * Kafka is full on an overloaded machine) and the reconnects that followed.
 */
const incidents: string[] = [];
/** The run going on, named in {@link incidents}. */
let currentRun = 'start';

class StompClient {
  private waiters = new Map<string, () => void>();
  onMessage: (buf: Buffer, start: number, end: number) => void = () => {};
  /** ERROR frames received. */
  errors = 0;

  private constructor(private readonly ws: WebSocket) {}

  /** False once the broker or the network closed the connection. */
  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

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
      } else if (kind === Kind.ERROR) {
        const text = buf.toString('utf8', start, end);
        log(`ERROR frame: ${text}`);
        if (client.errors++ === 0) {
          const message = /\nmessage:([^\n]*)/.exec(text)?.[1] ?? '?';
          const body = text.slice(text.indexOf('\n\n') + 2).replace(/\0$/, '');
          incidents.push(`${currentRun}: ERROR ${message} (${body.trim()}) from ${url}`);
        }
      }
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

/** Messages of one run: the paced warm-up, then the measured ones. */
const WARMUP = RATE * WARMUP_S;
const MEASURED = RATE * MEASURE_S;
const PER_RUN = WARMUP + MEASURED;
const PAD = 'x'.repeat(BODY_SIZE);

/**
 * What one receiver saw in one run. Sequence numbers are global (`base` + index), so a
 * late message of an earlier run on a long-lived connection is never counted here.
 */
class Recorder {
  readonly latencies: number[] = [];
  readonly seen: Uint8Array;
  duplicates = 0;
  /** With `--split`: when each message was sent and received (ms), by index. */
  readonly sentAt: Float64Array | undefined;
  readonly receivedAt: Float64Array | undefined;

  constructor(
    readonly base: number,
    readonly measureFrom: number,
    readonly count: number,
  ) {
    this.seen = new Uint8Array(count);
    if (SPLIT) {
      this.sentAt = new Float64Array(count);
      this.receivedAt = new Float64Array(count);
    }
  }

  record(seq: number, sentMs: number): void {
    const i = seq - this.base;
    if (i < this.measureFrom || i >= this.count) return;
    const t = now();
    if (this.seen[i]) {
      this.duplicates++;
      return;
    }
    this.seen[i] = 1;
    this.latencies.push(t - sentMs);
    if (this.sentAt && this.receivedAt) {
      this.sentAt[i] = sentMs;
      this.receivedAt[i] = t;
    }
  }

  /** The `x-seq` and `x-sent` headers of a MESSAGE frame. */
  recordFrame(buf: Buffer, start: number, end: number): void {
    const blank = buf.indexOf('\n\n', start);
    const head = buf.toString('latin1', start, blank < 0 || blank > end ? end : blank);
    const seq = /\nx-seq:(\d+)/.exec(head);
    const sent = /\nx-sent:([\d.]+)/.exec(head);
    if (seq?.[1] && sent?.[1]) this.record(Number(seq[1]), Number(sent[1]));
  }

  get expected(): number {
    return Math.max(0, this.count - this.measureFrom);
  }
}

/** With `--split`: Kafka's append time of each message (`seq` → ms), read from the records. */
const appendedAt = new Map<number, number>();
/** With `--split`: when the harness's own consumer of the cluster topic got each message. */
const tappedAt = new Map<number, number>();

/** One path's latencies split at Kafka's append time (`--split`), pooled over the rounds. */
class Split {
  readonly toAppend: number[] = [];
  readonly fromAppend: number[] = [];
  readonly total: number[] = [];
  /** Received messages left out: no append time (or no time from the harness's consumer). */
  missing = 0;

  constructor(
    readonly label: string,
    readonly path: string,
  ) {}

  /** Adds a measured run's messages whose append time is known; `receivedAt` overrides the recorder's. */
  add(r: Recorder, receivedAt?: (seq: number) => number | undefined): void {
    if (!r.sentAt || !r.receivedAt) return;
    for (let i = r.measureFrom; i < r.count; i++) {
      if (!r.seen[i]) continue;
      const appended = appendedAt.get(r.base + i);
      const received = receivedAt ? receivedAt(r.base + i) : r.receivedAt[i];
      if (appended === undefined || received === undefined) {
        this.missing++;
        continue;
      }
      this.toAppend.push(appended - (r.sentAt[i] ?? NaN));
      this.fromAppend.push(received - appended);
      this.total.push(received - (r.sentAt[i] ?? NaN));
    }
  }
}

const splits = {
  floor: new Split('Kafka floor (plain kafkajs)', 'produce → append → consume'),
  cross: new Split('cluster, cross-instance', 'SEND on 1 → append → MESSAGE on 2'),
  tap: new Split(
    "the harness's consumer of the cluster topic",
    'SEND on 1 → append → plain kafkajs consumer',
  ),
};

/** One scenario's measured runs, pooled. */
class Scenario {
  readonly latencies: number[] = [];
  readonly runP99: number[] = [];
  readonly runP50: number[] = [];
  sent = 0;
  duplicates = 0;
  seconds = 0;

  constructor(
    readonly label: string,
    readonly path: string,
  ) {}

  add(r: Recorder, seconds: number): void {
    this.sent += r.expected;
    this.duplicates += r.duplicates;
    this.seconds += seconds;
    for (const l of r.latencies) this.latencies.push(l);
    const sorted = Float64Array.from(r.latencies).sort();
    this.runP99.push(percentile(sorted, 0.99));
    this.runP50.push(percentile(sorted, 0.5));
    // Diagnostics on stderr: p99 of each second of arrivals, to tell a transient from a steady tail.
    const perSecond: string[] = [];
    for (let i = 0; i < r.latencies.length; i += RATE) {
      const s = Float64Array.from(r.latencies.slice(i, i + RATE)).sort();
      perSecond.push(percentile(s, 0.99).toFixed(0));
    }
    log(`${this.label}: p99 ms per second of arrivals: ${perSecond.join(' ')}`);
  }

  row(): Row {
    const sorted = Float64Array.from(this.latencies).sort();
    const delivered = sorted.length;
    return {
      scenario: this.label,
      path: this.path,
      sent: this.sent,
      delivered,
      // Measured deliveries over the measured publishing windows.
      perSecond: delivered / this.seconds,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      max: delivered ? (sorted[delivered - 1] ?? NaN) : NaN,
      lost: this.sent - delivered,
      duplicated: this.duplicates,
      runP99: this.runP99,
    };
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
  runP99: number[];
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? NaN;
}

let nextSeq = 0;

/**
 * Calls `emit(seq, sentMs)` paced at RATE per second (ticks of ~1 ms, catching up on
 * what is due), `count` messages with global sequence numbers from `base`; resolves with
 * the seconds from message `measureFrom` to the last one.
 */
async function pace(
  base: number,
  count: number,
  measureFrom: number,
  emit: (seq: number, sentMs: number) => void,
): Promise<number> {
  let i = 0;
  const start = performance.now();
  let measureStart = start;
  let measureEnd = start;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(count, Math.floor(((performance.now() - start) * RATE) / 1000));
      while (i < due) {
        if (i === measureFrom) measureStart = performance.now();
        emit(base + i, now());
        i++;
      }
      if (i >= count) {
        measureEnd = performance.now();
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, 1);
  });
  return (measureEnd - measureStart) / 1000;
}

/** Waits until every recorder has every measured message, or at most DRAIN_MS. */
async function drain(recorders: Recorder[]): Promise<void> {
  const deadline = Date.now() + DRAIN_MS;
  while (Date.now() < deadline && recorders.some((r) => r.latencies.length < r.expected))
    await sleep(50);
}

function sendFrame(seq: number, sentMs: number): string {
  return (
    `SEND\ndestination:${DESTINATION}\ncontent-type:text/plain\nx-seq:${seq}\n` +
    `x-sent:${sentMs.toFixed(3)}\ncontent-length:${BODY_SIZE}\n\n${PAD}\0`
  );
}

/** A path under test: set up once, then run any number of times. */
interface Bench {
  /** Sends `count` messages paced; `measureFrom` of them are warm-up. */
  run(count: number, measureFrom: number): Promise<void>;
  close(): Promise<void>;
  /** Where the next runs are recorded, one per receiver, instead of the usual scenarios. */
  target?: Scenario[] | undefined;
}

/**
 * A publisher on `pubUrl` and one subscriber per `subs` entry, raw STOMP over WebSocket,
 * connected and subscribed once for all runs.
 */
async function stompBench(
  pubUrl: string,
  subs: Array<{ url: string; scenario: Scenario; split?: boolean }>,
): Promise<Bench> {
  let clients: StompClient[] = [];
  let receivers: Array<{ client: StompClient; scenario: Scenario }> = [];
  let pub: StompClient | undefined;
  const connectAll = async () => {
    clients = [];
    receivers = [];
    for (const [i, s] of subs.entries()) {
      const c = await StompClient.connect(s.url);
      clients.push(c);
      await c.subscribe(DESTINATION, String(i));
      receivers.push({ client: c, scenario: s.scenario });
    }
    pub = await StompClient.connect(pubUrl);
    clients.push(pub);
  };
  await connectAll();
  const bench: Bench = {
    async run(count, measureFrom) {
      // A broker closes a connection after an ERROR frame: start this run on fresh ones.
      if (clients.some((c) => !c.open)) {
        log(`${currentRun}: a client was disconnected; reconnecting all`);
        incidents.push(`${currentRun}: started on new connections (one was closed before)`);
        for (const c of clients) c.close();
        await connectAll();
      }
      const publisher = pub as StompClient;
      const base = nextSeq;
      nextSeq += count;
      const recorders = receivers.map(({ client }) => {
        const r = new Recorder(base, measureFrom, count);
        client.onMessage = (buf, start, end) => r.recordFrame(buf, start, end);
        return r;
      });
      const seconds = await pace(base, count, measureFrom, (seq, sentMs) =>
        publisher.send(sendFrame(seq, sentMs)),
      );
      await drain(recorders);
      if (SPLIT) await sleep(300); // the harness's own consumer of the topic too
      if (measureFrom >= count) return; // warm-up only
      for (const [i, r] of recorders.entries()) {
        (bench.target?.[i] ?? receivers[i]?.scenario)?.add(r, seconds);
        if (SPLIT && bench.target === undefined && subs[i]?.split) {
          splits.cross.add(r);
          splits.tap.add(r, (seq) => tappedAt.get(seq));
        }
      }
      appendedAt.clear();
      tappedAt.clear();
    },
    async close() {
      for (const c of clients) c.close();
    },
  };
  return bench;
}

/**
 * Kafka's own produce-to-consume latency with plain kafkajs on a topic of its own with
 * as many partitions, producing like the fan-out does (see `flush` in produce-queue.ts)
 * and consuming with the fan-out's consumer settings: no offset commits, as the fan-out
 * makes none (it reads from the live end). With `commits`, kafkajs' default instead: an
 * OffsetCommit after every batch, its round trip between two fetches (the goal's floor
 * until 2026-12-05, kept as a row of its own).
 */
async function kafkaFloorBench(
  brokers: string,
  scenario: Scenario,
  commits: boolean,
): Promise<Bench> {
  const topic = `stompbus-bench-floor-${commits ? 'commits-' : ''}${randomBytes(4).toString('hex')}`;
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
  let recorder: Recorder | undefined;
  await admin.connect();
  await admin.createTopics({
    topics: [
      {
        topic,
        numPartitions: PARTITIONS,
        replicationFactor: 1,
        ...(SPLIT && !commits ? { configEntries: [LOG_APPEND_TIME] } : {}),
      },
    ],
    waitForLeaders: true,
  });
  await producer.connect();
  const consumer = await startFloorConsumer(client, {
    groupId: `${topic}-group`,
    topic,
    // Without commits a rejoin starts again from the live end, as the fan-out does: records
    // produced meanwhile would count as lost, not late (none has been in any run so far).
    autoCommit: commits,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        const seq = m.headers?.['x-seq'];
        const sent = m.headers?.['x-sent'];
        if (seq && sent) recorder?.record(Number(seq.toString()), Number(sent.toString()));
        if (SPLIT && !commits && seq) appendedAt.set(Number(seq.toString()), Number(m.timestamp));
      }
    },
  });
  await sleep(500);

  // One event-loop turn of records goes out as one sendBatch, at most MAX_BATCH_RECORDS (the
  // fan-out's maxBatchRecords default); one request in flight.
  const queue = floorQueue(producer, topic, MAX_BATCH_RECORDS, (count, e) =>
    log(`floor: ${count} records failed: ${String(e)}`),
  );
  const bench: Bench = {
    async run(count, measureFrom) {
      const base = nextSeq;
      nextSeq += count;
      const r = new Recorder(base, measureFrom, count);
      recorder = r;
      const seconds = await pace(base, count, measureFrom, (seq, sentMs) => {
        queue.offer({
          key: DESTINATION,
          value: PAD,
          headers: { 'x-seq': String(seq), 'x-sent': sentMs.toFixed(3) },
        });
      });
      await drain([r]);
      await queue.settled();
      if (measureFrom < count) (bench.target?.[0] ?? scenario).add(r, seconds);
      if (SPLIT && !commits && measureFrom < count && bench.target === undefined)
        splits.floor.add(r);
      if (SPLIT && !commits) appendedAt.clear();
    },
    async close() {
      await consumer.disconnect().catch(() => {});
      await producer.disconnect().catch(() => {});
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect().catch(() => {});
    },
  };
  return bench;
}

/**
 * `--relay`: two relays (`bench/load/relay.mjs`) on a topic of their own with as many
 * partitions, kafkajs fixed by `fixes` (the compiled src/cluster/kafkajs-fixes.js) as the
 * instances run it, and the cluster's clients on them: the publisher on relay 1, the
 * subscribers on relay 2 (`cross`) and relay 1 (`same`). Resolves with the bench and the
 * relays' pids.
 */
async function relayBench(
  brokers: string,
  fixes: string,
  cross: Scenario,
  same: Scenario,
): Promise<{ bench: Bench; pids: number[] }> {
  const topic = `stompbus-bench-relay-${randomBytes(4).toString('hex')}`;
  const admin = new Kafka({
    clientId: 'stompbus-bench-relay-admin',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  const relays = [await startRelay(brokers, topic, fixes), await startRelay(brokers, topic, fixes)];
  const [one, two] = relays.map((r) => r.url) as [string, string];
  const stomp = await stompBench(one, [
    { url: two, scenario: cross },
    { url: one, scenario: same },
  ]);
  const bench: Bench = {
    run: (count, measureFrom) => stomp.run(count, measureFrom),
    async close() {
      await stomp.close();
      for (const r of relays) await stopChild(r.child);
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect().catch(() => {});
    },
  };
  return { bench, pids: relays.map((r) => r.child.pid ?? 0) };
}

/** Starts `bench/load/relay.mjs` and resolves with its WebSocket URL once it reads the topic. */
async function startRelay(
  brokers: string,
  topic: string,
  fixes: string,
): Promise<{ url: string; child: ChildProcess }> {
  const args = [
    join(ROOT, 'bench', 'load', 'relay.mjs'),
    brokers,
    topic,
    fixes,
    String(RELAY_FETCH_INTERVAL_MS),
  ];
  const { child, ready } = await startUntilReady('relay', args, {
    ready: (out) => /"ws":"(ws:\/\/127\.0\.0\.1:\d+\/)"/.exec(out)?.[1],
    onLateExit: (code, signal) => {
      log(`relay ${child.pid} exited (${code ?? signal}) during the benchmark`);
      incidents.push(`${currentRun}: relay ${child.pid} exited (${code ?? signal})`);
    },
  });
  child.stderr?.on('data', (d: Buffer) => log(`relay ${child.pid}: ${d.toString().trim()}`));
  return { url: ready, child };
}

// Not among the names Node finds in kafkajs' CommonJS exports: read from the module object.
const { ConfigResourceTypes, ConfigSource } = kafkajs;

/**
 * `--split`: sets the cluster topic to Kafka's append time (its other topic settings kept) and
 * reads it with a plain kafkajs consumer (the fan-out's settings, no commits), noting each
 * message's append time and when this consumer got it. Returns its stop.
 */
async function tapClusterTopic(brokers: string, topic: string): Promise<() => Promise<void>> {
  const client = new Kafka({
    clientId: 'stompbus-bench-tap',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
  });
  const admin = client.admin();
  await admin.connect();
  // alterConfigs replaces every setting of the topic: the ones set on it are given back.
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
  });
  const kept = (described.resources[0]?.configEntries ?? [])
    .filter(
      (e) => e.configSource === ConfigSource.TOPIC_CONFIG && e.configName !== LOG_APPEND_TIME.name,
    )
    .map((e) => ({ name: e.configName, value: e.configValue }));
  await admin.alterConfigs({
    validateOnly: false,
    resources: [
      { type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [...kept, LOG_APPEND_TIME] },
    ],
  });
  await admin.disconnect();
  const consumer = await startFloorConsumer(client, {
    groupId: `${topic}-tap`,
    topic,
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const at = now();
      for (const m of batch.messages) {
        // The STOMP headers are packed into one record header (records.ts), or one each.
        const own = m.headers?.['x-seq']?.toString();
        const packed = own ? undefined : m.headers?.['stompbus-headers']?.toString();
        const seq = own ?? (packed ? /\nx-seq:(\d+)/.exec(packed)?.[1] : undefined);
        if (seq === undefined) continue;
        appendedAt.set(Number(seq), Number(m.timestamp));
        tappedAt.set(Number(seq), at);
      }
    },
  });
  return () => consumer.disconnect().catch(() => {});
}

// ---- machine state ----

/** CPU seconds (user + system) of a process so far, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Busy and total jiffies of the whole machine, from /proc/stat. */
function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

interface Usage {
  label: string;
  seconds: number;
  /** Cores used by each group of processes. */
  cores: Record<string, number>;
  /** Share of all cores busy, any process. */
  machineBusy: number;
  load: string;
}

/** Measures what `pids` (by group) and the whole machine used while `fn` ran. */
async function measureUsage(
  label: string,
  pids: Record<string, number[]>,
  fn: () => Promise<void>,
): Promise<Usage> {
  const cpu = () =>
    Object.fromEntries(
      Object.entries(pids).map(([k, list]) => [k, list.reduce((a, p) => a + cpuSeconds(p), 0)]),
    );
  currentRun = label;
  const before = cpu();
  const m0 = machineJiffies();
  const t0 = performance.now();
  await fn();
  const seconds = (performance.now() - t0) / 1000;
  const after = cpu();
  const m1 = machineJiffies();
  const cores: Record<string, number> = {};
  for (const k of Object.keys(pids)) cores[k] = ((after[k] ?? 0) - (before[k] ?? 0)) / seconds;
  return {
    label,
    seconds,
    cores,
    machineBusy: (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total),
    load: loadAverage(),
  };
}

function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');
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
/** A difference in ms with its sign, one decimal. */
const signed = (g: number) => `${g >= 0 ? '+' : ''}${g.toFixed(1)}`;
const cores = (n: number | undefined) =>
  n !== undefined && Number.isFinite(n) ? n.toFixed(2) : '–';

function median(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

/** One build under test: its scenarios, its instances and the cores they used per round. */
interface Side {
  build: Baseline;
  /** Key of its instances in the usage records. */
  key: string;
  cross: Scenario;
  same: Scenario;
  single: Scenario;
  coldCross: Scenario;
  coldSame: Scenario;
  /** Cores its instances used during its own measured cluster runs, per round. */
  roundCores: number[];
  /**
   * CPU µs the instances spent per message of their own run, per instance (CPU seconds of
   * the three over the run and its drain ÷ messages sent ÷ 3), per round.
   */
  roundMicros: number[];
  /** Instance 1's and 2's admin URLs and Kafka topic, for their histograms. */
  admins: Array<string | undefined>;
  topic: string;
  /** What the instances' own histograms counted during its measured cluster runs. */
  histograms: StageHistograms;
}

function goalLine(side: Side, floor: Row, label: string, withCpu = true): string {
  const cross = side.cross.row();
  const gap = cross.p99 - floor.p99;
  const ok = Number.isFinite(gap) && gap <= GOAL_MS && cross.lost === 0;
  const perRound = cross.runP99.map((c, i) => c - (floor.runP99[i] ?? NaN));
  return (
    `Goal${label}: cross-instance p99 within ${GOAL_MS} ms of the Kafka floor p99 at ` +
    `${RATE.toLocaleString('en-US')} messages/s — ${ms(cross.p99)} − ${ms(floor.p99)} = ` +
    `${ms(gap)} ms (ratio ${(cross.p99 / floor.p99).toFixed(2)}): **${ok ? 'met' : 'not met'}**. ` +
    `Per round: ${perRound.map(signed).join(' / ')} ms.` +
    (withCpu
      ? ` CPU per message per instance by round: ${side.roundMicros.map((u) => u.toFixed(0)).join(' / ')} µs.`
      : '')
  );
}

/**
 * The A/A check of `--noise`: the floor's extra run of each round against its usual one (the
 * one next to the cluster, which the goal uses), read as the goal reads the cluster. What a
 * round moves here, it moves by chance.
 */
function noiseLine(again: Row, floor: Row): string {
  const perRound = again.runP99.map((a, i) => a - (floor.runP99[i] ?? NaN));
  const beyond = perRound.filter((g) => Math.abs(g) > GOAL_MS).length;
  return (
    `Noise check: the floor's extra run of each round minus its usual run, p99 — ` +
    `${perRound.map(signed).join(' / ')} ms (largest ${Math.max(...perRound.map(Math.abs)).toFixed(1)} ms); ` +
    `${beyond} of ${perRound.length} round(s) beyond ±${GOAL_MS} ms with nothing changed. ` +
    `Pooled: ${ms(again.p99)} against ${ms(floor.p99)} ms.`
  );
}

/**
 * `--relay`: the relays' cross path against the floor, read as the goal reads the cluster,
 * and the first build's cluster against the relays, round by round.
 */
function relayLine(relay: Row, floor: Row, side: Side): string {
  const cross = side.cross.row();
  const overFloor = relay.runP99.map((r, i) => r - (floor.runP99[i] ?? NaN));
  const beyond = overFloor.filter((g) => g > GOAL_MS).length;
  const clusterOverRelay = cross.runP99.map((c, i) => c - (relay.runP99[i] ?? NaN));
  return (
    `Relays (\`--relay\`): cross-relay p99 minus the floor's — ${ms(relay.p99)} − ${ms(floor.p99)} = ` +
    `${ms(relay.p99 - floor.p99)} ms pooled; per round ${overFloor.map(signed).join(' / ')} ms ` +
    `(${beyond} of ${overFloor.length} past +${GOAL_MS}). The cluster's cross-instance p99 minus ` +
    `the relays' — ${ms(cross.p99 - relay.p99)} ms pooled; per round ` +
    `${clusterOverRelay.map(signed).join(' / ')} ms.`
  );
}

/** "new vs old": per metric the median of each side's per-round values and the per-round ratios. */
function comparison(ours: Side, base: Side, floor: Scenario): string[] {
  const metrics: Array<[string, string, number[], number[]]> = [
    ['cross-instance p99 ms', 'lower', ours.cross.runP99, base.cross.runP99],
    ['cross-instance p50 ms', 'lower', ours.cross.runP50, base.cross.runP50],
    ['same instance p99 ms', 'lower', ours.same.runP99, base.same.runP99],
    ['same instance p50 ms', 'lower', ours.same.runP50, base.same.runP50],
    ['instances CPU, cores (3 instances, own run)', 'lower', ours.roundCores, base.roundCores],
    ['instances CPU, µs per message per instance', 'lower', ours.roundMicros, base.roundMicros],
  ];
  const x = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '–');
  const v = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : '–');
  const lines = [
    `### ${ours.build.label} (new) vs ${base.build.label} (old)`,
    '',
    'Per round, new ÷ old; then the median and the range of those ratios over the rounds.',
    '',
    '| metric | better | new (median of rounds) | old (median of rounds) | new ÷ old, median | range | per round |',
    '|---|---|---:|---:|---:|---|---|',
  ];
  for (const [name, better, a, b] of metrics) {
    const ratios = a.map((n, i) => n / (b[i] ?? NaN));
    const finite = ratios.filter(Number.isFinite);
    const range = finite.length ? `${x(Math.min(...finite))}–${x(Math.max(...finite))}` : '–';
    lines.push(
      `| ${name} | ${better} | ${v(median(a))} | ${v(median(b))} | ${x(median(ratios))} | ${range} | ` +
        `${ratios.map((r) => r.toFixed(2)).join(' / ')} |`,
    );
  }
  const overFloor = (s: Side) => s.cross.runP99.map((c, i) => c - (floor.runP99[i] ?? NaN));
  const o = overFloor(ours);
  const b = overFloor(base);
  lines.push(
    `| cross-instance p99 − floor p99 ms (same round) | lower | ${signed(median(o))} | ${signed(median(b))} | ` +
      `new − old: ${signed(median(o.map((g, i) => g - (b[i] ?? NaN))))} ms | | ` +
      `${o.map((g, i) => `${signed(g)} vs ${signed(b[i] ?? NaN)}`).join(' / ')} |`,
    '',
    `Pooled over all rounds: cross-instance p99 ${ms(ours.cross.row().p99)} (new) vs ` +
      `${ms(base.cross.row().p99)} ms (old), p50 ${ms(ours.cross.row().p50)} vs ${ms(base.cross.row().p50)} ms; ` +
      `the floor ${ms(floor.row().p99)} ms.`,
    '',
  );
  return lines;
}

/** The `--split` table: each path's latency before and after Kafka's append, ms. */
function splitTable(): string[] {
  const q = (values: number[], p: number) => ms(percentile(Float64Array.from(values).sort(), p));
  return [
    "Split at Kafka's append time (`--split`; the harness's own consumer of the cluster topic ran " +
      'during every cluster run, adding to what Kafka serves):',
    '',
    '| path | messages (left out) | send → append p50 | p99 | append → received p50 | p99 | send → received p50 | p99 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...Object.values(splits).map(
      (s) =>
        `| ${s.label}: ${s.path} | ${s.toAppend.length} (${s.missing}) | ${q(s.toAppend, 0.5)} | ${q(s.toAppend, 0.99)} | ` +
        `${q(s.fromAppend, 0.5)} | ${q(s.fromAppend, 0.99)} | ${q(s.total, 0.5)} | ${q(s.total, 0.99)} |`,
    ),
    '',
  ];
}

/** The instances' histograms the report reads, by stage: [instance (0-based), metric]. */
const STAGES = [
  [0, 'stompbus_kafka_produce_wait_seconds', "instance 1: a record queued → Kafka's ack"],
  [0, 'stompbus_kafka_produce_duration_seconds', 'instance 1: one produce request (per request)'],
  [1, 'stompbus_kafka_record_delay_seconds', "instance 2: record's timestamp → handed to delivery"],
] as const;

/** One histogram as scraped: cumulative counts by upper bound (`+Inf` last). */
type Buckets = Map<number, number>;

/**
 * What the instances' own histograms (`/metrics`) counted during the measured cluster runs of
 * one build: scraped before and after each run, the differences added up per stage.
 */
class StageHistograms {
  readonly pooled = STAGES.map((): Buckets => new Map());
  readonly perRound: number[][] = STAGES.map(() => []);
  /** False when the build has no such histograms (older code): the report leaves them out. */
  found = true;
  /** Runs left out because a scrape before or after them failed. */
  skipped = 0;

  /**
   * Every stage's histogram now, from the instance it is read on; undefined when a scrape
   * failed (no admin URL, an error, no answer within 2 s).
   */
  async scrape(side: Side): Promise<Array<Buckets | undefined> | undefined> {
    const texts = await Promise.all(
      side.admins.slice(0, 2).map(async (admin) => {
        if (!admin) return undefined;
        try {
          const response = await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(2_000) });
          return response.ok ? await response.text() : undefined;
        } catch {
          return undefined;
        }
      }),
    );
    if (texts.length < 2 || texts.some((t) => t === undefined)) return undefined;
    return STAGES.map(([instance, name]) =>
      bucketsOf(
        texts[instance] ?? '',
        name,
        name.includes('record_delay') ? side.topic : undefined,
      ),
    );
  }

  /** Adds one run's differences; a run whose scrape before or after failed is left out. */
  add(
    label: string,
    before: Array<Buckets | undefined> | undefined,
    after: Array<Buckets | undefined> | undefined,
  ): void {
    if (!before || !after) {
      this.skipped++;
      log(`${label}: the instances' /metrics did not answer; this run is left out of their table`);
      return;
    }
    STAGES.forEach((_, i) => {
      const b = before[i];
      const a = after[i];
      if (!a) {
        this.found = false;
        return;
      }
      const run: Buckets = new Map();
      for (const [le, n] of a) run.set(le, n - (b?.get(le) ?? 0));
      const pooled = this.pooled[i] as Buckets;
      for (const [le, n] of run) pooled.set(le, (pooled.get(le) ?? 0) + n);
      this.perRound[i]?.push(quantileOf(run, 0.99));
    });
  }
}

/** The cumulative buckets of histogram `name` in a scrape (of `topic` when given). */
function bucketsOf(text: string, name: string, topic?: string): Buckets | undefined {
  const buckets: Buckets = new Map();
  const prefix = `${name}_bucket{${topic === undefined ? '' : `topic="${topic}",`}le="`;
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const end = line.indexOf('"', prefix.length);
    const le = line.slice(prefix.length, end);
    buckets.set(
      le === '+Inf' ? Infinity : Number(le),
      Number(line.slice(line.lastIndexOf(' ') + 1)),
    );
  }
  return buckets.size > 0 ? buckets : undefined;
}

/**
 * Quantile `q` of cumulative buckets, interpolated linearly within the bucket it falls in
 * (as Prometheus' `histogram_quantile`); the highest finite bound when it falls past them.
 * Seconds; NaN without observations.
 */
function quantileOf(buckets: Buckets, q: number): number {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const count = buckets.get(Infinity) ?? 0;
  if (count <= 0) return Number.NaN;
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (const bound of bounds) {
    const upTo = buckets.get(bound) ?? 0;
    if (upTo >= rank) {
      if (bound === Infinity) return lower;
      const inBucket = upTo - below;
      return inBucket > 0 ? lower + ((bound - lower) * (rank - below)) / inBucket : bound;
    }
    lower = bound;
    below = upTo;
  }
  return lower;
}

/** The bounds (seconds) of the bucket quantile `q` falls in: the interpolated value can be anywhere in it. */
function bucketOfQuantile(buckets: Buckets, q: number): [number, number] | undefined {
  const count = buckets.get(Infinity) ?? 0;
  if (count <= 0) return undefined;
  let lower = 0;
  for (const bound of [...buckets.keys()].sort((a, b) => a - b)) {
    if ((buckets.get(bound) ?? 0) >= q * count) return [lower, bound];
    lower = bound;
  }
  return undefined;
}

/** The stages as the instances' own histograms saw them, per build that has them. */
function stageTable(sides: Side[]): string[] {
  const withThem = sides.filter((s) => s.histograms.found && s.histograms.perRound[0]?.length);
  if (withThem.length === 0) return [];
  const msOf = (seconds: number) => (Number.isFinite(seconds) ? (seconds * 1000).toFixed(2) : '–');
  const bound = (seconds: number) =>
    seconds === Infinity ? '∞' : String(Number((seconds * 1000).toPrecision(6)));
  const left = withThem.map((s) => s.histograms.skipped).reduce((a, b) => a + b, 0);
  const skipped = left > 0 ? ` ${left} run(s) left out: a scrape before or after them failed.` : '';
  return [
    "Where the cluster's time goes, from the instances' own histograms (`/metrics`, scraped " +
      'before and after each measured cluster run, its warm-up second included). Quantiles are ' +
      "interpolated within the buckets as Prometheus' `histogram_quantile` does, so the true " +
      'value can be anywhere in the bucket shown next to the p99. The buckets end at 0.5, 1, 2.5, ' +
      "5, 10, 25, 50, 100 ms … (the request's own histogram at 1, 2.5, 5 … ms)." +
      skipped,
    '',
    "| build | stage | observations | p50 ms | p99 ms | p99's bucket, ms | p99 ms per round |",
    '|---|---|---:|---:|---:|---|---|',
    ...withThem.flatMap((side) =>
      STAGES.map(([, , what], i) => {
        const pooled = side.histograms.pooled[i] as Buckets;
        const bucket = bucketOfQuantile(pooled, 0.99);
        return (
          `| ${side.build.label} | ${what} | ${pooled.get(Infinity) ?? 0} | ` +
          `${msOf(quantileOf(pooled, 0.5))} | ${msOf(quantileOf(pooled, 0.99))} | ` +
          `${bucket ? `${bound(bucket[0])}-${bound(bucket[1])}` : '–'} | ` +
          `${(side.histograms.perRound[i] ?? []).map((p) => msOf(p)).join(' / ')} |`
        );
      }),
    ),
    '',
  ];
}

/**
 * The command that made the report, with the variables that change what it measures
 * (`BENCH_…`, `STOMPBUS_…`, the diagnostics' folders) in front, so that the report
 * says how to run it again. A variable that may hold a secret shows as `…`.
 */
function commandLine(): string {
  const settings = Object.entries(process.env)
    .filter(([name]) => /^(BENCH_|STOMPBUS_|STALLS_DIR$|HEAP_SAMPLE_)/.test(name))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) =>
      /SECRET|TOKEN|PASS|KEY|USERS|JWT/.test(name)
        ? `${name}=…`
        : `${name}=${shellWord(value ?? '')}`,
    );
  const args = process.argv.slice(2).map(shellWord);
  return [...settings, 'npx tsx bench/cluster.bench.ts', ...args].join(' ');
}

/** `word` as a POSIX shell reads it back: as it is when safe, else in single quotes. */
function shellWord(word: string): string {
  return /^[\w./:,=+@%-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

function report(
  sides: Side[],
  floorScenario: Scenario,
  floorCommits: Scenario,
  floorAgain: Scenario | undefined,
  relays: [Scenario, Scenario] | undefined,
  usage: Usage[],
  loadBefore: string,
  loadAfter: string,
): string {
  const m = machine();
  const floor = floorScenario.row();
  const two = sides.length > 1;
  const runs = two ? 'one run of every cluster' : 'one cluster run';
  const designRounds = balancedOrders(
    sides.length + (floorAgain ? 3 : 2) + (relays ? 1 : 0),
  ).length;
  const balance =
    ROUNDS % designRounds === 0
      ? `over every ${designRounds} rounds every run comes in every place, and right after every other run within a round, equally often`
      : `a design of ${designRounds} rounds in which every run comes in every place, and right after every other run within a round, equally often; ${ROUNDS} rounds are not a multiple of ${designRounds}, so the balance is only near`;
  const order =
    `Then ${ROUNDS} round(s), each ${runs}, one floor run and one run of the committing floor, ` +
    `in a balanced order (\`bench/load/orders.ts\`: ${balance})`;
  const relayNote = relays
    ? ' Each round also runs the same clients through two relays (`--relay`, ' +
      '`bench/load/relay.mjs`: plain kafkajs and just enough STOMP, nothing of stompbus) on a ' +
      'topic of their own, the publisher on relay 1, subscribers on relays 2 and 1, as a run of ' +
      'its own in that order; the relays run during every run, as the instances do.'
    : '';
  const noise = floorAgain
    ? ' Each round runs the floor an extra time, as a run of its own in that order (`--noise`): ' +
      'the A/A check of how far a round moves with nothing changed.'
    : '';
  const commitsNote =
    ' The floor consumes as the fan-out does, with no offset commits; the committing floor is ' +
    "kafkajs' default consumer (an OffsetCommit after every batch, the goal's floor until " +
    '2026-12-05), shown for comparison with earlier reports.';
  const lines = [
    '# Cluster benchmark',
    '',
    `Date: ${new Date().toISOString()} · machine: ${m.nproc} CPU (\`nproc\`), ${m.cpu} · ` +
      `Node ${m.node} · Kafka ${KAFKA_VERSION} (single node, KRaft, loopback) · ` +
      `load average before: ${loadBefore}, after: ${loadAfter}`,
    '',
    `Code: ${sides.map((s, i) => `${i === 0 ? 'new = ' : 'old = '}\`${s.build.label}\` (src/ of ${s.build.checkout}, compiled at the start)`).join('; ')}.`,
    '',
    `${RATE.toLocaleString('en-US')} messages/s, ${BODY_SIZE}-byte bodies, one destination; ` +
      `${INSTANCES} stompbus child processes${two ? ' per build, each build on a Kafka topic of its own' : ' on one Kafka topic'} of ${PARTITIONS} partitions; raw ` +
      'STOMP over WebSocket clients (`ws`) and the plain kafkajs floor client in the harness ' +
      '(kafkajs with the request-queue timer fixed as stompbus runs it) ' +
      'process; latency = send time stamped in a header → MESSAGE (or record) received. ' +
      `After Kafka and the instances start, ${START_WARMUP_S} s of paced traffic through the floor and then ` +
      `${START_WARMUP_S} s through ${two ? 'each cluster in turn' : 'the cluster'} (shown apart in the last rows) ` +
      `warm them up. ${order} (${WARMUP_S} s paced warm-up + ` +
      `${MEASURE_S} s measured each), with all instances running during every ` +
      `run (idle when not measured); the table pools the measured messages of all rounds.${commitsNote}${noise}${relayNote} The single-instance row` +
      `${two ? 's run' : ' runs'} once, before Kafka starts.`,
    '',
    '| scenario | path | sent | delivered | deliveries/s | p50 ms | p99 ms | max ms | p99 ms per round | lost | duplicated |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const rows = [
    ...sides.flatMap((s) => [s.cross.row(), s.same.row(), s.single.row()]),
    floor,
    floorCommits.row(),
    ...(floorAgain ? [floorAgain.row()] : []),
    ...(relays ? relays.map((r) => r.row()) : []),
    ...(START_WARMUP_S > 0 ? sides.flatMap((s) => [s.coldCross.row(), s.coldSame.row()]) : []),
  ];
  lines.push(
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.path} | ${r.sent} | ${r.delivered} | ${Math.round(r.perSecond)} | ` +
        `${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} | ${r.runP99.map((p) => p.toFixed(1)).join(' / ')} | ` +
        `${r.lost} | ${r.duplicated} |`,
    ),
    '',
  );
  for (const side of sides) {
    const tag = two ? ` (${side.build.label})` : '';
    lines.push(goalLine(side, floor, tag), '');
    lines.push(
      goalLine(side, floorCommits.row(), `${tag} against the committing floor`, false),
      '',
    );
  }
  if (floorAgain) lines.push(noiseLine(floorAgain.row(), floor), '');
  if (relays) lines.push(relayLine(relays[0].row(), floor, sides[0] as Side), '');
  lines.push(...stageTable(sides));
  if (SPLIT) lines.push(...splitTable());
  if (incidents.length > 0) {
    lines.push(
      'Incidents (a run after a closed connection starts on new ones; what the broker refused counts as lost):',
      '',
      ...incidents.map((i) => `- ${i}`),
      '',
    );
  }
  if (two) lines.push(...comparison(sides[0] as Side, sides[1] as Side, floorScenario));
  const instanceColumns = [
    ...sides.map((s) => (two ? `instances ${s.build.label}` : 'stompbus instances')),
    ...(relays ? ['relays'] : []),
  ];
  const columnKeys = [...sides.map((s) => s.key), ...(relays ? ['relays'] : [])];
  lines.push(
    'CPU while each run was paced (cores; `nproc` is the ceiling) and the load average at its end:',
    '',
    `| run | s | ${instanceColumns.join(' | ')} | Kafka JVM | harness | whole machine busy | load average |`,
    `|---|---:|${columnKeys.map(() => '---:|').join('')}---:|---:|---:|---|`,
    ...usage.map(
      (u) =>
        `| ${u.label} | ${u.seconds.toFixed(1)} | ${columnKeys.map((k) => cores(u.cores[k])).join(' | ')} | ` +
        `${cores(u.cores.kafka)} | ${cores(u.cores.harness)} | ${(u.machineBusy * 100).toFixed(0)}% | ${u.load} |`,
    ),
    '',
    `Command: \`${commandLine()}\``,
    '',
  );
  return lines.join('\n');
}

// ---- main ----

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  log('compiling src/ into bench/load/.build-cluster');
  // The floor's kafkajs without 2.2.4's millisecond timer loop, as stompbus runs it
  // (src/cluster/kafkajs-fixes.ts): the floor is kafkajs at its best. (Its grouping fix
  // comes too late here, kafkajs being loaded with scripts/kafka.ts; at this benchmark's
  // few records a request it makes no difference.)
  fixKafkajs();
  const builds = [compileCheckout(ROOT, '.build-cluster')];
  if (args.baseline) {
    log(`compiling the baseline ${args.baseline}`);
    baselineBuild = compileCheckout(args.baseline, '.build-cluster');
    const settings = [...BASELINE_NODE_FLAGS, ...BASELINE_INSTANCE_FLAGS];
    if (settings.length > 0) baselineBuild.label += ` with ${settings.join(' ')}`;
    builds.push(baselineBuild);
  }
  const two = builds.length > 1;
  if (!two && BASELINE_NODE_FLAGS.length + BASELINE_INSTANCE_FLAGS.length > 0) {
    log(
      'BENCH_BASELINE_NODE_FLAGS and BENCH_BASELINE_INSTANCE_FLAGS apply only with --baseline: ignored',
    );
  }
  const sides: Side[] = builds.map((build, i) => {
    const tag = two ? ` · ${build.label}` : '';
    const warm = 'as above; warm-up, not in the goal';
    return {
      build,
      key: i === 0 ? 'instances' : 'baseline',
      cross: new Scenario(`cluster, cross-instance${tag}`, 'SEND on 1 → Kafka → MESSAGE on 2'),
      same: new Scenario(`cluster, same instance${tag}`, 'SEND on 1 → Kafka → MESSAGE on 1'),
      single: new Scenario(`single instance, embedded${tag}`, 'no Kafka'),
      coldCross: new Scenario(
        `cluster, cross-instance, first ${START_WARMUP_S} s after start${tag}`,
        warm,
      ),
      coldSame: new Scenario(
        `cluster, same instance, first ${START_WARMUP_S} s after start${tag}`,
        warm,
      ),
      roundCores: [],
      roundMicros: [],
      admins: [],
      topic: '',
      histograms: new StageHistograms(),
    };
  });
  const floor = new Scenario('Kafka floor (plain kafkajs)', 'produce → consume, acks -1');
  const floorCommits = new Scenario(
    'Kafka floor, committing (kafkajs default)',
    'as above, an OffsetCommit after every batch',
  );
  const floorAgain = new Scenario(
    'Kafka floor, extra run (`--noise`)',
    'as above, once more in the same round',
  );
  const relayCross = new Scenario(
    'relay, cross-relay (`--relay`)',
    'SEND on relay 1 → Kafka → MESSAGE on relay 2',
  );
  const relaySame = new Scenario(
    'relay, same relay (`--relay`)',
    'SEND on relay 1 → Kafka → MESSAGE on relay 1',
  );
  const usage: Usage[] = [];
  const tagOf = (side: Side) => (two ? ` (${side.build.label})` : '');

  for (const side of sides) {
    log(`single instance, embedded broker${tagOf(side)}`);
    const one = await startInstance(side.build, []);
    const oneBench = await stompBench(one.url, [{ url: one.url, scenario: side.single }]);
    usage.push(
      await measureUsage(
        `single instance${tagOf(side)}`,
        { [side.key]: [one.child.pid ?? 0], harness: [process.pid] },
        () => oneBench.run(PER_RUN, WARMUP),
      ),
    );
    await oneBench.close();
    await stopChild(one.child);
  }

  log('starting Kafka');
  kafka = await startKafka();
  const pids: Record<string, number[]> = { kafka: [kafka.pid], harness: [process.pid] };
  const benches: Bench[] = [];
  let stopTap: (() => Promise<void>) | undefined;
  for (const side of sides) {
    const topic = `stompbus-bench-${side.key}-${randomBytes(4).toString('hex')}`;
    const instances: Instance[] = [];
    for (let i = 0; i < INSTANCES; i++) {
      // One after the other: the first creates the topic.
      instances.push(
        await startInstance(
          side.build,
          [
            '--kafka-brokers',
            kafka.brokers,
            '--kafka-topic',
            topic,
            '--kafka-partitions',
            String(PARTITIONS),
            ...INSTANCE_FLAGS,
          ],
          sides.indexOf(side) === 0 ? `cluster-${i + 1}` : `baseline-${i + 1}`,
        ),
      );
    }
    log(`cluster of ${INSTANCES}${tagOf(side)} on ${kafka.brokers}, topic ${topic}`);
    pids[side.key] = instances.map((i) => i.child.pid ?? 0);
    side.admins = instances.map((i) => i.admin);
    side.topic = topic;
    const [url1, url2] = instances.map((i) => i.url) as [string, string];
    const first = sides.indexOf(side) === 0;
    if (SPLIT && first) stopTap = await tapClusterTopic(kafka.brokers, topic);
    benches.push(
      await stompBench(url1, [
        { url: url2, scenario: side.cross, split: first },
        { url: url1, scenario: side.same },
      ]),
    );
  }
  const floorBench = await kafkaFloorBench(kafka.brokers, floor, false);
  const commitsBench = await kafkaFloorBench(kafka.brokers, floorCommits, true);
  let relay: Bench | undefined;
  if (RELAY) {
    const fixes = join((builds[0] as Baseline).build, 'cluster', 'kafkajs-fixes.js');
    const started = await relayBench(kafka.brokers, fixes, relayCross, relaySame);
    relay = started.bench;
    pids.relays = started.pids;
    log(`relays ${started.pids.join(', ')} on ${kafka.brokers}`);
  }
  try {
    if (START_WARMUP_S > 0) {
      const count = RATE * START_WARMUP_S;
      // The floor first, as long as a cluster's: every build's first seconds then meet a Kafka
      // that has served traffic already, not only the first build's (Kafka's own warm-up
      // made the first build's "first 10 s" look worse than the second's).
      log(`warm-up: ${START_WARMUP_S} s through the floor`);
      usage.push(await measureUsage('warm-up, floor', pids, () => floorBench.run(count, count)));
      for (const [i, side] of sides.entries()) {
        const bench = benches[i] as Bench;
        log(`warm-up: ${START_WARMUP_S} s through the cluster${tagOf(side)}`);
        // Recorded apart: the first seconds of a fresh cluster, not part of the goal.
        bench.target = [side.coldCross, side.coldSame];
        usage.push(
          await measureUsage(`warm-up, cluster${tagOf(side)}`, pids, () => bench.run(count, 0)),
        );
        bench.target = undefined;
      }
      if (relay) {
        log(`warm-up: ${START_WARMUP_S} s through the relays`);
        const r = relay;
        usage.push(await measureUsage('warm-up, relay', pids, () => r.run(count, count)));
      }
    }
    for (let round = 1; round <= ROUNDS; round++) {
      const runs: Array<[string, Bench, Side | undefined]> = [
        ...sides.map((side, i): [string, Bench, Side] => [
          `cluster${tagOf(side)}`,
          benches[i] as Bench,
          side,
        ]),
        ['floor', floorBench, undefined],
        ...(NOISE ? [['floor again', floorBench, undefined] as [string, Bench, undefined]] : []),
        ['committing floor', commitsBench, undefined],
        ...(relay ? [['relay', relay, undefined] as [string, Bench, undefined]] : []),
      ];
      for (const [name, bench, side] of inRoundOrder(runs, round)) {
        log(`round ${round}: ${name}`);
        if (name === 'floor again') floorBench.target = [floorAgain];
        const before = side && (await side.histograms.scrape(side));
        const used = await measureUsage(`round ${round}, ${name}`, pids, () =>
          bench.run(PER_RUN, WARMUP),
        );
        if (side) {
          side.histograms.add(
            `round ${round}, ${name}`,
            before,
            await side.histograms.scrape(side),
          );
        }
        floorBench.target = undefined;
        usage.push(used);
        side?.roundCores.push(used.cores[side.key] ?? NaN);
        side?.roundMicros.push(
          (((used.cores[side.key] ?? NaN) * used.seconds) / PER_RUN / INSTANCES) * 1e6,
        );
      }
    }
  } finally {
    for (const bench of benches) await bench.close();
    await floorBench.close();
    await commitsBench.close();
    await relay?.close();
    await stopTap?.();
  }
  await stopChildren();

  const md = report(
    sides,
    floor,
    floorCommits,
    NOISE ? floorAgain : undefined,
    RELAY ? [relayCross, relaySame] : undefined,
    usage,
    loadBefore,
    loadAverage(),
  );
  const file = args.out ?? 'bench/results/cluster.md';
  const out = isAbsolute(file) ? file : join(ROOT, file);
  mkdirSync(dirname(out), { recursive: true });
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
