/**
 * A fetched record read without kafkajs 2.2.4's BigInt arithmetic, in the place of its record
 * decoder ({@link useRecordDecoding}).
 *
 * kafkajs reads each record of a fetched batch with 64-bit `Long`s (BigInt): the timestamp
 * delta as a varlong built byte by byte, the batch's first offset and first timestamp parsed
 * from their decimal strings again for every record, and the headers folded into an object
 * that is copied once per header. {@link decodeRecord} returns the same object (the same
 * fields in the same order, the same strings, views into the same bytes) with number
 * arithmetic where the values are exact as numbers: offsets and timestamps below 2^53,
 * varlongs of up to 7 bytes. Any other record (larger numbers, bytes that end early, a
 * negative length other than -1) is read by kafkajs' own decoder, which gives its own answer
 * or its own error. A spec compares the two on arbitrary and on damaged bytes.
 */
import { type Outcome, replaceKafkajsExport } from './kafkajs-fixes.js';

/** kafkajs' Decoder, as far as a record's reading uses it. */
export interface RecordDecoderInput {
  buffer: Buffer;
  offset: number;
}

/** What kafkajs gives each record of a batch (`batchContext`). */
export interface BatchContext {
  firstOffset: string;
  firstTimestamp: string;
  magicByte?: number;
  isControlBatch?: boolean;
  timestampType?: number;
  maxTimestamp?: string;
}

/** A record as kafkajs' record decoder returns it. */
export interface DecodedRecord {
  magicByte: number | undefined;
  attributes: number;
  timestamp: string;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, unknown>;
  isControlRecord: boolean;
  batchContext: BatchContext;
}

type KafkajsRecordDecoder = (decoder: RecordDecoderInput, context: BatchContext) => DecodedRecord;

/** kafkajs' `TimestampTypes.LOG_APPEND_TIME`. */
const LOG_APPEND_TIME = 1;
/** A varlong of more bytes than this may not be exact as a number: kafkajs reads it. */
const MAX_VARLONG_BYTES = 7;

/** The batch context read last, and its first offset and timestamp as numbers (or NaN). */
let lastContext: BatchContext | undefined;
let firstOffset = Number.NaN;
let firstTimestamp = Number.NaN;

function exact(decimal: string): number {
  const n = Number(decimal);
  return Number.isSafeInteger(n) && String(n) === decimal ? n : Number.NaN;
}

/** Where a read stopped short: the caller hands the record to kafkajs. */
const GIVE_UP = -2;
/** The read position in the record's bytes (one record is read at a time, synchronously). */
let at = 0;

/** kafkajs' own varint reading, operation for operation; NaN past the end. */
function varInt(buf: Buffer, end: number): number {
  let result = 0;
  let i = 0;
  let current: number;
  do {
    if (at >= end) return Number.NaN;
    current = buf[at++] as number;
    result += (current & 0x7f) << i;
    i += 7;
  } while (current >= 0x80);
  return (result >>> 1) ^ -(result & 1);
}

/** The bytes of a field of `length` at the read position (null for -1), moving past them. */
function take(buf: Buffer, length: number): Buffer | null {
  if (length < 0) return null;
  const start = at;
  at += length;
  return buf.slice(start, at);
}

/** A length-prefixed field's length (-1: none), or GIVE_UP when kafkajs must read it. */
function fieldLength(buf: Buffer, end: number): number {
  const length = varInt(buf, end);
  return length === -1 || (length >= 0 && at + length <= end) ? length : GIVE_UP;
}

/**
 * The record at `decoder.offset`, as kafkajs' record decoder (2.2.4) returns it, or
 * `undefined` where that decoder must read it (see the top of this file). Advances
 * `decoder.offset` past the record only when it returns one.
 */
export function decodeRecord(
  decoder: RecordDecoderInput,
  context: BatchContext,
): DecodedRecord | undefined {
  const buf = decoder.buffer;
  const end = buf.length;
  at = decoder.offset;
  if (context !== lastContext) {
    lastContext = context;
    firstOffset = exact(context.firstOffset);
    firstTimestamp = exact(context.firstTimestamp);
  }
  if (Number.isNaN(firstOffset) || at >= end) return undefined;
  const attributes = buf.readInt8(at++);

  // The timestamp delta: a zigzag varlong, exact as a number up to 7 bytes (49 bits).
  let long = 0;
  let scale = 1;
  let byte: number;
  let bytes = 0;
  do {
    if (at >= end || bytes === MAX_VARLONG_BYTES) return undefined;
    byte = buf[at++] as number;
    long += (byte & 0x7f) * scale;
    scale *= 128;
    bytes++;
  } while (byte >= 0x80);
  const timestampDelta = long % 2 === 0 ? long / 2 : -(long + 1) / 2;
  const { maxTimestamp } = context;
  let timestamp: string;
  if (context.timestampType === LOG_APPEND_TIME && maxTimestamp) {
    timestamp = maxTimestamp;
  } else {
    const sum = firstTimestamp + timestampDelta;
    if (!Number.isSafeInteger(sum)) return undefined;
    timestamp = String(sum);
  }

  const offsetDelta = varInt(buf, end);
  const offsetSum = firstOffset + offsetDelta;
  if (!Number.isSafeInteger(offsetSum)) return undefined;
  const keyLength = fieldLength(buf, end);
  if (keyLength === GIVE_UP) return undefined;
  const key = take(buf, keyLength);
  const valueLength = fieldLength(buf, end);
  if (valueLength === GIVE_UP) return undefined;
  const value = take(buf, valueLength);

  const count = varInt(buf, end);
  if (!(count >= -1)) return undefined;
  const headers: Record<string, unknown> = {};
  for (let h = 0; h < count; h++) {
    const nameLength = fieldLength(buf, end);
    if (nameLength === GIVE_UP) return undefined;
    // A header without a name is named "null", as kafkajs' object makes it.
    const name = nameLength < 0 ? 'null' : buf.toString('utf8', at, at + nameLength);
    if (nameLength > 0) at += nameLength;
    const length = fieldLength(buf, end);
    if (length === GIVE_UP) return undefined;
    const headerValue = take(buf, length);
    // kafkajs folds the headers as `{...obj, [name]: …}`: a repeated name becomes an array,
    // a name the object inherits (`toString`) starts from the inherited value, and
    // `__proto__` is a property of its own.
    const had = headers[name];
    const next =
      had === undefined
        ? headerValue
        : Array.isArray(had)
          ? had.concat([headerValue])
          : [had, headerValue];
    if (name === '__proto__') {
      Object.defineProperty(headers, name, {
        value: next,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else {
      headers[name] = next;
    }
  }
  decoder.offset = at;
  return {
    magicByte: context.magicByte,
    attributes,
    timestamp,
    offset: String(offsetSum),
    key,
    value,
    headers,
    isControlRecord: context.isControlBatch === undefined ? false : context.isControlBatch,
    batchContext: context,
  };
}

let installed: Outcome | undefined;

/** Records read since {@link useRecordDecoding}: by this file, by kafkajs. */
export const recordDecodings = { ours: 0, kafkajs: 0 };

/**
 * Puts {@link decodeRecord} in the place of kafkajs 2.2.4's record decoder, for the records it
 * reads; kafkajs reads the others as before. Call it before kafkajs decodes its first fetched
 * batch (its batch decoder takes the record decoder when it loads, at the first fetch). Says
 * what it did (once per process).
 */
export function useRecordDecoding(): Outcome {
  if (installed !== undefined) return installed === 'applied' ? 'already' : installed;
  installed = replaceKafkajsExport<KafkajsRecordDecoder>(
    'src/protocol/recordBatch/record/v0/decoder.js',
    ['src/protocol/recordBatch/v0/decoder.js'],
    'readVarIntArray(HeaderDecoder)',
    (original) =>
      function readRecord(decoder, context) {
        const record = decodeRecord(decoder, context);
        if (record) {
          recordDecodings.ours++;
          return record;
        }
        recordDecodings.kafkajs++;
        return original(decoder, context);
      },
  );
  return installed;
}
