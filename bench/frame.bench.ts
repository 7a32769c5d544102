/**
 * Frame layer benchmark: our FrameParser and encodeFrame against the Parser
 * and FrameImpl of `@stomp/stompjs`, in one process, on the same bytes.
 *
 * Run: `npx tsx bench/frame.bench.ts` (budget: BENCH_WARMUP_MS, BENCH_ROUND_MS,
 * BENCH_ROUNDS; see bench/README.md). Prints a markdown table to stdout.
 */
import { Buffer } from 'node:buffer';
import { availableParallelism, cpus } from 'node:os';
import { FrameImpl, type IRawFrameType, Parser } from '@stomp/stompjs';
import { encodeFrame } from '../src/frame/encoder.js';
import { createFrame, type Frame, type Header } from '../src/frame/frame.js';
import { FrameParser } from '../src/frame/parser.js';
import {
  type BenchBudget,
  budgetFromEnv,
  compare,
  formatMBps,
  formatRate,
  markdownTable,
  type Rate,
  speedup,
} from './harness.js';

/** Body sizes measured, as in the task: tiny, typical and large. */
const BODY_SIZES = [
  { label: '20 B', size: 20 },
  { label: '1 KiB', size: 1024 },
  { label: '64 KiB', size: 64 * 1024 },
] as const;

/** Bytes of frames per batch chunk (and per split stream). */
const BATCH_BYTES = 512 * 1024;
/** Split chunk size: one Ethernet-MTU TCP segment, roughly. */
const SEGMENT = 1400;
/** Heart-beats per iteration of the heart-beat cases. */
const HEARTBEATS = 16 * 1024;

/** The same bytes as stompjs takes them (ArrayBuffers) and as we do (Buffer views of those). */
interface Input {
  /** What the case is, for the table. */
  label: string;
  /** What one iteration feeds, for the table. */
  shape: string;
  stompjs: ArrayBuffer[];
  ours: Buffer[];
  bytes: number;
  /** Frames (or heart-beats) one iteration yields. */
  units: number;
}

/** Counts what a parser reports; both sides do exactly this work per frame. */
interface Sink {
  frames: number;
  beats: number;
  bodyBytes: number;
}

/** A printable body without backslashes (a backslash would change how far our parser scans). */
function makeBody(size: number): Uint8Array {
  const body = new Uint8Array(size);
  for (let i = 0; i < size; i++) body[i] = 97 + (i % 26);
  return body;
}

/** A SEND as a client publishes it; content-length is added by the encoder. */
function sendFrame(size: number): Frame {
  const headers: Header[] = [
    ['destination', '/queue/bench.orders'],
    ['content-type', 'application/json'],
    ['persistent', 'true'],
    ['priority', '4'],
    ['correlation-id', '5f0c2a8e-3b7d-4c1e-9a64-0d2b7e91c3aa'],
  ];
  return createFrame('SEND', headers, makeBody(size));
}

/** The MESSAGE a broker delivers for such a SEND. */
function messageFrame(size: number): Frame {
  const headers: Header[] = [
    ['subscription', 'sub-0'],
    ['message-id', 'm-7f3a9c-000042'],
    ['destination', '/queue/bench.orders'],
    ['ack', 'a-7f3a9c-000042'],
    ['content-type', 'application/json'],
  ];
  return createFrame('MESSAGE', headers, makeBody(size));
}

/** Cuts `stream` into private ArrayBuffers of at most `segment` bytes, outside any timed loop. */
function toInput(label: string, stream: Buffer, segment: number, units: number): Input {
  const stompjs: ArrayBuffer[] = [];
  for (let off = 0; off < stream.length; off += segment) {
    const end = Math.min(stream.length, off + segment);
    const piece = new Uint8Array(end - off);
    piece.set(stream.subarray(off, end));
    stompjs.push(piece.buffer);
  }
  const ours = stompjs.map((ab) => Buffer.from(ab)); // views: the very same memory
  const count = stompjs.length;
  const size = count === 1 ? `${(stream.length / 1024).toFixed(0)} KiB` : `≤${segment} B`;
  return {
    label,
    shape: `${units} × ${(stream.length / units).toFixed(0)} B in ${count} × ${size}`,
    stompjs,
    ours,
    bytes: stream.length,
    units,
  };
}

/** Batch and split inputs of `frame`, the same frames in both. */
function frameInputs(size: { label: string; size: number }): Input[] {
  const wire = encodeFrame(sendFrame(size.size));
  const count = Math.max(8, Math.min(4096, Math.floor(BATCH_BYTES / wire.length)));
  const stream = Buffer.concat(Array.from({ length: count }, () => wire));
  return [
    toInput(`parse SEND ${size.label}, batch`, stream, stream.length, count),
    toInput(`parse SEND ${size.label}, split`, stream, SEGMENT, count),
  ];
}

function heartbeatInputs(): Input[] {
  const stream = Buffer.alloc(HEARTBEATS, 0x0a);
  return [
    toInput('parse heart-beats, batch', stream, stream.length, HEARTBEATS),
    toInput('parse heart-beats, one per chunk', stream, 1, HEARTBEATS),
  ];
}

function oursParser(sink: Sink, frames?: Frame[]): FrameParser {
  return new FrameParser({
    onFrame: (frame) => {
      sink.frames++;
      sink.bodyBytes += frame.body.length;
      frames?.push(frame);
    },
    onHeartbeat: () => {
      sink.beats++;
    },
    onError: (error) => {
      throw error;
    },
  });
}

function stompjsParser(sink: Sink, frames?: IRawFrameType[]): Parser {
  return new Parser(
    (raw) => {
      sink.frames++;
      sink.bodyBytes += raw.binaryBody?.length ?? 0;
      frames?.push(raw);
    },
    () => {
      sink.beats++;
    },
  );
}

/** Parses the input once with each parser and fails loudly unless both saw the same frames. */
function verifyParse(input: Input): void {
  const a: Sink = { frames: 0, beats: 0, bodyBytes: 0 };
  const b: Sink = { frames: 0, beats: 0, bodyBytes: 0 };
  const ours: Frame[] = [];
  const theirs: IRawFrameType[] = [];
  const parser = oursParser(a, ours);
  for (const chunk of input.ours) parser.push(chunk);
  const reference = stompjsParser(b, theirs);
  for (const chunk of input.stompjs) reference.parseChunk(chunk);
  const fail = (what: string): never => {
    throw new Error(
      `${input.label}: ${what} (ours ${JSON.stringify(a)}, stompjs ${JSON.stringify(b)})`,
    );
  };
  if (a.frames + a.beats !== input.units) fail(`ours yielded the wrong count, want ${input.units}`);
  if (a.frames !== b.frames || a.beats !== b.beats || a.bodyBytes !== b.bodyBytes) {
    fail('the parsers disagree');
  }
  ours.forEach((frame, i) => {
    const raw = theirs[i];
    if (!raw || raw.command !== frame.command) fail(`frame ${i}: command differs`);
    if (JSON.stringify(raw?.headers) !== JSON.stringify(frame.headers)) {
      fail(`frame ${i}: headers differ`);
    }
    if (!raw?.binaryBody || Buffer.compare(raw.binaryBody, frame.body) !== 0) {
      fail(`frame ${i}: body differs`);
    }
  });
}

/** Frames/s and MB/s of both sides (medians), and how many times faster ours is. */
function row(label: string, shape: string, units: number, bytes: number, rates: Rate[]): string[] {
  const [ours, theirs] = rates as [Rate, Rate];
  const spread = Math.max(ours.spread, theirs.spread);
  return [
    label,
    shape,
    formatRate(ours.perSecond * units),
    formatMBps(ours.perSecond * bytes),
    formatRate(theirs.perSecond * units),
    formatMBps(theirs.perSecond * bytes),
    `${speedup(ours, theirs).toFixed(1)}x`,
    `${(spread * 100).toFixed(0)}%`,
  ];
}

function benchParse(input: Input, budget: BenchBudget): string[] {
  verifyParse(input);
  const sinkA: Sink = { frames: 0, beats: 0, bodyBytes: 0 };
  const sinkB: Sink = { frames: 0, beats: 0, bodyBytes: 0 };
  const ours = oursParser(sinkA);
  const theirs = stompjsParser(sinkB);
  const rates = compare(
    [
      () => {
        for (const chunk of input.ours) ours.push(chunk);
      },
      () => {
        for (const chunk of input.stompjs) theirs.parseChunk(chunk);
      },
    ],
    budget,
  );
  if (sinkA.frames + sinkA.beats === 0 || sinkB.frames + sinkB.beats === 0) {
    throw new Error(`${input.label}: a parser did no work`);
  }
  return row(input.label, input.shape, input.units, input.bytes, rates);
}

/** What the stompjs client hands FrameImpl.marshall for a frame with a binary body. */
function marshallParams(frame: Frame): ConstructorParameters<typeof FrameImpl>[0] {
  return {
    command: frame.command,
    headers: Object.fromEntries(frame.headers),
    binaryBody: frame.body,
    // stompjs escapes header values for STOMP 1.1 and 1.2, as our encoder does.
    escapeHeaderValues: true,
  };
}

function benchEncode(label: string, frame: Frame, budget: BenchBudget): string[] {
  const ours = encodeFrame(frame);
  const params = marshallParams(frame);
  const theirs = FrameImpl.marshall(params);
  // Both encoders must write the very same bytes, or the race means nothing.
  if (typeof theirs === 'string' || Buffer.compare(ours, Buffer.from(theirs)) !== 0) {
    throw new Error(`${label}: encodeFrame and FrameImpl.marshall write different bytes`);
  }
  const count = Math.max(8, Math.min(4096, Math.floor(BATCH_BYTES / ours.length)));
  let sink = 0;
  const rates = compare(
    [
      () => {
        for (let i = 0; i < count; i++) sink += encodeFrame(frame).length;
      },
      () => {
        for (let i = 0; i < count; i++) {
          sink += (FrameImpl.marshall(params) as ArrayBuffer).byteLength;
        }
      },
    ],
    budget,
  );
  if (sink === 0) throw new Error(`${label}: nothing was encoded`);
  return row(label, `${count} × ${ours.length} B`, count, count * ours.length, rates);
}

function main(): void {
  const budget = budgetFromEnv();
  const started = Date.now();
  const rows: string[][] = [];
  // BENCH_FILTER=text runs only the cases whose name contains it (handy under --cpu-prof).
  const wanted = (label: string): boolean => label.includes(process.env.BENCH_FILTER ?? '');
  const inputs = [...BODY_SIZES.flatMap(frameInputs), ...heartbeatInputs()];
  for (const input of inputs) if (wanted(input.label)) rows.push(benchParse(input, budget));
  for (const size of BODY_SIZES) {
    for (const [command, make] of [
      ['SEND', sendFrame],
      ['MESSAGE', messageFrame],
    ] as const) {
      const label = `encode ${command} ${size.label}`;
      if (wanted(label)) rows.push(benchEncode(label, make(size.size), budget));
    }
  }
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`# Frame codec: stompbus vs @stomp/stompjs\n`);
  console.log(
    `node ${process.version}, ${cpu}, ${availableParallelism()} CPUs; ` +
      `warm-up ${budget.warmupMs} ms, median of ${budget.rounds} × ${budget.roundMs} ms rounds\n`,
  );
  const header = ['case', 'one iteration', 'ours frames/s', 'ours MB/s', 'stompjs frames/s'];
  header.push('stompjs MB/s', 'ours/stompjs', 'spread');
  console.log(markdownTable(header, rows));
  console.log(`\n(${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

main();
