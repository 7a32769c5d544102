import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BatchContext,
  type DecodedRecord,
  decodeRecord,
  type RecordDecoderInput,
} from '../../src/cluster/record-decoding.js';
import { fcParameters } from '../helpers/fast-check.js';

const require = createRequire(import.meta.url);
/** kafkajs' own record decoder and Decoder (this file never installs the replacement). */
const kafkajsDecode = require('kafkajs/src/protocol/recordBatch/record/v0/decoder.js') as (
  decoder: RecordDecoderInput,
  context: BatchContext,
) => DecodedRecord;
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (
  buffer: Buffer,
) => RecordDecoderInput;

/** Zigzag varint / varlong bytes (as Kafka writes them), for values up to 2^62. */
function varlong(value: bigint): number[] {
  let v = value >= 0n ? value << 1n : (-value << 1n) - 1n;
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}
const bytesField = (b: Buffer | null) =>
  b === null ? varlong(-1n) : [...varlong(BigInt(b.length)), ...b];

/** A record's bytes (without its length prefix, as the batch decoder hands it over). */
function recordBytes(r: {
  attributes: number;
  timestampDelta: bigint;
  offsetDelta: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<[Buffer | null, Buffer | null]>;
}): Buffer {
  return Buffer.from([
    r.attributes & 0xff,
    ...varlong(r.timestampDelta),
    ...varlong(BigInt(r.offsetDelta)),
    ...bytesField(r.key),
    ...bytesField(r.value),
    ...varlong(BigInt(r.headers.length)),
    ...r.headers.flatMap(([k, v]) => [...bytesField(k), ...bytesField(v)]),
  ]);
}

/** Everything observable of a decoded record: fields in order, header names in order, bytes. */
function view(record: DecodedRecord) {
  const show = (v: unknown): unknown =>
    Buffer.isBuffer(v)
      ? `bytes:${v.toString('hex')}`
      : Array.isArray(v)
        ? v.map(show)
        : v === Object.prototype
          ? 'Object.prototype'
          : typeof v === 'function'
            ? `function ${v.name}`
            : v;
  return {
    fields: Object.keys(record),
    values: Object.values(record).map((v) => (v === record.headers ? 'headers' : show(v))),
    headerNames: Object.getOwnPropertyNames(record.headers),
    headerValues: Object.getOwnPropertyNames(record.headers).map((n) =>
      show(Object.getOwnPropertyDescriptor(record.headers, n)?.value),
    ),
    prototype: Object.getPrototypeOf(record.headers) === Object.prototype,
  };
}

/**
 * Both decoders on the same bytes: where ours reads a record, kafkajs reads the same one and
 * ends at the same place; where ours leaves it to kafkajs, it moved nothing. (kafkajs is not
 * asked then: on damaged bytes it may try to make an array of a billion headers.)
 */
function same(bytes: Buffer, start: number, context: BatchContext): boolean {
  const ours = new Decoder(bytes);
  ours.offset = start;
  const record = decodeRecord(ours, context);
  if (record === undefined) {
    expect(ours.offset).toBe(start);
    return false;
  }
  const theirs = new Decoder(bytes);
  theirs.offset = start;
  const expected = { record: view(kafkajsDecode(theirs, context)), offset: theirs.offset };
  expect({ record: view(record), offset: ours.offset }).toEqual(expected);
  return true;
}

const nameOrValue = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 8 }).map((s) => Buffer.from(s)) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('__proto__', 'toString', 'constructor', '7', 'null')
      .map((s) => Buffer.from(s)),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 6 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.constant(null) },
);
const record = fc.record({
  attributes: fc.integer({ min: -128, max: 127 }),
  timestampDelta: fc.oneof(
    fc.bigInt({ min: -1000n, max: 1000n }),
    fc.bigInt({ min: -(2n ** 50n), max: 2n ** 50n }),
  ),
  offsetDelta: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  key: fc.option(
    fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)),
    { nil: null },
  ),
  value: fc.option(
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    { nil: null },
  ),
  headers: fc.array(fc.tuple(nameOrValue, nameOrValue), { maxLength: 6 }),
});
const context: fc.Arbitrary<BatchContext> = fc.record(
  {
    firstOffset: fc
      .oneof(fc.bigInt({ min: 0n, max: 2n ** 40n }), fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }))
      .map(String),
    firstTimestamp: fc
      .oneof(
        fc.constant(-1n),
        fc.bigInt({ min: 0n, max: 2n ** 43n }),
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
      )
      .map(String),
    magicByte: fc.constant(2),
    isControlBatch: fc.boolean(),
    timestampType: fc.constantFrom(0, 1, -1),
    maxTimestamp: fc.constantFrom('1764900000000', '0', ''),
  },
  { requiredKeys: ['firstOffset', 'firstTimestamp'] },
);

describe("stompbus's reading of a fetched record", () => {
  it("gives kafkajs' record for every record (property; big offsets and timestamps left to kafkajs)", () => {
    let ours = 0;
    fc.assert(
      fc.property(record, context, (r, c) => {
        if (same(recordBytes(r), 0, c)) ours++;
      }),
      fcParameters(),
    );
    // Most records are read here, not handed to kafkajs.
    expect(ours).toBeGreaterThan((fcParameters().numRuns ?? 0) / 4);
  });

  it('reads damaged bytes as kafkajs does, or leaves them to it (property)', () => {
    fc.assert(
      fc.property(
        record,
        context,
        fc.nat(),
        fc.uint8Array({ minLength: 1, maxLength: 4 }),
        (r, c, at, noise) => {
          const bytes = recordBytes(r);
          // Cut short, or bytes overwritten.
          const cut = bytes.subarray(0, at % (bytes.length + 1));
          same(cut, 0, c);
          const changed = Buffer.from(bytes);
          Buffer.from(noise).copy(changed, at % changed.length);
          same(changed, 0, c);
        },
      ),
      fcParameters(),
    );
  });

  it('reads a record in the middle of a buffer, and a batch of records one after another', () => {
    const c: BatchContext = {
      firstOffset: '41',
      firstTimestamp: '1764900000000',
      magicByte: 2,
      isControlBatch: false,
      timestampType: 0,
      maxTimestamp: '1764900000050',
    };
    const one = recordBytes({
      attributes: 0,
      timestampDelta: 3n,
      offsetDelta: 1,
      key: Buffer.from('/topic/a'),
      value: Buffer.from('hello'),
      headers: [
        [Buffer.from('stompbus-headers'), Buffer.from('id\ncontent-type:text/plain')],
        [Buffer.from('x'), Buffer.from('1')],
        [Buffer.from('x'), Buffer.from('2')],
      ],
    });
    const padded = Buffer.concat([Buffer.from([9, 9, 9]), one]);
    expect(same(padded, 3, c)).toBe(true);
    const decoded = decodeRecord(Object.assign(new Decoder(one), { offset: 0 }), c);
    expect(decoded?.offset).toBe('42');
    expect(decoded?.timestamp).toBe('1764900000003');
    expect(decoded?.headers.x).toEqual([Buffer.from('1'), Buffer.from('2')]);
  });
});
