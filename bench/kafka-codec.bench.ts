/**
 * stompbus's Kafka encoding and reading against kafkajs 2.2.4's own, in one process, on the
 * same data, shaped as a stompbus instance sends and fetches it (destination as key, 256-byte
 * bodies, the STOMP headers packed in one record header or one header each): the Produce
 * request's encoding (src/cluster/produce-encoding.ts) and the reading of fetched records
 * (src/cluster/record-decoding.ts).
 *
 * Run: `npx tsx bench/kafka-codec.bench.ts` (budget: BENCH_WARMUP_MS, BENCH_ROUND_MS,
 * BENCH_ROUNDS; see bench/README.md). Rounds alternate between the two (kafkajs first in
 * odd rounds, ours first in even ones); the ratio is ours ÷ kafkajs per round, CPU time per
 * record. Prints a markdown table to stdout.
 */
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { encodeProduceRequest, type ProduceRequestArgs } from '../src/cluster/produce-encoding.js';
import {
  type BatchContext,
  type DecodedRecord,
  decodeRecord,
  type RecordDecoderInput,
} from '../src/cluster/record-decoding.js';
import { budgetFromEnv, markdownTable, median } from './harness.js';

const require = createRequire(import.meta.url);
const kafkajsRequest = require('kafkajs/src/protocol/requests/produce/v3/request.js') as (
  args: ProduceRequestArgs,
) => { encode(): Promise<{ buffer: Buffer }> };
const Long = require('kafkajs/src/utils/long.js') as { fromInt(v: number): unknown };
const kafkajsRecord = require('kafkajs/src/protocol/recordBatch/record/v0/decoder.js') as (
  decoder: RecordDecoderInput,
  context: BatchContext,
) => DecodedRecord;
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (
  buffer: Buffer,
) => RecordDecoderInput & { readVarIntBytes(): Buffer };
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
const readRows: string[][] = [];
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

/** The records of `args` as a fetched batch holds them: each record's bytes, length first. */
function fetchedRecords(args: ProduceRequestArgs): Buffer[] {
  const bytes = encodeProduceRequest(args) as Buffer;
  // Through kafkajs' own reading of the request's batches: length-prefixed records.
  const records: Buffer[] = [];
  const decoder = new Decoder(bytes);
  const skip = (n: number) => {
    decoder.offset += n;
  };
  const int16 = () => bytes.readInt16BE(decoder.offset);
  const int32 = () => bytes.readInt32BE(decoder.offset);
  skip(2 + Math.max(0, int16()) + 2 + 4);
  const topics = int32();
  skip(4);
  for (let t = 0; t < topics; t++) {
    skip(2 + int16());
    const partitions = int32();
    skip(4);
    for (let p = 0; p < partitions; p++) {
      skip(4 + 4 + 8 + 4 + 4 + 1 + 4 + 2 + 4 + 8 + 8 + 8 + 2 + 4);
      const count = int32();
      skip(4);
      for (let r = 0; r < count; r++) records.push(decoder.readVarIntBytes());
    }
  }
  return records;
}

for (const headers of ['packed', 'each'] as const) {
  const records = fetchedRecords(request(1000, headers));
  const context: BatchContext = {
    firstOffset: '1234567',
    firstTimestamp: '1764900000000',
    magicByte: 2,
    isControlBatch: false,
    timestampType: 0,
    maxTimestamp: '1764900000100',
  };
  const reader = (decode: (d: RecordDecoderInput, c: BatchContext) => unknown) => () => {
    for (const record of records) decode(new Decoder(record), context);
  };
  const kafkajs = reader(kafkajsRecord);
  const ours = reader(decodeRecord);
  const theirs: number[] = [];
  const mine: number[] = [];
  await round(kafkajs, records.length, budget.warmupMs);
  await round(ours, records.length, budget.warmupMs);
  for (let r = 0; r < budget.rounds; r++) {
    if (r % 2 === 0) {
      theirs.push(await round(kafkajs, records.length, budget.roundMs));
      mine.push(await round(ours, records.length, budget.roundMs));
    } else {
      mine.push(await round(ours, records.length, budget.roundMs));
      theirs.push(await round(kafkajs, records.length, budget.roundMs));
    }
  }
  const ratios = mine.map((m, i) => m / (theirs[i] as number));
  readRows.push([
    `a fetched record, headers ${headers}`,
    median(theirs).toFixed(2),
    median(mine).toFixed(2),
    `${median(ratios).toFixed(3)}× (${Math.min(...ratios).toFixed(3)}×-${Math.max(...ratios).toFixed(3)}×)`,
  ]);
}

console.log(
  [
    '### Kafka encoding and reading: stompbus against kafkajs',
    '',
    `Date: ${new Date().toISOString()} · machine: ${cpus().length} CPU, ${cpus()[0]?.model.trim()} · Node ${process.version} · kafkajs ${kafkajsVersion} · ${budget.rounds} rounds of ${budget.roundMs} ms after ${budget.warmupMs} ms of warm-up each`,
    '',
    markdownTable(
      [
        'Produce request (6 partitions, 256-byte values)',
        'kafkajs, CPU µs a record',
        'stompbus, CPU µs a record',
        'stompbus ÷ kafkajs, median (range)',
      ],
      rows,
    ),
    '',
    markdownTable(
      [
        'reading (256-byte values)',
        'kafkajs, CPU µs a record',
        'stompbus, CPU µs a record',
        'stompbus ÷ kafkajs, median (range)',
      ],
      readRows,
    ),
  ].join('\n'),
);
