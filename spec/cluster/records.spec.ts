import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTransportHeader, type Message, newMessage } from '../../src/broker/message.js';
import { EncodedMessage } from '../../src/broker/message-frame.js';
import type { ConsumedRecord, ProducedRecord } from '../../src/cluster/kafka-client.js';
import {
  MESSAGE_ID_HEADER,
  PACKED_HEADER,
  packHeaders,
  RecordMapper,
  unpackHeaders,
} from '../../src/cluster/records.js';
import { parseArgs } from '../../src/config.js';
import { DEFAULT_SERVER_OPTIONS } from '../../src/server.js';
import { outgoing } from './harness.js';

/** The tail the MESSAGE encoder makes of a message from its fields (no bytes passed on). */
function slowTail(message: Message): Buffer {
  const { id, destination, headers, body, position, at, replayed } = message;
  return new EncodedMessage(
    newMessage(id, destination, headers, body, position, at, replayed),
  ).tail('1.2');
}

const topics = { topic: 't', usersTopic: 't.users', bridges: { prices: '/topic/prices' } };

/** What a consumer reads back of a produced record, at `offset` of partition 2. */
function consumed(record: ProducedRecord, offset = 7): ConsumedRecord {
  return {
    topic: record.topic,
    partition: 2,
    offset: String(offset),
    key: record.key == null ? null : Buffer.from(record.key),
    value: record.value,
    timestamp: 1_700_000_000_000,
    headers: record.headers.map(([n, v]) => [n, Buffer.from(v)]),
  };
}

const HOSTILE: Array<[string, string]> = [
  ['x-colon', 'a:b:c'],
  ['x-lines', 'one\ntwo\r\nthree'],
  ['x-back', 'C:\\path\\n'],
  ['x:odd\nname', 'v'],
  ['x-empty', ''],
  ['x-utf8', 'grüße ✓ 🚀'],
  ['x-repeated', 'first'],
  ['x-repeated', 'second'],
];

describe('record format', () => {
  it('packs a message id and its headers into one record header and reads them back exactly', () => {
    const packed = packHeaders('id:1\n', HOSTILE);
    // No raw line break or colon of a value survives: one line per header.
    expect(packed.split('\n')).toHaveLength(HOSTILE.length + 1);
    expect(unpackHeaders(Buffer.from(packed))).toEqual({ id: 'id:1\n', headers: HOSTILE });
  });

  it('reads back any id and headers (property)', () => {
    const text = fc.string({ unit: 'binary', maxLength: 20 });
    fc.assert(
      fc.property(
        text,
        fc.array(
          fc.tuple(
            text.filter((n) => n !== ''),
            text,
          ),
        ),
        (id, headers) => {
          expect(unpackHeaders(Buffer.from(packHeaders(id, headers)))).toEqual({ id, headers });
        },
      ),
    );
  });

  it('writes one packed header by default and maps the record back to the same message', () => {
    const mapper = new RecordMapper(topics);
    const message = outgoing('/topic/a', 'body', HOSTILE);
    const record = mapper.toRecord(message);
    expect(record.topic).toBe('t');
    expect(record.key).toBe('/topic/a');
    expect(record.headers.map(([n]) => n)).toEqual([PACKED_HEADER]);
    const back = mapper.toMessage(consumed(record), false);
    expect(back?.id).toBe(message.id);
    expect(back?.destination).toBe('/topic/a');
    expect(back?.headers).toEqual(HOSTILE);
    expect(Buffer.from(back?.body ?? []).toString()).toBe('body');
  });

  it('writes one record header per STOMP header with `each`, and either format reads both', () => {
    const each = new RecordMapper(topics, 'each');
    const packed = new RecordMapper(topics, 'packed');
    const message = outgoing('/user/ann/queue/inbox', 'hi', [['x-a', '1']]);
    const record = each.toRecord(message);
    expect(record.topic).toBe('t.users');
    expect(record.partitionKey).toBe('/user/ann');
    expect(record.headers).toEqual([
      ['x-a', '1'],
      [MESSAGE_ID_HEADER, message.id],
    ]);
    for (const reader of [each, packed]) {
      const back = reader.toMessage(consumed(record), false);
      expect(back?.id).toBe(message.id);
      expect(back?.headers).toEqual([['x-a', '1']]);
    }
    const packedRecord = packed.toRecord(message);
    expect(each.toMessage(consumed(packedRecord), false)?.headers).toEqual([['x-a', '1']]);
    expect(each.toMessage(consumed(packedRecord), false)?.id).toBe(message.id);
  });

  it("drops a SEND's own stompbus-headers header, like the other headers only stompbus writes", () => {
    const mapper = new RecordMapper(topics);
    const message = outgoing('/topic/a', 'x', [
      [PACKED_HEADER, 'forged\nx-admin:true'],
      [MESSAGE_ID_HEADER, 'forged'],
      ['x-kept', 'yes'],
    ]);
    const back = mapper.toMessage(consumed(mapper.toRecord(message)), false);
    expect(back?.id).toBe(message.id);
    expect(back?.headers).toEqual([['x-kept', 'yes']]);
  });

  it('keeps one record header per STOMP header on a bridged topic, and reads a packed-looking header there as an ordinary one', () => {
    const mapper = new RecordMapper(topics);
    const record = mapper.toRecord(outgoing('/topic/prices', '1.5', [['x-a', '1']]));
    expect(record.topic).toBe('prices');
    expect(record.headers.map(([n]) => n)).toEqual(['x-a', MESSAGE_ID_HEADER]);
    // Another application's record on the bridged topic: its headers are its own.
    const foreign: ConsumedRecord = {
      ...consumed(record),
      headers: [[PACKED_HEADER, Buffer.from('x\ny:z')]],
    };
    expect(mapper.toMessage(foreign, false)?.headers).toContainEqual([PACKED_HEADER, 'x\ny:z']);
    // …and no id of ours: its position is its id, so two such records are never copies.
    expect(mapper.toMessage(foreign, false)?.id).toBe('prices-2-7');
  });

  it('takes an empty packed id for none: an id from the position', () => {
    const mapper = new RecordMapper(topics);
    const record: ConsumedRecord = {
      topic: 't',
      partition: 0,
      offset: '5',
      key: Buffer.from('/topic/a'),
      value: Buffer.from('v'),
      timestamp: 0,
      headers: [[PACKED_HEADER, Buffer.from('\nx-a:1')]],
    };
    expect(mapper.toMessage(record, false)?.id).toBe('t-0-5');
    expect(mapper.toMessage(record, false)?.headers).toEqual([['x-a', '1']]);
  });

  it('reads a record of the topics topic that a plain Kafka producer wrote (no id: one from its position)', () => {
    const mapper = new RecordMapper(topics);
    const back = mapper.toMessage(
      {
        topic: 't',
        partition: 1,
        offset: '42',
        key: Buffer.from('/topic/a'),
        value: Buffer.from('v'),
        timestamp: 0,
        headers: [['x-plain', Buffer.from('1')]],
      },
      false,
    );
    expect(back?.id).toBe('t-1-42');
    expect(back?.headers).toEqual([['x-plain', '1']]);
  });

  it('passes a packed record on as its 1.2 MESSAGE tail, byte for byte what the encoder makes of it', () => {
    const mapper = new RecordMapper(topics);
    const message = outgoing('/topic/a', 'body', [...HOSTILE, ['content-type', 'text/plain']]);
    const back = mapper.toMessage(consumed(mapper.toRecord(message)), false) as Message;
    expect(back.tail12).toBeDefined();
    expect(back.headers).toEqual([...HOSTILE, ['content-type', 'text/plain']]);
    expect(Buffer.from(back.body).toString()).toBe('body');
    expect(new EncodedMessage(back).tail('1.2')).toEqual(slowTail(back));
    // Other modes are encoded from the headers, as for any message.
    expect(new EncodedMessage(back).tail('1.1').toString()).toContain('x-colon:a\\cb\\cc\n');
  });

  it('passes on exactly what reading header by header gives, for any packed bytes (property)', () => {
    const mapper = new RecordMapper(topics);
    const text = fc.string({ unit: 'binary', maxLength: 12 });
    const wellFormed = fc
      .tuple(text, fc.array(fc.tuple(text, text), { maxLength: 4 }))
      .map(([id, headers]) => Buffer.from(packHeaders(id, headers)));
    // Raw bytes, and well-formed text with a byte changed: colons, escapes, CR, LF, UTF-8.
    const tampered = fc
      .tuple(wellFormed, fc.nat(), fc.constantFrom(0x3a, 0x5c, 0x0d, 0x0a, 0xff, 0xc3, 0x63))
      .map(([bytes, at, byte]) => {
        const copy = Buffer.from(bytes);
        if (copy.length > 0) copy[at % copy.length] = byte;
        return copy;
      });
    const transport = fc
      .tuple(text, fc.constantFrom('destination', 'ack', 'x-position', 'content-length'))
      .map(([id, name]) =>
        Buffer.from(
          packHeaders(id, [
            ['a', '1'],
            [name, 'v'],
          ]),
        ),
      );
    const packed = fc.oneof(wellFormed, tampered, transport, fc.uint8Array({ maxLength: 40 }));
    fc.assert(
      fc.property(packed, fc.uint8Array({ maxLength: 8 }), (bytes, body) => {
        const record: ConsumedRecord = {
          topic: 't',
          partition: 3,
          offset: '19',
          key: Buffer.from('/topic/a'),
          value: Buffer.from(body),
          timestamp: 5,
          headers: [[PACKED_HEADER, Buffer.from(bytes)]],
        };
        const back = mapper.toMessage(record, false) as Message;
        const { id, headers } = unpackHeaders(Buffer.from(bytes), isTransportHeader);
        expect(back.id).toBe(id || 't-3-19');
        expect(back.headers).toEqual(headers);
        expect(Buffer.from(back.body)).toEqual(Buffer.from(body));
        expect(new EncodedMessage(back).tail('1.2')).toEqual(slowTail(back));
      }),
      { numRuns: 2_000 },
    );
  });

  it('shows the position from the offset as a number on both paths', () => {
    const mapper = new RecordMapper(topics);
    const record = consumed(mapper.toRecord(outgoing('/topic/a', 'b', [['x-a', '1']])), 12);
    const back = mapper.toMessage({ ...record, offset: '00012' }, false) as Message;
    expect(back.tail12).toBeDefined();
    expect(back.position).toEqual({ epoch: 'p2', n: 12 });
    expect(new EncodedMessage(back).tail('1.2')).toEqual(slowTail(back));
    expect(new EncodedMessage(back).tail('1.2').toString()).toContain('\nx-position:p2-12\n');
  });

  it('takes the fast path for what packHeaders writes from ordinary headers', () => {
    const mapper = new RecordMapper(topics);
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 12 }),
        fc.array(fc.tuple(fc.string({ minLength: 1 }), fc.string()), { maxLength: 4 }),
        (id, headers) => {
          const record = consumed({
            topic: 't',
            key: '/topic/a',
            value: Buffer.from('v'),
            headers: [[PACKED_HEADER, packHeaders(id, headers)]],
          });
          const back = mapper.toMessage(record, false);
          const transports = headers.some(([name]) => isTransportHeader(name));
          expect(back?.tail12 !== undefined).toBe(!transports);
        },
      ),
    );
  });
});

describe('--kafka-headers', () => {
  it('is packed unless told otherwise, from the flag or STOMPBUS_KAFKA_HEADERS', () => {
    expect(DEFAULT_SERVER_OPTIONS.kafkaHeaders).toBe('packed');
    expect(parseArgs(['--kafka-headers', 'each'], {})).toMatchObject({
      options: { kafkaHeaders: 'each' },
    });
    expect(parseArgs([], { STOMPBUS_KAFKA_HEADERS: 'each' })).toMatchObject({
      options: { kafkaHeaders: 'each' },
    });
    expect(parseArgs(['--kafka-headers=packed'], { STOMPBUS_KAFKA_HEADERS: 'each' })).toMatchObject(
      { options: { kafkaHeaders: 'packed' } },
    );
  });

  it('refuses another value with a one-line message', () => {
    expect(() => parseArgs(['--kafka-headers', 'json'], {})).toThrow(
      'stompbus: --kafka-headers needs packed or each, got "json"',
    );
  });
});
