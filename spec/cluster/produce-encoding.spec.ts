import { createRequire } from 'node:module';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  crc32c,
  encodeProduceRequest,
  type ProduceRequestArgs,
} from '../../src/cluster/produce-encoding.js';
import { fcParameters, propertyTimeout } from '../helpers/fast-check.js';

const require = createRequire(import.meta.url);
/** kafkajs' own Produce request v3 (what versions 4 to 7 use), its Long and its CRC-32C. */
const kafkajsRequest = require('kafkajs/src/protocol/requests/produce/v3/request.js') as (
  args: ProduceRequestArgs,
) => { encode(): Promise<{ buffer: Buffer }> };
const Long = require('kafkajs/src/utils/long.js') as { fromValue(v: unknown): unknown };
const kafkajsCrc = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (
  b: Buffer,
) => number;

const NOW = 1_764_900_000_123;

/** kafkajs' bytes for `args`, its clock stopped at NOW. */
async function kafkajsBytes(args: ProduceRequestArgs): Promise<Buffer> {
  const clock = vi.spyOn(Date, 'now').mockReturnValue(NOW);
  try {
    return Buffer.from((await kafkajsRequest(args).encode()).buffer);
  } finally {
    clock.mockRestore();
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

// Every UTF-16 unit, lone surrogates included: both sides must write them the same way.
const text = fc.string({
  unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  maxLength: 12,
});
const bytes = fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b));
const keyOrValue = fc.oneof(text, bytes, fc.constant(null));
const headerValue = fc.oneof(text, bytes);
const headers = fc.option(
  fc.dictionary(text, fc.oneof(headerValue, fc.array(headerValue, { maxLength: 3 })), {
    maxKeys: 4,
  }),
  { nil: undefined },
);
const message = fc.record(
  { key: fc.oneof(keyOrValue, fc.constant(undefined)), value: keyOrValue, headers },
  { requiredKeys: ['value'] },
);
const request: fc.Arbitrary<ProduceRequestArgs> = fc.record({
  acks: fc.constantFrom(-1, 0, 1),
  timeout: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  transactionalId: fc.option(text, { nil: undefined }),
  producerId: fc.option(
    fc.bigInt({ min: -1n, max: 2n ** 63n - 1n }).map((v) => Long.fromValue(v)),
    { nil: undefined },
  ),
  producerEpoch: fc.oneof(
    fc.constant(undefined),
    fc.constant(null as unknown as number),
    fc.integer({ min: 0, max: 32_767 }),
  ),
  compression: fc.constantFrom(undefined, 0),
  topicData: fc.array(
    fc.record({
      topic: text,
      partitions: fc.array(
        fc.record({
          partition: fc.nat({ max: 10_000 }),
          firstSequence: fc.oneof(
            fc.constant(undefined),
            fc.constant(null as unknown as number),
            fc.nat({ max: 2 ** 31 - 1 }),
          ),
          messages: fc.array(message, { maxLength: 160 }),
        }),
        { maxLength: 3 },
      ),
    }),
    { maxLength: 3 },
  ),
});

describe("stompbus's Produce request encoding", () => {
  it(
    "writes kafkajs' bytes for every request it takes (property; keys, values and headers of every kind, idempotent and transactional)",
    async () => {
      await fc.assert(
        fc.asyncProperty(request, async (args) => {
          const ours = encodeProduceRequest(args, () => NOW);
          expect(ours).toBeDefined();
          expect(ours?.toString('hex')).toBe((await kafkajsBytes(args)).toString('hex'));
        }),
        fcParameters(0.5),
      );
    },
    propertyTimeout,
  );

  it('writes the varints of long records (a record over 127 and over 16,383 bytes, offsets past 127)', async () => {
    const messages = Array.from({ length: 300 }, (_, i) => ({
      key: `k${i}`,
      value: Buffer.alloc(i === 5 ? 20_000 : i, i),
      headers: { h: 'é'.repeat(i) },
    }));
    const args = {
      acks: -1,
      timeout: 30_000,
      topicData: [{ topic: 't', partitions: [{ partition: 0, messages }] }],
    };
    expect(encodeProduceRequest(args, () => NOW)?.equals(await kafkajsBytes(args))).toBe(true);
  });

  it('leaves to kafkajs what it does not take: compression, record timestamps, keys, values or headers of other types', () => {
    const base = { acks: -1, timeout: 30_000 };
    const withMessage = (m: object, extra: object = {}) => ({
      ...base,
      ...extra,
      topicData: [{ topic: 't', partitions: [{ partition: 0, messages: [m] }] }],
    });
    expect(encodeProduceRequest(withMessage({ value: 'v' }), () => NOW)).toBeDefined();
    expect(encodeProduceRequest(withMessage({ value: 'v' }, { compression: 1 }))).toBeUndefined();
    // kafkajs fails on a null compression (its default stands in for undefined only).
    expect(
      encodeProduceRequest(withMessage({ value: 'v' }, { compression: null })),
    ).toBeUndefined();
    // kafkajs copies a record with {...}: only its own enumerable properties count there.
    const inherited = Object.create({ value: 'v' }) as object;
    const getter = new (class {
      get value() {
        return 'v';
      }
    })();
    const hidden = Object.defineProperty({ value: 'v' }, 'key', { value: 'k', enumerable: false });
    for (const odd of [inherited, getter, hidden]) {
      expect(encodeProduceRequest(withMessage(odd))).toBeUndefined();
    }
    expect(
      encodeProduceRequest(withMessage(Object.assign(Object.create(null), { value: 'v' }))),
    ).toBeDefined();
    expect(encodeProduceRequest(withMessage({ value: 'v', timestamp: '1' }))).toBeUndefined();
    expect(encodeProduceRequest(withMessage({ value: 1 }))).toBeUndefined();
    expect(encodeProduceRequest(withMessage({ value: 'v', key: 7 }))).toBeUndefined();
    expect(encodeProduceRequest(withMessage({ value: new Uint8Array(2) }))).toBeUndefined();
    expect(encodeProduceRequest(withMessage({ value: 'v', headers: { h: null } }))).toBeUndefined();
    expect(encodeProduceRequest(withMessage({ value: 'v', headers: { h: [1] } }))).toBeUndefined();
    expect(encodeProduceRequest(withMessage({ value: 'v', headers: null }))).toBeUndefined();
    expect(encodeProduceRequest(withMessage({ value: 'v', headers: 'h' }))).toBeUndefined();
  });

  it("computes kafkajs' CRC-32C over any bytes and any range of them (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (array, a, b) => {
        const buffer = Buffer.from(array);
        const start = array.length ? a % (array.length + 1) : 0;
        const end = start + (array.length - start ? b % (array.length - start + 1) : 0);
        expect(crc32c(buffer, start, end)).toBe(kafkajsCrc(buffer.subarray(start, end)));
      }),
      fcParameters(),
    );
    // The check value of CRC-32C.
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });
});
