/**
 * A client process of the load harness: either many subscriber connections
 * or one publisher. Driven by run.ts over IPC (see protocol.ts); exits when
 * told to close or when the harness goes away.
 */
import { type Client, type Endpoint, openClient } from './client.js';
import type { FromWorker, OpenRequest, PublishRequest, ToWorker } from './protocol.js';
import { bucketOf, newHistogram, nowMs } from './stats.js';
import { readStamp, type Stamp, sendTemplate, stampSend } from './stomp-wire.js';

/** How often subscribers tell the harness how far they got (drives the publisher's window). */
const PROGRESS_EVERY_MS = 5;
/** Publisher: stop queueing while this much is unsent, so the window measures the broker. */
const PUBLISH_BUFFER_LIMIT = 1 << 20;

function tell(message: FromWorker): void {
  process.send?.(message);
}

// ---- subscribers ----

interface Sub {
  client: Client | undefined;
  /** Highest sequence number seen (topic mode). */
  last: number;
  dead: boolean;
}

const subs: Sub[] = [];
let mode: OpenRequest['mode'] = 'topic';
let runId = Buffer.alloc(8);
let counting = false;
let fromMs = 0;
let toMs = 0;
/** Distinct messages seen, warm-up included (queue progress). */
let seen = 0;
let stats = freshStats();
let counts = new Uint8Array(1024);
let progressTimer: NodeJS.Timeout | undefined;
let lastProgress = -1;
const stamp: Stamp = { ours: false, seq: 0, sentMs: 0 };

function freshStats() {
  return {
    inWindow: 0,
    wsMessagesInWindow: 0,
    unique: 0,
    duplicates: 0,
    stale: 0,
    negative: 0,
    hist: newHistogram(),
    firstMs: 0,
    lastMs: 0,
    troubles: 0,
    troubleSamples: [] as string[],
  };
}

/** Queue mode: counts deliveries per sequence number; true the first time. */
function countSeq(seq: number): boolean {
  if (seq >= counts.length) {
    const grown = new Uint8Array(Math.max(seq + 1, counts.length * 2));
    grown.set(counts);
    counts = grown;
  }
  const before = counts[seq] as number;
  counts[seq] = Math.min(255, before + 1);
  return before === 0;
}

function onMessage(sub: Sub, buf: Buffer, start: number, end: number): void {
  if (!counting) return;
  readStamp(buf, start, end, runId, stamp);
  if (!stamp.ours) {
    stats.stale++;
    return;
  }
  const seq = stamp.seq;
  const first = mode === 'queue' ? countSeq(seq) : seq > sub.last;
  if (first) {
    seen++;
    if (seq > sub.last) sub.last = seq;
    stats.unique++;
  } else stats.duplicates++;
  const now = nowMs();
  if (now < fromMs) return; // warm-up
  if (now <= toMs) stats.inWindow++;
  const latency = now - stamp.sentMs;
  if (latency < 0) stats.negative++;
  const bucket = bucketOf(latency);
  stats.hist[bucket] = (stats.hist[bucket] as number) + 1;
  if (stats.firstMs === 0) stats.firstMs = now;
  stats.lastMs = now;
}

function onWsMessage(): void {
  if (!counting) return;
  const now = nowMs();
  if (now >= fromMs && now <= toMs) stats.wsMessagesInWindow++;
}

function onTrouble(sub: Sub, what: string): void {
  if (sub.dead) return;
  sub.dead = true;
  stats.troubles++;
  if (stats.troubleSamples.length < 3) stats.troubleSamples.push(what);
}

async function openSubscribers(req: OpenRequest): Promise<void> {
  mode = req.mode;
  runId = Buffer.from(req.run, 'latin1');
  const started = Date.now();
  const deadline = started + req.deadlineMs;
  let next = 0;
  let ok = 0;
  let failed = 0;
  let failedInRow = 0;
  const errors = new Map<string, number>();
  const lane = async () => {
    while (next < req.count && Date.now() < deadline && failedInRow < req.giveUpAfter) {
      const i = next++;
      const sub: Sub = { client: undefined, last: 0, dead: false };
      try {
        sub.client = await openClient(req.endpoint, {
          subscribe: req.destination.replace('{i}', String(req.firstIndex + i)),
          onWsMessage,
          onMessage: (buf, start, end) => onMessage(sub, buf, start, end),
          onTrouble: (what) => onTrouble(sub, what),
          timeoutMs: req.timeoutMs,
        });
        subs.push(sub);
        ok++;
        failedInRow = 0;
      } catch (error) {
        failed++;
        failedInRow++;
        const why = (error as Error).message;
        errors.set(why, (errors.get(why) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(req.concurrency, req.count) }, lane));
  const summary = [...errors].map(([why, n]) => `${n}× ${why}`);
  tell({ op: 'opened', ok, failed, errors: summary, ms: Date.now() - started });
}

/** Topic: the slowest live connection's last sequence number; queue: messages received. */
function progress(): number {
  if (mode === 'queue') return seen;
  let min = Number.POSITIVE_INFINITY;
  for (const sub of subs) if (!sub.dead && sub.last < min) min = sub.last;
  return min === Number.POSITIVE_INFINITY ? 0 : min;
}

function startCounting(from: number, to: number): void {
  stats = freshStats();
  counts = new Uint8Array(1024);
  for (const sub of subs) sub.last = 0;
  seen = 0;
  fromMs = from;
  toMs = to;
  counting = true;
  lastProgress = -1;
  progressTimer = setInterval(() => {
    const value = progress();
    if (value !== lastProgress) {
      lastProgress = value;
      tell({ op: 'progress', value });
    }
  }, PROGRESS_EVERY_MS);
  tell({ op: 'started' });
}

function report(): void {
  counting = false;
  clearInterval(progressTimer);
  tell({
    op: 'report',
    connections: subs.length,
    ...stats,
    counts: mode === 'queue' ? counts : undefined,
  });
}

// ---- publisher ----

let publisher: Client | undefined;
let acked = 0;
let kickPublisher: () => void = () => {};

async function connectPublisher(endpoint: Endpoint): Promise<void> {
  const started = Date.now();
  try {
    publisher = await openClient(endpoint, { timeoutMs: 10_000 });
    tell({ op: 'opened', ok: 1, failed: 0, errors: [], ms: Date.now() - started });
  } catch (error) {
    tell({ op: 'opened', ok: 0, failed: 1, errors: [(error as Error).message], ms: 0 });
  }
}

function publish(req: Omit<PublishRequest, 'endpoint'>): void {
  const client = publisher as Client;
  const template = sendTemplate(req.destination, req.bodySize);
  const endMs = req.fromMs + req.durationMs;
  let seq = 0;
  let done = false;
  const sendOne = () => client.send(stampSend(template, req.run, ++seq, nowMs()));
  const finish = () => {
    if (done) return;
    done = true;
    tell({ op: 'published', sent: seq, endMs: nowMs() });
  };
  setTimeout(finish, Math.max(0, endMs - nowMs()));
  if (req.pace === 'paced') pacedLoop(req, sendOne, endMs, () => done || seq >= req.maxCount);
  else if (req.pace === 'flood') floodLoop(client, sendOne, () => done || seq >= req.maxCount);
  else
    maxRateLoop(
      req,
      client,
      sendOne,
      () => done,
      () => seq,
      finish,
    );
}

/** `rate` messages a second, catching up after a late timer. */
function pacedLoop(
  req: Omit<PublishRequest, 'endpoint'>,
  sendOne: () => void,
  endMs: number,
  stopped: () => boolean,
): void {
  const interval = 1000 / req.rate;
  let due = nowMs();
  const tick = () => {
    const now = nowMs();
    while (due <= now && !stopped()) {
      sendOne();
      due += interval;
    }
    if (!stopped()) setTimeout(tick, Math.max(0, Math.min(due, endMs) - nowMs()));
  };
  tick();
}

/**
 * A flooder (flood.ts): as fast as its socket takes them, whatever anyone
 * receives. Tops its output up to the buffer limit every 20 ms: a broker that
 * stops reading it leaves it idle, as a blocked writer would be, rather than
 * waking every millisecond to look.
 */
function floodLoop(client: Client, sendOne: () => void, stopped: () => boolean): void {
  const step = () => {
    // Bounded per step: the kernel takes megabytes before `buffered` grows at all.
    for (let n = 0; n < 4096 && !stopped() && client.buffered < PUBLISH_BUFFER_LIMIT; n++) {
      sendOne();
    }
    if (!stopped()) setTimeout(step, 20);
  };
  step();
}

/**
 * Max rate, closed loop: at most `window` messages beyond what every
 * subscriber has (topic) or what the consumers together have (queue).
 */
function maxRateLoop(
  req: Omit<PublishRequest, 'endpoint'>,
  client: Client,
  sendOne: () => void,
  stopped: () => boolean,
  sent: () => number,
  finish: () => void,
): void {
  let scheduled = false;
  const step = () => {
    scheduled = false;
    if (stopped()) return;
    let burst = 0;
    while (sent() - acked < req.window && sent() < req.maxCount && burst++ < 256) {
      if (client.buffered > PUBLISH_BUFFER_LIMIT) {
        setTimeout(kickPublisher, 1);
        return;
      }
      sendOne();
    }
    if (sent() >= req.maxCount) finish();
    else if (sent() - acked < req.window) kickPublisher();
  };
  kickPublisher = () => {
    if (scheduled || stopped()) return;
    scheduled = true;
    setImmediate(step);
  };
  kickPublisher();
}

// ---- IPC ----

function close(): void {
  clearInterval(progressTimer);
  for (const sub of subs) sub.client?.close();
  publisher?.close();
  tell({ op: 'closed' });
  setTimeout(() => process.exit(0), 50);
}

process.on('message', (message: ToWorker) => {
  switch (message.op) {
    case 'open':
      void openSubscribers(message);
      break;
    case 'connect':
      void connectPublisher(message.endpoint);
      break;
    case 'start':
      startCounting(message.fromMs, message.toMs);
      break;
    case 'publish':
      acked = 0;
      publish(message);
      break;
    case 'ack':
      acked = message.value;
      kickPublisher();
      break;
    case 'report':
      report();
      break;
    case 'close':
      close();
      break;
  }
});

// The harness went away: nobody will ever ask us to close.
process.on('disconnect', () => process.exit(1));
process.on('uncaughtException', (error) => {
  tell({ op: 'crashed', error: String(error?.stack ?? error) });
  setTimeout(() => process.exit(1), 50);
});
