/**
 * The Produce request's bytes written in one pass into one buffer, in the place of kafkajs
 * 2.2.4's encoding of them ({@link useProduceEncoding}).
 *
 * kafkajs encodes a Produce request (versions 3 to 7 share one encoder) record by record:
 * each record and each of its headers gets an encoder of its own with a zero-filled
 * 512-byte buffer, every varint is an array turned into a buffer, every 64-bit number a
 * BigInt, and the bytes are copied again at each level (record, batch, partition, topic).
 * That is about 10 µs of CPU per 300-byte record, most of what a publishing instance spends
 * per message. {@link encodeProduceRequest} writes the same bytes (the same request, byte for
 * byte: a spec compares the two on arbitrary requests) after one pass that counts them, and
 * computes the batch's CRC-32C eight bytes at a time.
 *
 * It takes the requests kafkajs' producer makes from plain records: no compression, no
 * record timestamps (kafkajs stamps the batch with the time of encoding), keys and values
 * that are strings, Buffers or absent, headers whose values are strings or Buffers (or
 * arrays of them). Any other request (a compressed one, say) is left to kafkajs' own
 * encoding, unchanged.
 */
import { createRequire } from 'node:module';
import { type Outcome, replaceKafkajsExport } from './kafkajs-fixes.js';

/** kafkajs' Long, as far as the encoding uses it. */
interface LongLike {
  getHighBits(): number;
  getLowBits(): number;
}
interface LongModule {
  fromValue(value: unknown): LongLike;
  fromInt(value: number): LongLike;
}

/** A record as kafkajs' producer hands it to the encoding. */
export interface ProduceMessage {
  key?: unknown;
  value?: unknown;
  headers?: unknown;
  timestamp?: unknown;
}

/** The arguments of kafkajs' Produce request (v3 to v7). */
export interface ProduceRequestArgs {
  acks: number;
  timeout: number;
  transactionalId?: string | null;
  producerId?: unknown;
  producerEpoch?: number;
  compression?: number;
  topicData: ReadonlyArray<{
    topic: string;
    partitions: ReadonlyArray<{
      partition: number;
      firstSequence?: number;
      messages: readonly ProduceMessage[];
    }>;
  }>;
}

const MAGIC = 2;
const TRANSACTIONAL = 16;
/** The batch's fields from its attributes to its record count. */
const BATCH_FIXED = 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4;
/** A partition's fields before the batch's attributes. */
const PARTITION_FIXED = 4 + 4 + 8 + 4 + 4 + 1 + 4;

let long: LongModule | undefined;
function longs(): LongModule {
  long ??= createRequire(import.meta.url)('kafkajs/src/utils/long.js') as LongModule;
  return long;
}

/** The CRC-32C tables for eight bytes at a time (Castagnoli, reflected). */
const CRC_TABLES = (() => {
  const tables = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    tables[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = tables[n] ?? 0;
    for (let t = 1; t < 8; t++) {
      c = (tables[c & 0xff] ?? 0) ^ (c >>> 8);
      tables[t * 256 + n] = c;
    }
  }
  return tables;
})();

/** CRC-32C of `bytes[start, end)`, as an unsigned number (what Kafka's batch header holds). */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  const t = CRC_TABLES;
  let crc = -1;
  let i = start;
  for (const last = end - 8; i <= last; i += 8) {
    const one =
      crc ^
      ((bytes[i] as number) |
        ((bytes[i + 1] as number) << 8) |
        ((bytes[i + 2] as number) << 16) |
        ((bytes[i + 3] as number) << 24));
    const two =
      (bytes[i + 4] as number) |
      ((bytes[i + 5] as number) << 8) |
      ((bytes[i + 6] as number) << 16) |
      ((bytes[i + 7] as number) << 24);
    crc =
      (t[1792 + (one & 0xff)] as number) ^
      (t[1536 + ((one >>> 8) & 0xff)] as number) ^
      (t[1280 + ((one >>> 16) & 0xff)] as number) ^
      (t[1024 + (one >>> 24)] as number) ^
      (t[768 + (two & 0xff)] as number) ^
      (t[512 + ((two >>> 8) & 0xff)] as number) ^
      (t[256 + ((two >>> 16) & 0xff)] as number) ^
      (t[two >>> 24] as number);
  }
  for (; i < end; i++) crc = (t[(crc ^ (bytes[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** Bytes of a zigzag varint (kafkajs' `sizeOfVarInt`, for 32-bit values). */
function varIntSize(value: number): number {
  let v = (value << 1) ^ (value >> 31);
  let bytes = 1;
  while ((v & 0xffffff80) !== 0) {
    bytes++;
    v >>>= 7;
  }
  return bytes;
}

function writeVarInt(buf: Buffer, at: number, value: number): number {
  let v = (value << 1) ^ (value >> 31);
  let o = at;
  while ((v & 0xffffff80) !== 0) {
    buf[o++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[o++] = v & 0x7f;
  return o;
}

/** Byte length of a key, value or header value; -1 for none; -2 where the fast path stops. */
function bytesLength(value: unknown): number {
  if (value === null || value === undefined) return -1;
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (Buffer.isBuffer(value)) return value.length;
  return -2;
}

function writeBytes(buf: Buffer, at: number, value: unknown, length: number): number {
  const o = writeVarInt(buf, at, length);
  if (length <= 0) return o;
  if (typeof value === 'string') return o + buf.write(value, o, length, 'utf8');
  (value as Buffer).copy(buf, o);
  return o + length;
}

/** Bytes of a record's headers with their count; -1 where the fast path stops. */
function headersSize(headers: unknown): number {
  if (headers === undefined) return 1;
  if (headers === null || typeof headers !== 'object' || Buffer.isBuffer(headers)) return -1;
  let count = 0;
  let size = 0;
  const record = headers as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    const value = record[name];
    const nameSize = Buffer.byteLength(name);
    if (Array.isArray(value)) {
      for (const one of value) {
        const length = bytesLength(one);
        if (length < 0) return -1;
        size += varIntSize(nameSize) + nameSize + varIntSize(length) + length;
        count++;
      }
    } else {
      const length = bytesLength(value);
      if (length < 0) return -1;
      size += varIntSize(nameSize) + nameSize + varIntSize(length) + length;
      count++;
    }
  }
  return varIntSize(count) + size;
}

function writeHeaders(buf: Buffer, at: number, headers: unknown): number {
  if (headers === undefined) return writeVarInt(buf, at, 0);
  const record = headers as Record<string, unknown>;
  const names = Object.keys(record);
  let count = 0;
  for (const name of names) {
    const value = record[name];
    count += Array.isArray(value) ? value.length : 1;
  }
  let o = writeVarInt(buf, at, count);
  for (const name of names) {
    const value = record[name];
    for (const one of Array.isArray(value) ? value : [value]) {
      o = writeBytes(buf, o, name, Buffer.byteLength(name));
      o = writeBytes(buf, o, one, bytesLength(one));
    }
  }
  return o;
}

const { getPrototypeOf, prototype: OBJECT } = Object;
const enumerable = Object.prototype.propertyIsEnumerable;

/**
 * A record kafkajs reads as this encoding does: a plain object whose key, value and headers,
 * where present, are its own enumerable properties (kafkajs copies the record with `{...}`,
 * which keeps only those).
 */
function isPlainRecord(message: ProduceMessage): boolean {
  if (message === null || typeof message !== 'object') return false;
  const proto = getPrototypeOf(message);
  if (proto !== OBJECT && proto !== null) return false;
  return (
    (message.key === undefined || enumerable.call(message, 'key')) &&
    (message.value === undefined || enumerable.call(message, 'value')) &&
    (message.headers === undefined || enumerable.call(message, 'headers'))
  );
}

/** A record's body size (what its length varint says), or -1 where the fast path stops. */
function recordBodySize(message: ProduceMessage, offsetDelta: number): number {
  if (!isPlainRecord(message)) return -1;
  if (message.timestamp !== undefined && message.timestamp !== null) return -1;
  const key = bytesLength(message.key);
  const value = bytesLength(message.value);
  const headers = headersSize(message.headers);
  if (key === -2 || value === -2 || headers < 0) return -1;
  return (
    // attributes, timestamp delta (0)
    2 +
    varIntSize(offsetDelta) +
    varIntSize(key) +
    Math.max(key, 0) +
    varIntSize(value) +
    Math.max(value, 0) +
    headers
  );
}

function writeInt64(buf: Buffer, at: number, value: LongLike): void {
  buf.writeInt32BE(value.getHighBits(), at);
  buf.writeInt32BE(value.getLowBits(), at + 4);
}

/**
 * The Produce request body (v3-v7) kafkajs 2.2.4 would encode for `args`, byte for byte, or
 * `undefined` where the request is not one this encoding takes (see the top of this file).
 * `now` stamps each batch, as kafkajs' `Date.now()` does.
 */
export function encodeProduceRequest(
  args: ProduceRequestArgs,
  now: () => number = Date.now,
): Buffer | undefined {
  const { acks, timeout, topicData } = args;
  const transactionalId = args.transactionalId ?? null;
  // kafkajs' defaults stand in for `undefined` only (`null` compression fails there).
  if (args.compression !== undefined && args.compression !== 0) return undefined;
  if (typeof acks !== 'number' || typeof timeout !== 'number') return undefined;
  if (transactionalId !== null && typeof transactionalId !== 'string') return undefined;
  if (!Array.isArray(topicData)) return undefined;

  // Counting: every record's body size, kept for the writing pass.
  const bodySizes: number[] = [];
  let total = 2 + (transactionalId === null ? 0 : Buffer.byteLength(transactionalId)) + 2 + 4 + 4;
  for (const { topic, partitions } of topicData) {
    if (typeof topic !== 'string' || !Array.isArray(partitions)) return undefined;
    total += 2 + Buffer.byteLength(topic) + 4;
    for (const { messages } of partitions) {
      if (!Array.isArray(messages)) return undefined;
      total += PARTITION_FIXED + BATCH_FIXED;
      for (let i = 0; i < messages.length; i++) {
        const body = recordBodySize(messages[i] as ProduceMessage, i);
        if (body < 0) return undefined;
        bodySizes.push(body);
        total += varIntSize(body) + body;
      }
    }
  }

  const Long = longs();
  const producerId = Long.fromValue(
    args.producerId === undefined ? Long.fromInt(-1) : args.producerId,
  );
  const producerEpoch = args.producerEpoch ?? 0;
  const attributes = transactionalId ? TRANSACTIONAL : 0;
  const buf = Buffer.allocUnsafe(total);
  let o = 0;
  if (transactionalId === null) {
    o = buf.writeInt16BE(-1, o);
  } else {
    o = buf.writeInt16BE(Buffer.byteLength(transactionalId), o);
    o += buf.write(transactionalId, o, 'utf8');
  }
  o = buf.writeInt16BE(acks, o);
  o = buf.writeInt32BE(timeout, o);
  o = buf.writeInt32BE(topicData.length, o);
  let record = 0;
  for (const { topic, partitions } of topicData) {
    o = buf.writeInt16BE(Buffer.byteLength(topic), o);
    o += buf.write(topic, o, 'utf8');
    o = buf.writeInt32BE(partitions.length, o);
    for (const { partition, firstSequence, messages } of partitions) {
      o = buf.writeInt32BE(partition, o);
      const sizeAt = o;
      // The batch: first offset 0, its length, the leader epoch 0, magic, CRC, then the body.
      o += 4;
      o = buf.writeInt32BE(0, o);
      o = buf.writeInt32BE(0, o);
      const lengthAt = o;
      o += 4;
      o = buf.writeInt32BE(0, o);
      o = buf.writeInt8(MAGIC, o);
      const crcAt = o;
      o += 4;
      const bodyAt = o;
      const timestamp = Long.fromValue(now());
      o = buf.writeInt16BE(attributes, o);
      o = buf.writeInt32BE(messages.length - 1, o);
      writeInt64(buf, o, timestamp);
      writeInt64(buf, o + 8, timestamp);
      writeInt64(buf, o + 16, producerId);
      o += 24;
      o = buf.writeInt16BE(producerEpoch, o);
      o = buf.writeInt32BE(firstSequence ?? 0, o);
      o = buf.writeInt32BE(messages.length, o);
      for (let i = 0; i < messages.length; i++) {
        const message = messages[i] as ProduceMessage;
        o = writeVarInt(buf, o, bodySizes[record++] as number);
        buf[o++] = 0;
        buf[o++] = 0;
        o = writeVarInt(buf, o, i);
        o = writeBytes(buf, o, message.key, bytesLength(message.key));
        o = writeBytes(buf, o, message.value, bytesLength(message.value));
        o = writeHeaders(buf, o, message.headers);
      }
      buf.writeUInt32BE(crc32c(buf, bodyAt, o), crcAt);
      buf.writeInt32BE(o - lengthAt - 4, lengthAt);
      buf.writeInt32BE(o - sizeAt - 4, sizeAt);
    }
  }
  if (o !== total) throw new Error(`produce encoding: wrote ${o} bytes of ${total}`);
  return buf;
}

let installed: Outcome | undefined;

/** Produce requests encoded since {@link useProduceEncoding}: by this file, by kafkajs. */
export const produceEncodings = { ours: 0, kafkajs: 0 };

interface KafkajsRequest {
  encode(): Promise<unknown>;
}
type ProduceRequest = (args: ProduceRequestArgs) => KafkajsRequest;

/**
 * Puts {@link encodeProduceRequest} in the place of kafkajs 2.2.4's Produce request encoding
 * (versions 3 to 7), for the requests it takes; kafkajs encodes the others as before. Call it
 * before kafkajs sends its first Produce request: versions 4 to 7 take version 3's function
 * when they load, which is at the first request. Says what it did (once per process).
 */
export function useProduceEncoding(): Outcome {
  if (installed !== undefined) return installed === 'applied' ? 'already' : installed;
  installed = replaceKafkajsExport<ProduceRequest>(
    'src/protocol/requests/produce/v3/request.js',
    [4, 5, 6, 7].map((v) => `src/protocol/requests/produce/v${v}/request.js`),
    'topicEncoder(compression)',
    (original) => {
      const Encoder = createRequire(import.meta.url)('kafkajs/src/protocol/encoder.js') as {
        prototype: object;
      };
      return function produceRequest(args) {
        const request = original(args);
        const encode = request.encode;
        request.encode = async () => {
          const bytes = encodeProduceRequest(args);
          if (!bytes) {
            produceEncodings.kafkajs++;
            return encode();
          }
          produceEncodings.ours++;
          // A kafkajs Encoder holding the bytes, as the request framing reads one.
          return Object.assign(Object.create(Encoder.prototype) as object, {
            buf: bytes,
            offset: bytes.length,
          });
        };
        return request;
      };
    },
  );
  return installed;
}
