/**
 * A Kafka restart as a STOMP client sees it (docs/operations.md "Kafka outages"): two
 * stompbus instances (child processes of the `stompbus` command, dist/ of this checkout),
 * a publisher on A sending with receipts every 5 ms without waiting for them, a subscriber
 * on B; Kafka (a JVM of this benchmark's own, scripts/kafka.ts) is SIGKILLed and started
 * again on the same port and data `--down-ms` later. Reports per repetition what the
 * publisher saw (ERRORs, closes, the largest RECEIPT delay) and what the subscriber got
 * (missing, duplicated, out of order).
 *
 * ```sh
 * npm run build
 * npx tsx bench/kafka-restart.bench.ts [--reps 3] [--down-ms 4000] [--every-ms 5] [--out file.md]
 * ```
 *
 * Traffic goes to 127.0.0.1 only, is bounded (at most `--max-sends` SENDs per repetition)
 * and stops by itself; every process it starts (the JVM, the instances) it stops by its own
 * child handle.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KAFKA_VERSION, type RunningKafka, startKafka } from '../scripts/kafka.js';
import {
  publisherOutcome,
  sleep,
  startPublisher,
  startSubscriber,
  until,
} from '../spec/helpers/kafka-restart.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    'down-ms': { type: 'string', default: '4000' },
    'every-ms': { type: 'string', default: '5' },
    'max-sends': { type: 'string', default: '20000' },
    out: { type: 'string' },
  },
});
const REPS = Number(values.reps);
const DOWN_MS = Number(values['down-ms']);
const EVERY_MS = Number(values['every-ms']);
const MAX_SENDS = Number(values['max-sends']);
const DESTINATION = '/topic/bench-restart';

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Starts `stompbus` (dist/ of this checkout) and resolves with its WebSocket URL. */
async function startInstance(flags: string[]): Promise<{ url: string; child: ChildProcess }> {
  const args = [join(ROOT, 'bin', 'stompbus.js'), '--host', '127.0.0.1', '--port', '0'];
  args.push('--tcp-port', '0', ...flags);
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const log: string[] = [];
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`stompbus not ready in 60 s:\n${out}${log.join('')}`));
    }, 60_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /(ws:\/\/127\.0\.0\.1:\d+\S*)\s+STOMP over WebSocket/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve({ url: m[1], child });
      }
    });
  });
}

async function stopInstance(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

interface Rep {
  rep: number;
  sent: number;
  duringOutage: number;
  receipted: number;
  errors: number;
  closed: boolean;
  unanswered: number;
  maxDelayMs: number;
  p50OutageDelayMs: number;
  downMs: number;
  kafkaStartMs: number;
  delivered: number;
  missing: number;
  duplicates: number;
  inOrder: boolean;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function runRep(rep: number, kafkaRef: { kafka: RunningKafka }): Promise<Rep> {
  const topic = `stompbus-bench-restart-${randomBytes(4).toString('hex')}`;
  const flags = ['--kafka-brokers', kafkaRef.kafka.brokers, '--kafka-topic', topic];
  const a = await startInstance(flags);
  const b = await startInstance(flags);
  try {
    const subscriber = await startSubscriber(b.url, DESTINATION);
    const publisher = await startPublisher(a.url, DESTINATION, {
      everyMs: EVERY_MS,
      maxSends: MAX_SENDS,
    });
    const outcome = () => publisherOutcome(publisher);
    await until(() => outcome().receipted >= 300, 60_000, 'steady traffic');

    const { port, controllerPort, dataDir } = kafkaRef.kafka;
    const killedAt = Date.now();
    await kafkaRef.kafka.stop({ keepData: true, signal: 'SIGKILL' });
    await sleep(Math.max(0, killedAt + DOWN_MS - Date.now()));
    const startedAt = Date.now();
    kafkaRef.kafka = await startKafka({ port, controllerPort, dataDir });
    const restartedAt = Date.now();

    const sentIn = (from: number, to: number) =>
      publisher.ids.filter((id) => {
        const at = publisher.sentAt.get(id) ?? 0;
        return at >= from && at <= to;
      });
    const outage = sentIn(killedAt, restartedAt);
    await until(
      () => {
        const got = new Set(outcome().receiptOrder);
        return outage.every((id) => got.has(id)) || outcome().closed;
      },
      120_000,
      'RECEIPTs of what was sent during the outage',
    ).catch(() => {});
    // Traffic after the outage, then the last answers.
    await sleep(2_000);
    publisher.stop();
    await until(() => outcome().unanswered.length === 0, 60_000, 'the last answers').catch(
      () => {},
    );
    const result = outcome();
    const receiptedIds = new Set(result.receiptOrder);
    await until(
      () => subscriber.bodies().length >= receiptedIds.size,
      30_000,
      'every message at the subscriber',
    ).catch(() => {});
    await sleep(500);

    const bodies = subscriber.bodies();
    const seen = new Set(bodies);
    const delayOf = new Map<string, number>();
    publisher.ids.forEach((id) => {
      const sentAt = publisher.sentAt.get(id) as number;
      const i = publisher.client.frames.findIndex(
        (f) =>
          f.command === 'RECEIPT' && f.headers.some(([n, v]) => n === 'receipt-id' && v === id),
      );
      if (i >= 0) delayOf.set(id, (publisher.client.frameTimes[i] as number) - sentAt);
    });
    const outageDelays = outage
      .map((id) => delayOf.get(id))
      .filter((d): d is number => d !== undefined)
      .sort((x, y) => x - y);
    const ordered = bodies.filter((body) => receiptedIds.has(body));
    publisher.client.destroy();
    subscriber.client.destroy();
    return {
      rep,
      sent: result.sent,
      duringOutage: outage.length,
      receipted: result.receipted,
      errors: result.errors.length,
      closed: result.closed,
      unanswered: result.unanswered.length,
      maxDelayMs: result.maxDelayMs,
      p50OutageDelayMs: percentile(outageDelays, 50),
      downMs: restartedAt - killedAt,
      kafkaStartMs: restartedAt - startedAt,
      delivered: bodies.length,
      missing: [...receiptedIds].filter((id) => !seen.has(id)).length,
      duplicates: bodies.length - seen.size,
      inOrder: ordered.every((body, i) => body === result.receiptOrder[i]),
    };
  } finally {
    await Promise.all([stopInstance(a.child), stopInstance(b.child)]);
  }
}

function cpuModel(): string {
  return cpus()[0]?.model ?? 'unknown';
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, 'dist', 'cli.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first');
  }
  const load = () =>
    loadavg()
      .map((n) => n.toFixed(2))
      .join(', ');
  const startedAt = new Date();
  const loadBefore = load();
  const kafkaRef = { kafka: await startKafka() };
  const reps: Rep[] = [];
  try {
    for (let rep = 1; rep <= REPS; rep++) {
      const r = await runRep(rep, kafkaRef);
      console.log(JSON.stringify(r));
      reps.push(r);
    }
  } finally {
    await kafkaRef.kafka.stop();
  }
  const loadAfter = load();
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
  const rows = reps.map(
    (r) =>
      `| ${r.rep} | ${r.sent} | ${r.duringOutage} | ${r.receipted} | ${r.errors} | ${r.closed ? 'yes' : 'no'} | ${r.unanswered} | ` +
      `${r.downMs} (${r.kafkaStartMs}) | **${r.maxDelayMs}** | ${r.p50OutageDelayMs} | ` +
      `${r.delivered} | ${r.missing} | ${r.duplicates} | ${r.inOrder ? 'yes' : 'no'} |`,
  );
  const report = [
    `Run ${startedAt.toISOString()} → ${new Date().toISOString()}; stompbus ${version}, node ${process.version}, ` +
      `Kafka ${KAFKA_VERSION} (one KRaft node, SIGKILLed), ${cpus().length} × ${cpuModel()}; ` +
      `load average before ${loadBefore}, after ${loadAfter}; ` +
      `--down-ms ${DOWN_MS}, a SEND every ${EVERY_MS} ms, default flags otherwise.`,
    '',
    '| rep | SENDs | sent while Kafka was down | RECEIPTs | ERRORs | publisher closed | unanswered | Kafka down, ms (of it: its start) | largest RECEIPT delay, ms | median delay of SENDs sent while down, ms | delivered to B | missing | duplicates | in order |',
    '|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ...rows,
    '',
  ].join('\n');
  console.log(`\n${report}`);
  if (values.out) writeFileSync(values.out, report);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
