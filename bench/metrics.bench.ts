/**
 * What the metrics' counters cost on the hot path: topic fan-out inside one
 * process, this checkout's broker against another checkout's (`--baseline`,
 * e.g. the commit before the counters), side by side in one process. Their
 * sessions sit on in-memory connections (no sockets, no client processes),
 * so a delivery costs less than over a network and the counters' share of it
 * shows larger: an upper bound. Batches of SENDs go to the two brokers in
 * turn (A B, then B A) and are timed from the SENDs to the flush of their
 * deliveries; a round gives the median of the per-pair ratios, which a
 * descheduled batch or a GC on a shared machine does not move.
 *
 * ```sh
 * git worktree add /tmp/stompbus-base <commit> && ln -s "$PWD/node_modules" /tmp/stompbus-base/
 * npx tsx bench/metrics.bench.ts --baseline /tmp/stompbus-base [--rounds 6] [--scrape]
 * ```
 *
 * `--scrape` also scrapes this checkout's broker's metrics once per pair
 * (far more often than Prometheus would), outside the timed part.
 * `--calibrate` runs the baseline on both sides: the method's own bias and
 * noise, to read the real comparison against. `--subscribers 100,1000` by default.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { createBroker, StompBroker } from '../src/stomp-broker.js';
import type { Connection } from '../src/transport/connection.js';
import { median } from './harness.js';
import { type Counting, countingConnection, turn } from './inproc.js';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const { values } = parseArgs({
  options: {
    baseline: { type: 'string' },
    rounds: { type: 'string', default: '6' },
    pairs: { type: 'string', default: '100' },
    scrape: { type: 'boolean', default: false },
    calibrate: { type: 'boolean', default: false },
    subscribers: { type: 'string', default: '100,1000' },
  },
});
if (!values.baseline) throw new Error('--baseline <checkout> is required');

interface Lib {
  label: string;
  createBroker: typeof createBroker;
  Connection: typeof Connection;
}

async function loadLib(root: string): Promise<Lib> {
  const load = (file: string) => import(pathToFileURL(join(root, 'src', file)).href);
  const [broker, connection] = await Promise.all([
    load('stomp-broker.ts'),
    load('transport/connection.ts'),
  ]);
  const commit = execFileSync('git', ['-C', root, 'log', '-1', '--format=%h'], {
    encoding: 'utf8',
  });
  return {
    label: commit.trim(),
    createBroker: broker.createBroker,
    Connection: connection.Connection,
  };
}

const CONNECT = 'CONNECT\naccept-version:1.2\nhost:localhost\n\n\0';
const DESTINATION = '/topic/bench.fanout';

interface Side {
  broker: StompBroker;
  subs: Counting[];
  pub: Counting;
}

async function setUp(lib: Lib, subscribers: number): Promise<Side> {
  const broker = lib.createBroker();
  const subs: Counting[] = [];
  for (let i = 0; i < subscribers; i++) {
    const c = countingConnection(lib.Connection);
    broker.accept(c);
    c.receive(`${CONNECT}SUBSCRIBE\nid:s\ndestination:${DESTINATION}\n\n\0`);
    subs.push(c);
  }
  const pub = countingConnection(lib.Connection);
  broker.accept(pub);
  pub.receive(CONNECT);
  await turn();
  return { broker, subs, pub };
}

/** One round of `pairs` pairs; returns each side's median batch rate and the median new ÷ old ratio. */
async function round(sides: [Side, Side], batch: string, perBatch: number, pairs: number) {
  const times: [number[], number[]] = [[], []];
  const ratios: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const pair: number[] = [];
    for (const k of i % 2 ? [1, 0] : [0, 1]) {
      const { subs, pub } = sides[k] as Side;
      const before = subs[0]?.bytes ?? 0;
      const start = performance.now();
      pub.receive(batch);
      await turn();
      pair[k] = performance.now() - start;
      if ((subs[0]?.bytes ?? 0) - before < perBatch * 256) {
        throw new Error('a subscriber did not get every message');
      }
    }
    times[0].push(pair[0] as number);
    times[1].push(pair[1] as number);
    // Time old ÷ time new: the new build's speed relative to the old one (1 = as fast).
    ratios.push((pair[1] as number) / (pair[0] as number));
    if (values.scrape && !values.calibrate) await sides[0].broker.metrics.metrics();
  }
  const rate = (ms: number) => (perBatch * sides[0].subs.length) / (ms / 1000);
  return { fresh: rate(median(times[0])), old: rate(median(times[1])), ratio: median(ratios) };
}

const fmt = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(0)} k`);

async function main(): Promise<void> {
  const old = await loadLib(resolve(values.baseline as string));
  const fresh = values.calibrate ? old : await loadLib(REPO);
  const rounds = Number(values.rounds);
  const pairs = Number(values.pairs);
  console.log(
    `| subscribers | round | ${fresh.label} deliveries/s | ${old.label} deliveries/s | new ÷ old (median of ${pairs} pairs) |`,
  );
  console.log('|---|---|---|---|---|');
  const summary: string[] = [];
  for (const subscribers of (values.subscribers as string).split(',').map(Number)) {
    const sides: [Side, Side] = [await setUp(fresh, subscribers), await setUp(old, subscribers)];
    const perBatch = Math.max(1, Math.round(10_000 / subscribers));
    const batch = `SEND\ndestination:${DESTINATION}\n\n${'x'.repeat(256)}\0`.repeat(perBatch);
    await round(sides, batch, perBatch, 20); // warm-up
    const ratios: number[] = [];
    for (let r = 1; r <= rounds; r++) {
      collectGarbage();
      const got = await round(sides, batch, perBatch, pairs);
      ratios.push(got.ratio);
      console.log(
        `| ${subscribers} | ${r} | ${fmt(got.fresh)} | ${fmt(got.old)} | ${got.ratio.toFixed(3)}× |`,
      );
    }
    const sorted = [...ratios].sort((a, b) => a - b);
    summary.push(
      `${subscribers} subscribers: new ÷ old ${median(ratios).toFixed(3)}× (rounds ${sorted[0]?.toFixed(3)}×–${sorted.at(-1)?.toFixed(3)}×)`,
    );
    await Promise.all(sides.map((s) => s.broker.close(100)));
  }
  console.log('');
  for (const line of summary) console.log(line);
}

await main();
