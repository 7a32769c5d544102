/**
 * The scenarios of the load benchmark, each against one target: delivery
 * runs (fan-out at max rate, paced fan-out, competing consumers on a queue)
 * and the idle-connection memory run.
 */
import { randomBytes } from 'node:crypto';
import { spawnWorkers, type WorkerProcess } from './pool.js';
import type { Published, SubscriberMode, SubscriberReport } from './protocol.js';
import { mergeHistogram, newHistogram, nowMs, percentile } from './stats.js';
import { cpuSecondsOf, rssOf, type Target } from './targets.js';

/** One line of the results table. */
export interface DeliveryResult {
  subscribers: number;
  wanted: number;
  sent: number;
  perSecond: number | undefined;
  p50: number | undefined;
  p99: number | undefined;
  lost: number;
  duplicates: number;
  rssBefore: number | undefined;
  rssPeak: number | undefined;
  /** Broker CPU time over the measured part ÷ its wall time (1 = one core busy). */
  brokerCpu: CpuUse | undefined;
  /** The same for all client processes together. */
  clientCpu: CpuUse | undefined;
  /** MESSAGE frames per WebSocket message the subscribers read: how well the broker coalesces. */
  framesPerWsMessage: number | undefined;
  notes: string[];
}

/** What a delivery run does. */
export interface DeliveryPlan {
  mode: Exclude<SubscriberMode, 'idle'>;
  destination: string;
  subscribers: number;
  /** Client processes the subscribers are spread over. */
  processes: number;
  pace: 'max' | 'paced';
  /** Max pace: most messages sent and not yet received (see worker.ts). */
  window: number;
  /** Paced: messages per second. */
  rate: number;
  durationMs: number;
  /** Before `durationMs`: sent and delivered, not counted (JIT, connection warm-up). */
  warmupMs: number;
  /** After the publisher stops, how long stragglers may take (at most) before they count as lost. */
  drainMs: number;
  bodySize: number;
}

const HANDSHAKE_MS = 10_000;

function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor((total + i) / parts));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Samples the broker's RSS every 100 ms; `stop()` returns the first sample and the peak. */
function rssSampler(pid: number) {
  const rssBefore = rssOf(pid);
  let peak = rssBefore;
  const timer = setInterval(() => {
    const rss = rssOf(pid);
    if (rss !== undefined && (peak === undefined || rss > peak)) peak = rss;
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      return { rssBefore, rssPeak: peak };
    },
  };
}

/** CPU time of processes together, in seconds; undefined if one is gone. */
function cpuOf(pids: number[]): { user: number; sys: number } | undefined {
  const total = { user: 0, sys: 0 };
  for (const pid of pids) {
    const cpu = cpuSecondsOf(pid);
    if (cpu === undefined) return undefined;
    total.user += cpu.user;
    total.sys += cpu.sys;
  }
  return total;
}

/** CPU in use, in cores (1 = one core busy), and the kernel's part of it. */
export interface CpuUse {
  cores: number;
  sys: number;
}

/** CPU use of `pids` from `fromMs` (after the warm-up) until `stop()`. */
function cpuMeter(pids: number[], fromMs: number) {
  let start: { cpu: ReturnType<typeof cpuOf>; at: number } | undefined;
  const timer = setTimeout(
    () => {
      start = { cpu: cpuOf(pids), at: nowMs() };
    },
    Math.max(0, fromMs - nowMs()),
  );
  return {
    stop(): CpuUse | undefined {
      clearTimeout(timer);
      const end = cpuOf(pids);
      if (!start?.cpu || !end) return undefined;
      const seconds = (nowMs() - start.at) / 1000;
      const sys = (end.sys - start.cpu.sys) / seconds;
      return { cores: (end.user - start.cpu.user) / seconds + sys, sys };
    },
  };
}

/** Opens the subscribers of a plan over `workers`; returns how many connected, and why not. */
async function openSubscribers(
  target: Target,
  plan: DeliveryPlan,
  count: number,
  workers: WorkerProcess[],
  run: string,
): Promise<{ ok: number; perWorker: number[]; errors: string[] }> {
  const shares = split(count, workers.length);
  const replies = await Promise.all(
    workers.map((w, i) =>
      w.ask(
        {
          op: 'open',
          endpoint: target.endpoint,
          count: shares[i] as number,
          destination: plan.destination,
          firstIndex: 0,
          mode: plan.mode,
          run,
          concurrency: 32,
          timeoutMs: HANDSHAKE_MS,
          deadlineMs: 40_000,
          giveUpAfter: 32,
        },
        'opened',
        60_000,
      ),
    ),
  );
  return {
    ok: replies.reduce((n, r) => n + r.ok, 0),
    perWorker: replies.map((r) => r.ok),
    errors: replies.flatMap((r) => r.errors),
  };
}

/** Relays subscriber progress to the publisher as its window's `ack`. */
function relayProgress(mode: DeliveryPlan['mode'], live: WorkerProcess[], pub: WorkerProcess) {
  let last = -1;
  const update = () => {
    const values = live.map((w) => w.progress);
    const value = mode === 'queue' ? values.reduce((a, b) => a + b, 0) : Math.min(...values);
    if (value !== last) {
      last = value;
      pub.send({ op: 'ack', value });
    }
  };
  for (const w of live) w.onProgress = update;
  return () => last;
}

/**
 * Waits until every live subscriber has the last message (topic) or all were
 * consumed (queue); gives up when nothing arrives for 3 s or after `maxMs`.
 */
async function drain(acked: () => number, sent: number, maxMs: number): Promise<void> {
  const until = Date.now() + maxMs;
  let last = acked();
  let movedAt = Date.now();
  while (acked() < sent && Date.now() < until && Date.now() - movedAt < 3000) {
    await sleep(10);
    if (acked() !== last) {
      last = acked();
      movedAt = Date.now();
    }
  }
}

/** Runs one delivery scenario against `target`. */
export async function runDelivery(target: Target, plan: DeliveryPlan): Promise<DeliveryResult> {
  const run = randomBytes(4).toString('hex');
  const subs = spawnWorkers(`${target.name}-sub`, plan.processes);
  const [pub] = spawnWorkers(`${target.name}-pub`, 1) as [WorkerProcess];
  const notes: string[] = [];
  let count = plan.subscribers;
  const cap = target.maxConnections;
  if (cap && count + 1 > cap.count) {
    count = Math.max(1, cap.count - 1); // one more for the publisher
    notes.push(cap.why);
  }
  try {
    const opened = await openSubscribers(target, plan, count, subs, run);
    if (opened.ok < count) {
      notes.push(`${opened.ok}/${count} subscribed (${opened.errors.join(', ')})`);
    }
    const connected = await pub.ask({ op: 'connect', endpoint: target.endpoint }, 'opened', 30_000);
    if (connected.ok !== 1) throw new Error(`publisher: ${connected.errors.join(', ')}`);
    if (opened.ok === 0) throw new Error(`no subscriber connected: ${opened.errors.join(', ')}`);
    for (const w of subs) w.progress = 0;
    const live = subs.filter((_, i) => (opened.perWorker[i] ?? 0) > 0);
    const acked = relayProgress(plan.mode, live, pub);
    const fromMs = nowMs() + 50 + plan.warmupMs;
    const toMs = fromMs + plan.durationMs;
    await Promise.all(subs.map((w) => w.ask({ op: 'start', fromMs, toMs }, 'started', 10_000)));
    const sampler = rssSampler(target.pid);
    const cpu = cpuMeter([target.pid], fromMs);
    const clientCpuMeter = cpuMeter(
      [...subs, pub].map((w) => w.pid),
      fromMs,
    );
    const published = await pub.ask(
      {
        op: 'publish',
        destination: plan.destination,
        run,
        bodySize: plan.bodySize,
        pace: plan.pace,
        window: plan.window,
        rate: plan.rate,
        durationMs: plan.durationMs,
        fromMs,
        maxCount: 5_000_000,
      },
      'published',
      plan.warmupMs + plan.durationMs + 30_000,
    );
    const brokerCpu = cpu.stop();
    const clientCpu = clientCpuMeter.stop();
    await drain(acked, published.sent, plan.drainMs);
    const reports = await Promise.all(subs.map((w) => w.ask({ op: 'report' }, 'report', 30_000)));
    const { rssBefore, rssPeak } = sampler.stop();
    const extra = { rssBefore, rssPeak, brokerCpu, clientCpu, notes };
    return summarize(plan, opened.ok, published, reports, extra);
  } finally {
    await Promise.all([...subs, pub].map((w) => w.close()));
  }
}

function summarize(
  plan: DeliveryPlan,
  subscribers: number,
  published: Published,
  reports: SubscriberReport[],
  extra: Pick<DeliveryResult, 'rssBefore' | 'rssPeak' | 'brokerCpu' | 'clientCpu' | 'notes'>,
): DeliveryResult {
  const hist = newHistogram();
  let inWindow = 0;
  let wsMessages = 0;
  let unique = 0;
  let duplicates = 0;
  let troubles = 0;
  let stale = 0;
  let negative = 0;
  const samples: string[] = [];
  for (const r of reports) {
    mergeHistogram(hist, r.hist);
    inWindow += r.inWindow;
    wsMessages += r.wsMessagesInWindow;
    unique += r.unique;
    duplicates += r.duplicates;
    troubles += r.troubles;
    stale += r.stale;
    negative += r.negative;
    samples.push(...r.troubleSamples);
  }
  let expected = published.sent * subscribers;
  if (plan.mode === 'queue') {
    ({ unique, duplicates } = mergeCounts(reports, published.sent));
    expected = published.sent;
  }
  const notes = [...extra.notes];
  if (troubles > 0)
    notes.push(`${troubles} connection(s) dropped: ${samples.slice(0, 2).join('; ')}`);
  if (stale > 0) notes.push(`${stale} leftover message(s) of earlier runs ignored`);
  if (negative > 0) notes.push(`${negative} negative latencies (clock skew)`);
  const seconds = plan.durationMs / 1000;
  return {
    subscribers,
    wanted: plan.subscribers,
    sent: published.sent,
    perSecond: inWindow > 0 ? inWindow / seconds : undefined,
    p50: percentile(hist, 50),
    p99: percentile(hist, 99),
    lost: expected - unique,
    duplicates,
    rssBefore: extra.rssBefore,
    rssPeak: extra.rssPeak,
    brokerCpu: extra.brokerCpu,
    clientCpu: extra.clientCpu,
    framesPerWsMessage: wsMessages > 0 ? inWindow / wsMessages : undefined,
    notes,
  };
}

/** Queue mode: each sequence number should have reached exactly one consumer. */
function mergeCounts(reports: SubscriberReport[], sent: number) {
  const first = 1;
  const total = new Uint32Array(sent + 1);
  for (const r of reports) {
    const counts = r.counts;
    if (!counts) continue;
    for (let i = first; i < counts.length && i <= sent; i++)
      total[i] = (total[i] as number) + (counts[i] as number);
  }
  let unique = 0;
  let duplicates = 0;
  for (let i = first; i <= sent; i++) {
    const c = total[i] as number;
    if (c > 0) unique++;
    if (c > 1) duplicates += c - 1;
  }
  return { unique, duplicates };
}

/** What the idle run measured. */
export interface IdleResult {
  wanted: number;
  opened: number;
  openSeconds: number;
  rssBefore: number | undefined;
  rssAfter: number | undefined;
  perConnection: number | undefined;
  /** The same after a forced full GC, before and after (brokers we start only). */
  perConnectionAfterGc: number | undefined;
  notes: string[];
}

/**
 * Opens `count` connections, each CONNECTed and SUBSCRIBEd to a topic of its
 * own, over `processes` client processes, then reads how much the broker's
 * RSS grew per connection.
 */
export async function runIdle(
  target: Target,
  count: number,
  processes: number,
  deadlineMs: number,
): Promise<IdleResult> {
  const workers = spawnWorkers(`${target.name}-idle`, processes);
  const notes: string[] = [];
  let wanted = count;
  const cap = target.maxConnections;
  if (cap && wanted > cap.count) {
    wanted = cap.count;
    notes.push(cap.why);
  }
  try {
    await sleep(1500); // the broker settles after start (or after the previous scenario)
    await target.collectGarbage?.();
    const rssBefore = rssOf(target.pid);
    const started = nowMs();
    const replies = await openIdle(target, wanted, workers, deadlineMs);
    const openSeconds = (nowMs() - started) / 1000;
    const opened = replies.reduce((n, r) => n + r.ok, 0);
    await sleep(3000);
    const rssAfter = rssOf(target.pid);
    await target.collectGarbage?.();
    const rssAfterGc = target.collectGarbage ? rssOf(target.pid) : undefined;
    const errors = [...new Set(replies.flatMap((r) => r.errors))];
    if (opened < wanted) notes.push(`stopped at ${opened}: ${errors.join(', ')}`);
    const per = (after: number | undefined) =>
      rssBefore !== undefined && after !== undefined && opened > 0
        ? (after - rssBefore) / opened
        : undefined;
    return {
      wanted: count,
      opened,
      openSeconds,
      rssBefore,
      rssAfter,
      perConnection: per(rssAfter),
      perConnectionAfterGc: per(rssAfterGc),
      notes,
    };
  } finally {
    await Promise.all(workers.map((w) => w.close()));
  }
}

/** Spreads `count` idle connections over the workers, each on a topic of its own. */
function openIdle(target: Target, count: number, workers: WorkerProcess[], deadlineMs: number) {
  const shares = split(count, workers.length);
  let first = 0;
  return Promise.all(
    workers.map((w, i) => {
      const firstIndex = first;
      first += shares[i] as number;
      return w.ask(
        {
          op: 'open',
          endpoint: target.endpoint,
          count: shares[i] as number,
          destination: '/topic/bench.idle.{i}',
          firstIndex,
          mode: 'idle',
          run: 'idle0000',
          concurrency: 64,
          timeoutMs: 5000,
          deadlineMs,
          giveUpAfter: 64,
        },
        'opened',
        deadlineMs + 30_000,
      );
    }),
  );
}
