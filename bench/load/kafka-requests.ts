/**
 * Summarizes a file of Kafka's request log (`STOMPBUS_KAFKA_REQUEST_LOG`, see
 * scripts/kafka/log4j2-requests.properties): Kafka's own timing of each Produce request, by the
 * kind of topic it wrote to (the cluster's topic, the floor's, the committing floor's, the
 * registry's), as percentiles of the broker's total time and its parts.
 *
 * Run: `npx tsx bench/load/kafka-requests.ts <file>`.
 *
 * The parts, as Kafka names them: `requestQueueTimeMs` (read, waiting for a request thread),
 * `localTimeMs` (the append), `remoteTimeMs` (waiting for replicas; 0 with one broker),
 * `responseQueueTimeMs` (the answer waiting for the network thread), `sendTimeMs` (writing
 * it). `totalTimeMs` runs from the request read to its answer written: what the client waits
 * beyond that is its own writing and reading, the network and the scheduling of both sides.
 */
import { readFileSync } from 'node:fs';
import { markdownTable } from './stats.js';

const file = process.argv[2];
if (!file) throw new Error('usage: kafka-requests.ts <file>');

const PARTS = [
  'totalTimeMs',
  'requestQueueTimeMs',
  'localTimeMs',
  'remoteTimeMs',
  'responseQueueTimeMs',
  'sendTimeMs',
] as const;
type Timing = Record<(typeof PARTS)[number], number>;

interface Logged extends Timing {
  request?: { topicData?: Array<{ name?: string }> };
}

/** The kind of topic a request wrote to, from the names the benchmarks give their topics. */
function kindOf(topic: string): string {
  if (topic.includes('-floor-commits-')) return 'committing floor';
  if (topic.includes('-floor-')) return 'floor';
  if (topic.endsWith('.presence')) return 'registry (presence)';
  if (topic.endsWith('.users')) return 'users topic';
  if (topic.endsWith('.queues')) return 'queues topic';
  return "cluster's topic";
}

const byKind = new Map<string, Timing[]>();
for (const line of readFileSync(file, 'utf8').split('\n')) {
  const json = line.indexOf('{');
  if (json < 0) continue;
  let logged: Logged;
  try {
    logged = JSON.parse(line.slice(json)) as Logged;
  } catch {
    continue;
  }
  const kind = kindOf(logged.request?.topicData?.[0]?.name ?? '');
  const list = byKind.get(kind) ?? [];
  list.push(logged);
  byKind.set(kind, list);
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

const rows: string[][] = [];
for (const [kind, list] of byKind) {
  for (const part of PARTS) {
    const values = list.map((t) => t[part]);
    rows.push([
      kind,
      String(list.length),
      part,
      quantile(values, 0.5).toFixed(2),
      quantile(values, 0.99).toFixed(2),
      Math.max(...values).toFixed(1),
      part === 'totalTimeMs' ? String(values.filter((v) => v > 10).length) : '',
    ]);
  }
}
console.log(`# Kafka's timing of Produce requests in ${file}\n`);
console.log(
  markdownTable(['topic', 'requests', 'part', 'p50 ms', 'p99 ms', 'max ms', 'over 10 ms'], rows),
);
