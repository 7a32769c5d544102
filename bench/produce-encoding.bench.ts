/**
 * Produce request encoding: stompbus's (src/cluster/produce-encoding.ts) against kafkajs
 * 2.2.4's own, in one process, on the same requests, shaped as a stompbus instance sends
 * them (destination as key, 256-byte bodies, the STOMP headers packed in one record header
 * or one header each).
 *
 * Run: `npx tsx bench/produce-encoding.bench.ts` (budget: BENCH_WARMUP_MS, BENCH_ROUND_MS,
 * BENCH_ROUNDS; see bench/README.md). Rounds alternate between the two (kafkajs first in
 * odd rounds, ours first in even ones); the ratio is ours ÷ kafkajs per round, CPU time per
 * record. Prints a markdown table to stdout.
 */
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { encodeProduceRequest, type ProduceRequestArgs } from '../src/cluster/produce-encoding.js';
import { budgetFromEnv, markdownTable, median } from './harness.js';

const require = createRequire(import.meta.url);
const kafkajsRequest = require('kafkajs/src/protocol/requests/produce/v3/request.js') as (
  args: ProduceRequestArgs,
) => { encode(): Promise<{ buffer: Buffer }> };
const Long = require('kafkajs/src/utils/long.js') as { fromInt(v: number): unknown };
const kafkajsVersion = (require('kafkajs/package.json') as { version: string }).version;

const KEYS = Array.from({ length: 6 }, (_, i) => `/topic/ceiling-${i}`);
const BODY = Buffer.alloc(256, 'x');

/** A request of `records` records over 6 partitions, headers packed or one each. */
function request(records: number, headers: 'packed' | 'each'): ProduceRequestArgs {
  const partitions = KEYS.map((_, partition) => ({
    partition,
    firstSequence: 0,
    messages: [] as Array<{ key: string; value: Buffer; headers: Record<string, string> }>,
  }));
  for (let i = 0; i < records; i++) {
    const destination = KEYS[i % KEYS.length] as string;
    const id = `stompbus-7f3a2c-${1_000_000 + i}`;
    partitions[i % KEYS.length]?.messages.push({
      key: destination,
      value: BODY,
      headers:
        headers === 'packed'
          ? { 'stompbus-headers': `${id}\ncontent-type:text/plain\ncontent-length:256` }
          : { 'content-type': 'text/plain', 'content-length': '256', 'stompbus-id': id },
    });
  }
  return {
    acks: -1,
    timeout: 30_000,
    producerId: Long.fromInt(-1),
    producerEpoch: 0,
    topicData: [
      { topic: 'stompbus-messages', partitions: partitions.filter((p) => p.messages.length) },
    ],
  };
}

/** CPU µs per record of `encode` run for `ms` milliseconds. */
async function round(encode: () => unknown, records: number, ms: number): Promise<number> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  let requests = 0;
  do {
    await encode();
    requests++;
  } while (performance.now() - start < ms);
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / (requests * records);
}

const budget = budgetFromEnv();
const rows: string[][] = [];
for (const [records, headers] of [
  [1000, 'packed'],
  [1000, 'each'],
  [10, 'packed'],
] as const) {
  const args = request(records, headers);
  const kafkajs = () => kafkajsRequest(args).encode();
  const ours = () => encodeProduceRequest(args);
  const a = await kafkajs();
  const b = ours();
  if (!b || !a.buffer.subarray(0, 40).equals(b.subarray(0, 40))) {
    throw new Error('the two encodings differ in their first bytes: not the same request');
  }
  await round(kafkajs, records, budget.warmupMs);
  await round(ours, records, budget.warmupMs);
  const theirs: number[] = [];
  const mine: number[] = [];
  for (let r = 0; r < budget.rounds; r++) {
    if (r % 2 === 0) {
      theirs.push(await round(kafkajs, records, budget.roundMs));
      mine.push(await round(ours, records, budget.roundMs));
    } else {
      mine.push(await round(ours, records, budget.roundMs));
      theirs.push(await round(kafkajs, records, budget.roundMs));
    }
  }
  const ratios = mine.map((m, i) => m / (theirs[i] as number));
  rows.push([
    `${records} records, headers ${headers}`,
    median(theirs).toFixed(2),
    median(mine).toFixed(2),
    `${median(ratios).toFixed(3)}× (${Math.min(...ratios).toFixed(3)}×-${Math.max(...ratios).toFixed(3)}×)`,
  ]);
}

console.log(
  [
    '### Produce request encoding',
    '',
    `Date: ${new Date().toISOString()} · machine: ${cpus().length} CPU, ${cpus()[0]?.model.trim()} · Node ${process.version} · kafkajs ${kafkajsVersion} · ${budget.rounds} rounds of ${budget.roundMs} ms after ${budget.warmupMs} ms of warm-up each`,
    '',
    markdownTable(
      [
        'request (6 partitions, 256-byte values)',
        'kafkajs, CPU µs a record',
        'stompbus, CPU µs a record',
        'stompbus ÷ kafkajs, median (range)',
      ],
      rows,
    ),
  ].join('\n'),
);
