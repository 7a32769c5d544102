import fc from 'fast-check';
import { describe, expect } from 'vitest';
import { ErrorCodes, StompError } from '../../src/errors.js';
import {
  CLIENT_COMMANDS,
  type EscapeMode,
  encodeFrame,
  type Frame,
  type FrameLimits,
  FrameParser,
  type FrameParserOptions,
  type Header,
  SERVER_COMMANDS,
} from '../../src/frame/index.js';
import { itAlways } from '../helpers/fast-check.js';

// Feeding a parser and recording what it reports

/** One thing the parser reported; bodies as hex so a failing diff stays readable. */
type ParserEvent =
  | { frame: { command: string; headers: Header[]; body: string } }
  | { heartbeat: true }
  | { error: string };

interface Run {
  events: ParserEvent[];
  errors: unknown[];
  parser: FrameParser;
  /** The largest `retainedBytes` seen after any push. */
  maxRetained: number;
}

type ParseOptions = Omit<FrameParserOptions, 'onFrame' | 'onHeartbeat' | 'onError'>;

function frameEvent(frame: Frame): ParserEvent {
  const body = Buffer.from(frame.body.buffer, frame.body.byteOffset, frame.body.byteLength);
  return { frame: { command: frame.command, headers: frame.headers, body: body.toString('hex') } };
}

function feed(chunks: Iterable<Uint8Array>, options: ParseOptions = {}): Run {
  const events: ParserEvent[] = [];
  const errors: unknown[] = [];
  const parser = new FrameParser({
    ...options,
    onFrame: (frame) => events.push(frameEvent(frame)),
    onHeartbeat: () => events.push({ heartbeat: true }),
    onError: (error: unknown) => {
      errors.push(error);
      events.push({ error: error instanceof StompError ? error.code : String(error) });
    },
  });
  let maxRetained = 0;
  for (const chunk of chunks) {
    parser.push(chunk);
    // A plain comparison, not expect(): this runs once per byte in the one-byte splits.
    if (parser.retainedBytes > maxRetained) maxRetained = parser.retainedBytes;
  }
  return { events, errors, parser, maxRetained };
}

/** `bytes` cut into chunks of the given sizes, repeated until the bytes run out. */
function* split(bytes: Uint8Array, sizes: readonly number[]): Generator<Uint8Array> {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length] ?? 1;
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

const ONE_BYTE_AT_A_TIME = [1] as const;

// Frames

const COMMANDS = [...CLIENT_COMMANDS, ...SERVER_COMMANDS];

/** Characters the wire format cares about, and the letters that follow a backslash. */
const SPECIAL_UNITS = [':', '\r', '\n', '\\', 'c', 'n', 'r', 't', ' '];

/**
 * Any code point but a surrogate, so every string made of them is well-formed. (Cheaper
 * to build than `fc.string({ unit: 'binary' })`, which spends a second on its tables.)
 */
const codePoint = fc
  .integer({ min: 0, max: 0x10ffff })
  .filter((cp) => cp < 0xd800 || cp > 0xdfff)
  .map((cp) => String.fromCodePoint(cp));

/** Header text: special characters, any code point or any grapheme, except `forbidden`. */
function headerText(forbidden: RegExp | undefined, minLength: number): fc.Arbitrary<string> {
  const allowed = (unit: string) => forbidden === undefined || !forbidden.test(unit);
  const unit = fc.oneof(
    fc.constantFrom(...SPECIAL_UNITS.filter(allowed)),
    codePoint.filter(allowed),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }).filter(allowed),
  );
  return fc.string({ unit, minLength, maxLength: 16 });
}

/**
 * How headers travel. STOMP 1.2 "Value Encoding": CONNECT and CONNECTED never escape,
 * and 1.0 has no escapes, so there (`raw`) a name cannot hold `:` and no text can hold
 * LF. Where CR is not escaped (`raw`, and 1.1), a value ending in CR would read as a
 * CRLF line end, so values may hold CR anywhere but last.
 */
type Wire = 'escaped' | 'cr-unescaped' | 'raw';

function headerOn(wire: Wire): fc.Arbitrary<Header> {
  const name = headerText(wire === 'raw' ? /[:\n]/ : undefined, 1);
  const value = headerText(wire === 'raw' ? /\n/ : undefined, 0).filter(
    (text) => wire === 'escaped' || !text.endsWith('\r'),
  );
  // content-length is common enough to exercise the encoder's rewrite of the first one.
  const anyName = fc.oneof(
    { weight: 1, arbitrary: fc.constant('content-length') },
    { weight: 5, arbitrary: name },
  );
  return fc.tuple(anyName, value);
}

const HEADERS: Record<Wire, fc.Arbitrary<Header[]>> = {
  escaped: fc.array(headerOn('escaped'), { maxLength: 8 }),
  'cr-unescaped': fc.array(headerOn('cr-unescaped'), { maxLength: 8 }),
  raw: fc.array(headerOn('raw'), { maxLength: 8 }),
};

function headersFor(command: string, mode: EscapeMode): fc.Arbitrary<Header[]> {
  if (mode === '1.0' || command === 'CONNECT' || command === 'CONNECTED') return HEADERS.raw;
  return HEADERS[mode === '1.2' ? 'escaped' : 'cr-unescaped'];
}

/** Any body, and short ones made of the bytes that matter: NUL, LF, CR, `:` and `\`. */
const body = fc.oneof(
  fc.uint8Array({ maxLength: 256 }),
  fc.array(fc.constantFrom(0, 10, 13, 58, 92), { maxLength: 16 }).map((b) => Uint8Array.from(b)),
);

function frameFor(mode: EscapeMode): fc.Arbitrary<Frame> {
  return fc.constantFrom(...COMMANDS).chain((command) =>
    fc.record({
      command: fc.constant(command),
      headers: headersFor(command, mode),
      body,
    }),
  );
}

/**
 * The frame the parser should give back: the encoder writes the body's length into the
 * first content-length header, and appends one for a non-empty body.
 */
function afterRoundTrip(frame: Frame): Frame {
  const length = String(frame.body.length);
  let sawLength = false;
  const headers = frame.headers.map(([name, value]): Header => {
    if (name !== 'content-length' || sawLength) return [name, value];
    sawLength = true;
    return [name, length];
  });
  if (!sawLength && frame.body.length > 0) headers.push(['content-length', length]);
  return { ...frame, headers };
}

// Streams: frames and heart-beats, and broken versions of them

type StreamItem = { frame: Frame } | { eol: '\n' | '\r\n' };

const streamItems = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: frameFor('1.2').map((frame) => ({ frame })) },
    {
      weight: 1,
      arbitrary: fc.constantFrom('\n' as const, '\r\n' as const).map((eol) => ({ eol })),
    },
  ),
  { maxLength: 10 },
);

function encodeStream(items: readonly StreamItem[]): Buffer {
  return Buffer.concat(
    items.map((item) => ('eol' in item ? Buffer.from(item.eol) : encodeFrame(item.frame))),
  );
}

function expectedEvents(items: readonly StreamItem[]): ParserEvent[] {
  return items.map((item) =>
    'eol' in item ? { heartbeat: true as const } : frameEvent(afterRoundTrip(item.frame)),
  );
}

/** Chunk sizes, cycled over the bytes; small sizes (down to one byte) come up often. */
const chunkSizes = fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 });

/** An edit of a valid stream: flip one bit, cut the rest off, or splice bytes in. */
const edit = fc.oneof(
  fc.record({ at: fc.nat(), flip: fc.nat({ max: 7 }) }),
  fc.record({ at: fc.nat(), cut: fc.constant(true) }),
  fc.record({
    at: fc.nat(),
    remove: fc.nat({ max: 16 }),
    insert: fc.uint8Array({ maxLength: 16 }),
  }),
);

function applyEdit(bytes: Uint8Array, e: typeof edit extends fc.Arbitrary<infer T> ? T : never) {
  const at = e.at % (bytes.length + 1);
  if ('cut' in e) return bytes.subarray(0, at);
  if ('flip' in e) {
    const out = Uint8Array.from(bytes);
    if (at < out.length) out[at] = (out[at] ?? 0) ^ (1 << e.flip);
    return out;
  }
  return new Uint8Array(
    Buffer.concat([bytes.subarray(0, at), e.insert, bytes.subarray(at + e.remove)]),
  );
}

/** Valid streams with bit flips, truncations, insertions and deletions. */
const mutatedStream = fc
  .tuple(streamItems, fc.array(edit, { minLength: 1, maxLength: 4 }))
  .map(([items, edits]) => edits.reduce(applyEdit, new Uint8Array(encodeStream(items))));

/** Byte soup that looks like STOMP, often after a valid command line, to get deeper in. */
const STOMPISH_TOKENS = [
  ...['SEND', 'CONNECT', 'CONNECTED', 'MESSAGE', 'ERROR', 'send', 'SENDX', 'a:b\n', 'a:b\\c\n'],
  ...['\n', '\r\n', '\r', ':', '\\', '\\c', '\\n', '\\r', '\\t', '\0', '\0\n', 'é', '\u{1F600}'],
  ...['content-length:', 'content-length:0\n', 'content-length:-1\n', 'receipt:1\n'],
];
const stompish = fc
  .tuple(
    fc.constantFrom('', 'SEND\n', 'MESSAGE\r\n', 'CONNECT\n'),
    fc.array(
      fc.oneof(
        fc.constantFrom(...STOMPISH_TOKENS).map((token) => Buffer.from(token)),
        fc.nat({ max: 99_999 }).map((n) => Buffer.from(String(n))),
        fc.uint8Array({ maxLength: 8 }),
      ),
      { maxLength: 40 },
    ),
  )
  .map(([command, parts]) => new Uint8Array(Buffer.concat([Buffer.from(command), ...parts])));

const anyBytes = fc.oneof(fc.uint8Array({ maxLength: 512 }), stompish, mutatedStream);

// Limits

/** Small limits, so that random input reaches them. */
const SMALL_LIMITS: FrameLimits = {
  maxFrameSize: 4096,
  maxHeaders: 8,
  maxHeaderLineLength: 256,
  maxBodySize: 2048,
};

/**
 * The small limits, or tiny random ones that short inputs reach, several at a time; the
 * frame limit is sometimes out of the way so that the others can be met exactly.
 */
const anyLimits: fc.Arbitrary<FrameLimits> = fc.oneof(
  fc.constant(SMALL_LIMITS),
  fc.record({
    maxFrameSize: fc.oneof(fc.integer({ min: 1, max: 256 }), fc.constant(1 << 20)),
    maxHeaders: fc.nat({ max: 6 }),
    maxHeaderLineLength: fc.integer({ min: 1, max: 48 }),
    maxBodySize: fc.nat({ max: 128 }),
  }),
);

/**
 * The most bytes the parser may hold between pushes: a head of a command and
 * `maxHeaders` header lines (each with CR LF) plus a partial line (one byte longer, as
 * it may end in the CR of its EOL), or a body, and never more than a frame.
 */
function retainedBound(limits: FrameLimits): number {
  const line = limits.maxHeaderLineLength;
  const head = (limits.maxHeaders + 1) * (line + 2) + line + 1;
  return Math.min(limits.maxFrameSize, Math.max(head, limits.maxBodySize));
}

/** Content-length values that are not a byte count. */
const badLength = fc.constantFrom('', '-1', '+1', ' 1', '1 ', '0x10', '1e3', '12345678901234567');

/** A count anywhere up to half again beyond `limit`, or right at its edge. */
function around(limit: number): fc.Arbitrary<number> {
  return fc.oneof(
    fc.nat({ max: Math.ceil(limit * 1.5) + 2 }),
    fc.integer({ min: Math.max(0, limit - 1), max: limit + 1 }),
  );
}

/** The shape of a frame built to meet the limits: sizes, not content. */
interface FrameShape {
  command: string;
  eol: string;
  headers: number;
  lineLength: number;
  bodyLength: number;
  /** A content-length header: `exact` for the body's length, or any text. */
  contentLength: string | null;
  nul: boolean;
}

/** A frame of some shape: its bytes and the sizes the limits apply to. */
interface SizedFrame {
  wire: Buffer;
  /** The command line's and every header line's length, without EOL. */
  lineLengths: number[];
  headerCount: number;
  bodyLength: number;
}

function frameOfShape(shape: FrameShape): SizedFrame {
  const { eol, contentLength, bodyLength } = shape;
  const lines = [shape.command];
  for (let i = 0; i < shape.headers; i++) {
    const name = `h${i}:`;
    lines.push(name + 'v'.repeat(Math.max(0, shape.lineLength - name.length)));
  }
  if (contentLength !== null) {
    lines.push(`content-length:${contentLength === 'exact' ? bodyLength : contentLength}`);
  }
  const head = Buffer.from(lines.join(eol) + eol + eol);
  const tail = shape.nul ? Buffer.of(0) : Buffer.alloc(0);
  return {
    wire: Buffer.concat([head, Buffer.alloc(bodyLength, 0x62), tail]),
    lineLengths: lines.map((line) => line.length),
    headerCount: lines.length - 1,
    bodyLength,
  };
}

/** Frame shapes sized around `limits`, each size often right at its limit. */
function shapesAround(limits: FrameLimits): fc.Arbitrary<FrameShape> {
  return fc.record({
    command: fc.constantFrom('SEND', 'BOGUS'),
    eol: fc.constantFrom('\n', '\r\n'),
    headers: around(limits.maxHeaders),
    lineLength: around(limits.maxHeaderLineLength),
    bodyLength: around(limits.maxBodySize),
    contentLength: fc.option(
      fc.oneof(fc.constant('exact'), around(limits.maxBodySize).map(String), badLength),
    ),
    nul: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, fc.constant(false)),
  });
}

/** Up to three frames sized around `limits`, not all well-formed. */
function framesAround(limits: FrameLimits): fc.Arbitrary<Uint8Array> {
  const frame = shapesAround(limits).map((shape) => frameOfShape(shape).wire);
  return fc.array(frame, { minLength: 1, maxLength: 3 }).map((frames) => Buffer.concat(frames));
}

/** The codes of the limits a frame breaks: none, and the parser must accept it. */
function limitsBroken(frame: SizedFrame, limits: FrameLimits): string[] {
  const broken: string[] = [];
  if (frame.lineLengths.some((length) => length > limits.maxHeaderLineLength)) {
    broken.push('STOMP_ERR_HEADER_LINE_TOO_LONG');
  }
  if (frame.headerCount > limits.maxHeaders) broken.push('STOMP_ERR_TOO_MANY_HEADERS');
  if (frame.bodyLength > limits.maxBodySize) broken.push('STOMP_ERR_BODY_TOO_LARGE');
  if (frame.wire.length > limits.maxFrameSize) broken.push('STOMP_ERR_FRAME_TOO_LARGE');
  return broken;
}

/** Well-formed frames: a known command, a NUL, and no content-length or the right one. */
const wellFormedShape: fc.Arbitrary<FrameShape> = fc.record({
  command: fc.constantFrom('SEND', 'MESSAGE'),
  eol: fc.constantFrom('\n', '\r\n'),
  headers: fc.nat({ max: 8 }),
  lineLength: fc.integer({ min: 1, max: 40 }),
  bodyLength: fc.nat({ max: 200 }),
  contentLength: fc.option(fc.constant('exact')),
  nul: fc.constant(true),
});

/** How far each limit is from a frame's size: at its edge (-1, 0, 1) or further out. */
type Slack = Record<keyof FrameLimits, number>;

const anySlack = fc.oneof(fc.integer({ min: -1, max: 1 }), fc.integer({ min: 2, max: 64 }));
const slack: fc.Arbitrary<Slack> = fc.record({
  maxFrameSize: anySlack,
  maxHeaders: anySlack,
  maxHeaderLineLength: anySlack,
  maxBodySize: anySlack,
});

/** Limits at `slack` from the sizes of `frame`: a negative slack breaks that limit. */
function limitsFitting(frame: SizedFrame, slack: Slack): FrameLimits {
  return {
    maxFrameSize: Math.max(1, frame.wire.length + slack.maxFrameSize),
    maxHeaders: Math.max(0, frame.headerCount + slack.maxHeaders),
    maxHeaderLineLength: Math.max(1, Math.max(...frame.lineLengths) + slack.maxHeaderLineLength),
    maxBodySize: Math.max(0, frame.bodyLength + slack.maxBodySize),
  };
}

/** Limits, and bytes that are either anything or frames sized around those limits. */
const limitsAndBytes = anyLimits.chain((limits) =>
  fc.tuple(fc.constant(limits), fc.oneof(framesAround(limits), anyBytes)),
);

/** Chunk sizes up to 1 KiB, cycled like {@link chunkSizes}, for inputs of a few KiB. */
const bigChunkSizes = fc.array(fc.integer({ min: 1, max: 1024 }), { minLength: 1, maxLength: 6 });

// Checks

const CODES = Object.keys(ErrorCodes);

/**
 * Frames within `limits` and heart-beats, then at most one coded error, then nothing,
 * whatever comes next.
 */
function expectFramesThenAtMostOneError(run: Run, limits: FrameLimits): void {
  for (const event of run.events) {
    if (!('frame' in event)) continue;
    const { command, headers, body } = event.frame;
    const bodySize = body.length / 2; // hex
    expect(bodySize).toBeLessThanOrEqual(limits.maxBodySize);
    expect(headers.length).toBeLessThanOrEqual(limits.maxHeaders);
    // At the least the command line, the blank line, the body and the NUL.
    expect(command.length + 2 + bodySize + 1).toBeLessThanOrEqual(limits.maxFrameSize);
  }
  expect(run.errors.length).toBeLessThanOrEqual(1);
  const [error] = run.errors;
  expect(run.parser.failed).toBe(error !== undefined);
  if (error === undefined) return;
  expect(error).toBeInstanceOf(StompError);
  expect(CODES).toContain((error as StompError).code);
  expect(run.events.at(-1)).toEqual({ error: (error as StompError).code });
  expect(run.parser.retainedBytes).toBe(0);
  const reported = run.events.length;
  run.parser.push(encodeFrame({ command: 'SEND', headers: [], body: new Uint8Array(0) }));
  run.parser.push(Buffer.from('\n\r\n'));
  expect(run.events.length).toBe(reported);
}

describe('the frame codec', () => {
  describe.each(['1.2', '1.1', '1.0'] as const)('with %s escaping', (mode) => {
    itAlways('parses every frame it encodes back to the same frame', [frameFor(mode)], (frame) => {
      const run = feed([encodeFrame(frame, mode)], { escapes: mode });
      expect(run.events).toEqual([frameEvent(afterRoundTrip(frame))]);
      expect(run.parser.retainedBytes).toBe(0);
    });
  });

  itAlways(
    'reports the same frames and heart-beats however the stream is split',
    [streamItems, chunkSizes],
    (items, sizes) => {
      const bytes = encodeStream(items);
      const expected = expectedEvents(items);
      for (const chunks of [[bytes], split(bytes, ONE_BYTE_AT_A_TIME), split(bytes, sizes)]) {
        const run = feed(chunks);
        expect(run.events).toEqual(expected);
        expect(run.parser.retainedBytes).toBe(0);
      }
    },
    0.5,
  );

  itAlways(
    'reports frames and at most one coded error for any bytes, and never throws',
    [limitsAndBytes, chunkSizes, fc.constantFrom<EscapeMode>('1.2', '1.1', '1.0')],
    ([limits, bytes], sizes, escapes) => {
      expectFramesThenAtMostOneError(feed(split(bytes, sizes), { ...limits, escapes }), limits);
    },
  );

  itAlways(
    'reports the same frames and error for any bytes however they are split',
    [limitsAndBytes, chunkSizes],
    ([limits, bytes], sizes) => {
      const whole = feed([bytes], limits).events;
      for (const chunks of [split(bytes, ONE_BYTE_AT_A_TIME), split(bytes, sizes)]) {
        expect(feed(chunks, limits).events).toEqual(whole);
      }
    },
  );

  itAlways(
    'accepts a frame exactly when it is within every limit, and names a limit it breaks',
    [wellFormedShape, slack, chunkSizes],
    (shape, slack, sizes) => {
      const frame = frameOfShape(shape);
      const limits = limitsFitting(frame, slack);
      const broken = limitsBroken(frame, limits);
      const { events } = feed(split(frame.wire, sizes), limits);
      expect(events).toHaveLength(1);
      if (broken.length === 0) expect(events[0]).toHaveProperty('frame');
      else expect(broken).toContain((events[0] as { error?: string }).error);
    },
  );

  itAlways(
    'rejects a body not followed by a NUL where its content-length ends, however split',
    [fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 1, max: 255 }), chunkSizes],
    (body, notNul, sizes) => {
      const head = Buffer.from(`SEND\ncontent-length:${body.length}\n\n`);
      const wire = Buffer.concat([head, body, Buffer.of(notNul)]);
      for (const chunks of [[wire], split(wire, ONE_BYTE_AT_A_TIME), split(wire, sizes)]) {
        expect(feed(chunks).events).toEqual([{ error: 'STOMP_ERR_MISSING_NUL' }]);
      }
    },
  );

  itAlways(
    'holds no more bytes than its limits allow, after any chunk',
    [limitsAndBytes, bigChunkSizes],
    ([limits, bytes], sizes) => {
      const run = feed(split(bytes, sizes), limits);
      expect(run.maxRetained).toBeLessThanOrEqual(retainedBound(limits));
      expectFramesThenAtMostOneError(run, limits);
    },
  );
});
