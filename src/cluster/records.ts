/**
 * How cluster mode maps STOMP messages to Kafka records and back: which topic
 * a destination travels on, record keys and headers, and the records of our
 * own that are not messages (consumption of user-queue messages).
 */
import { isUtf8 } from 'node:buffer';
import { destinationKind, destinationUser, shownDestination } from '../broker/destination.js';
import {
  isTransportHeader,
  type Message,
  newMessage,
  type Outgoing,
  POSITION_HEADER,
  type Position,
  TRANSPORT_HEADER_NAMES,
} from '../broker/message.js';
import { escapeHeader, unescapeHeader } from '../frame/escape.js';
import type { Header } from '../frame/frame.js';
import type { ConsumedRecord, ProducedRecord } from './kafka-client.js';
import type { RecordFormat } from './kafka-options.js';
import { epochOf } from './offsets.js';
import type { ClusterTopics } from './topics.js';

/** Carries the broker's `message-id` with our own records, so every instance shows the same id. */
export const MESSAGE_ID_HEADER = 'stompbus-message-id';
/** Marks a record of the users topic that says a user-queue message (this id) was consumed. */
export const CONSUMED_HEADER = 'stompbus-consumed';
/**
 * With the `packed` record format, the one record header of a message on the
 * topics or users topic: its id on the first line, then one `name:value` line
 * per STOMP header, escaped as STOMP 1.2 escapes header lines (see
 * {@link packHeaders}).
 */
export const PACKED_HEADER = 'stompbus-headers';

/** Headers a MESSAGE from a bridged Kafka topic gets from the record itself. */
export const KAFKA_HEADERS = ['kafka-key', 'kafka-partition', 'kafka-offset', 'kafka-topic'];
const KAFKA_HEADER_SET = new Set(KAFKA_HEADERS);
/**
 * Record headers only this code writes: a SEND carrying one (any header is a
 * client's to send) would make its message look like a retried copy of
 * another (dropped by every instance) or like a consumption record.
 */
const OWN_HEADERS = new Set([MESSAGE_ID_HEADER, CONSUMED_HEADER, PACKED_HEADER]);

const EMPTY = new Uint8Array(0);
const EMPTY_BUFFER = Buffer.alloc(0);

/** Maps messages to records and back for one cluster's topics. */
export class RecordMapper {
  /** Bridged destination → Kafka topic (the reverse of `bridges`). */
  private readonly topicOf = new Map<string, string>();
  private readonly names = new Map<string, KnownDestination>();

  constructor(
    readonly topics: Pick<ClusterTopics, 'topic' | 'usersTopic' | 'bridges'>,
    readonly format: RecordFormat = 'packed',
  ) {
    for (const [kafkaTopic, destination] of Object.entries(topics.bridges)) {
      this.topicOf.set(destination, kafkaTopic);
    }
  }

  /**
   * One string per destination for the messages read back (kept messages are
   * many, their destinations few), with what a passed-on record's MESSAGE
   * says of it. Bounded; forgets everything when full.
   */
  private intern(text: string | undefined): KnownDestination | undefined {
    if (text === undefined) return undefined;
    const known = this.names.get(text);
    if (known !== undefined) return known;
    if (this.names.size >= 10_000) this.names.clear();
    const added = { name: text, lines: undefined };
    this.names.set(text, added);
    return added;
  }

  /** Whether the destination is bridged to a Kafka topic of its own. */
  isBridged(destination: string): boolean {
    return this.topicOf.has(destination);
  }

  /** The Kafka topic a destination travels on. */
  topicFor(destination: string): string {
    const bridged = this.topicOf.get(destination);
    if (bridged) return bridged;
    const kind = destinationKind(destination);
    return kind === 'user-queue' || kind === 'user-topic'
      ? this.topics.usersTopic
      : this.topics.topic;
  }

  /** A SEND as a record: destination as key, STOMP headers as record headers. */
  toRecord(message: Outgoing): ProducedRecord {
    const { id, destination, body } = message;
    const bridged = this.topicOf.has(destination);
    let key: string | undefined;
    let headers: Array<[string, string]>;
    if (this.format === 'packed' && !bridged) {
      // Written as the headers are read: a publishing instance does this for every SEND.
      headers = [[PACKED_HEADER, packHeaders(id, message.headers, OWN_HEADERS)]];
    } else {
      headers = [];
      for (const header of message.headers) {
        if (OWN_HEADERS.has(header[0])) continue;
        if (bridged && KAFKA_HEADER_SET.has(header[0])) {
          // A SEND to a bridged destination may choose the record key.
          if (header[0] === 'kafka-key') key ??= header[1];
          continue;
        }
        headers.push(header);
      }
      headers.push([MESSAGE_ID_HEADER, id]);
    }
    const topic = this.topicFor(destination);
    const record = {
      topic,
      key: key ?? destination,
      value: Buffer.isBuffer(body)
        ? body
        : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      headers,
    };
    return topic === this.topics.usersTopic
      ? { ...record, partitionKey: userKey(destination) }
      : record;
  }

  /** The record saying that a user-queue message was consumed. */
  consumedRecord(message: Pick<Outgoing, 'id' | 'destination'>): ProducedRecord {
    return {
      topic: this.topics.usersTopic,
      key: message.destination,
      partitionKey: userKey(message.destination),
      value: EMPTY_BUFFER,
      headers: [[CONSUMED_HEADER, message.id]],
    };
  }

  /**
   * A record as a message, placed at the record's partition (the epoch) and
   * offset; `replayed` when it was read back from history. Undefined when it
   * names no destination this topic carries.
   */
  toMessage(record: ConsumedRecord, replayed: boolean): Message | undefined {
    const bridged = this.topics.bridges[record.topic];
    const ours = record.topic === this.topics.topic || record.topic === this.topics.usersTopic;
    const known = ours && !bridged ? this.intern(record.key?.toString()) : undefined;
    const destination = bridged ?? known?.name;
    const kind = destination === undefined ? undefined : destinationKind(destination);
    if (!destination || !kind || kind === 'queue' || this.topicFor(destination) !== record.topic) {
      return undefined;
    }
    const packed = known && packedOf(record);
    if (packed) {
      const message = this.passOn(record, packed, known, replayed);
      if (message) return message;
    }
    let id: string | undefined;
    // A record header named like a STOMP transport header (destination, ack…) is dropped.
    let headers: Header[] = [];
    if (packed) {
      ({ id, headers } = unpackHeaders(packed, isTransportHeader));
    } else {
      for (const [name, value] of record.headers) {
        if (name === MESSAGE_ID_HEADER) id ??= value.toString();
        else if (
          name !== '' &&
          !isTransportHeader(name) &&
          !(bridged && KAFKA_HEADER_SET.has(name))
        ) {
          headers.push([name, value.toString()]);
        }
      }
    }
    if (bridged) {
      if (record.key) headers.push(['kafka-key', record.key.toString()]);
      headers.push(
        ['kafka-partition', String(record.partition)],
        ['kafka-offset', record.offset],
        ['kafka-topic', record.topic],
      );
    }
    const position = { epoch: epochOf(record.partition), n: Number(record.offset) };
    return newMessage(
      id || `${record.topic}-${record.partition}-${record.offset}`,
      destination,
      headers,
      // A copy: the client's value is a view into its whole fetch response, which a
      // message kept in the history or a mailbox would otherwise hold for minutes.
      record.value ? Buffer.from(record.value) : EMPTY,
      position,
      record.timestamp,
      replayed,
    );
  }

  /**
   * A packed record as a message whose STOMP 1.2 tail is made from the record's bytes as
   * they are: the packed header is escaped as a 1.2 frame escapes its headers, so its lines
   * go out unchanged, and the body is copied once, into the tail. Undefined when the bytes
   * are not exactly what {@link packHeaders} writes (a transport header, a malformed line or
   * escape, a CR, bytes that are not UTF-8, no id): the caller then reads them header by
   * header, as before.
   */
  private passOn(
    record: ConsumedRecord,
    packed: Buffer,
    destination: KnownDestination,
    replayed: boolean,
  ): Message | undefined {
    const idEnd = packedIdEnd(packed);
    if (idEnd <= 0) return undefined;
    const value = record.value ?? EMPTY_BUFFER;
    destination.lines ??= Buffer.from(
      `\ndestination:${escapeHeader(shownDestination(destination.name), '1.2')}\n${POSITION_HEADER}:`,
    );
    const { lines } = destination;
    const epoch = epochOf(record.partition);
    // The position as the slow path shows it (from the number, whatever the offset's text).
    const n = Number(record.offset);
    const offset = String(n);
    const hasHeaders = idEnd < packed.length;
    const contentLength = `content-length:${value.length}\n\n`;
    const headersStart =
      MESSAGE_ID_PREFIX.length + idEnd + lines.length + epoch.length + offset.length + 2;
    const headersEnd = headersStart + (hasHeaders ? packed.length - idEnd : 0);
    const bodyStart = headersEnd + contentLength.length;
    const tail = Buffer.allocUnsafe(bodyStart + value.length + 1);
    let at = MESSAGE_ID_PREFIX.copy(tail, 0);
    at += packed.copy(tail, at, 0, idEnd);
    at += lines.copy(tail, at);
    at += tail.write(epoch, at, 'latin1');
    tail[at++] = 0x2d; // '-'
    at += tail.write(offset, at, 'latin1');
    tail[at++] = 0x0a;
    // The header lines with the LF before the first moved behind the last.
    if (hasHeaders) {
      at += packed.copy(tail, at, idEnd + 1);
      tail[at++] = 0x0a;
    }
    at += tail.write(contentLength, at, 'latin1');
    value.copy(tail, at);
    tail[tail.length - 1] = 0;
    return new PackedMessage(
      unescapeLine(packed.toString('utf8', 0, idEnd)),
      destination.name,
      { epoch, n },
      record.timestamp,
      replayed,
      tail,
      headersStart,
      headersEnd,
      bodyStart,
    );
  }
}

/** A destination read from record keys, interned. */
interface KnownDestination {
  readonly name: string;
  /**
   * What its MESSAGEs say between the id and the position's value:
   * `\ndestination:<shown, escaped>\nx-position:` (made at the first passed-on record).
   */
  lines: Buffer | undefined;
}

const MESSAGE_ID_PREFIX = Buffer.from('message-id:');

/**
 * A message read from a packed record ({@link RecordMapper.passOn}): its 1.2 tail is kept,
 * and its body and headers are read from it when asked for (a 1.0 or 1.1 subscriber, a
 * queue, app code); most deliveries never ask. The history keeps many of these: the fewer
 * objects each holds, the less a young-generation collection copies.
 */
class PackedMessage implements Message {
  private decoded: Header[] | undefined;

  constructor(
    readonly id: string,
    readonly destination: string,
    readonly position: Position,
    readonly at: number,
    readonly replayed: boolean,
    readonly tail12: Buffer,
    private readonly headersStart: number,
    private readonly headersEnd: number,
    private readonly bodyStart: number,
  ) {}

  /** A view into the tail (made when asked for: one object less per kept message). */
  get body(): Buffer {
    return this.tail12.subarray(this.bodyStart, this.tail12.length - 1);
  }

  get headers(): readonly Header[] {
    this.decoded ??=
      this.headersEnd > this.headersStart
        ? readLines(this.tail12.toString('utf8', this.headersStart, this.headersEnd - 1))
        : [];
    return this.decoded;
  }
}

/** Header lengths of the STOMP transport headers: only names of these lengths are looked up. */
const TRANSPORT_LENGTHS = new Set(TRANSPORT_HEADER_NAMES.map((name) => name.length));

/**
 * Where the id line of a packed header ends (its first LF, or its length when it has no
 * header lines), when the bytes are exactly what {@link packHeaders} writes and carry no
 * transport header: every header line has one unescaped colon, not first; every backslash
 * starts a 1.2 escape; no CR; valid UTF-8. Else -1 (read header by header instead).
 */
export function packedIdEnd(packed: Buffer): number {
  const n = packed.length;
  let idEnd = -1;
  let lineStart = 0;
  let colon = -1;
  let colons = 0;
  let high = false;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? (packed[i] as number) : 0x0a;
    if (c === 0x0a) {
      if (idEnd < 0) {
        if (colons !== 0) return -1;
        idEnd = i;
      } else if (
        colons !== 1 ||
        colon === lineStart ||
        (TRANSPORT_LENGTHS.has(colon - lineStart) &&
          isTransportHeader(packed.toString('latin1', lineStart, colon)))
      ) {
        return -1;
      }
      lineStart = i + 1;
      colons = 0;
    } else if (c === 0x3a) {
      colons++;
      colon = i;
    } else if (c === 0x5c) {
      const next = packed[++i];
      // \\ \n \r \c
      if (next !== 0x5c && next !== 0x6e && next !== 0x72 && next !== 0x63) return -1;
    } else if (c === 0x0d) {
      return -1;
    } else if (c > 0x7f) {
      high = true;
    }
  }
  return high && !isUtf8(packed) ? -1 : idEnd;
}

/**
 * What places a user destination's records on the users topic: the user
 * (`/user/<name>`), so that all of a user's destinations, and the records of
 * their consumption, share one partition, read where the user has a session.
 */
export function userKey(destination: string): string {
  return keyOfUser(destinationUser(destination));
}

/** The key placing `user`'s records (see {@link userKey}). */
export function keyOfUser(user: string): string {
  return `/user/${user}`;
}

/** The message id a "consumed" record of the users topic names, if it is one. */
export function consumedId(record: ConsumedRecord): string | undefined {
  for (const [name, value] of record.headers) if (name === CONSUMED_HEADER) return value.toString();
  return undefined;
}

/** The packed headers of a record, if it has them. */
function packedOf(record: ConsumedRecord): Buffer | undefined {
  for (const [name, value] of record.headers) if (name === PACKED_HEADER) return value;
  return undefined;
}

/**
 * A message's id and STOMP headers as the value of {@link PACKED_HEADER}: the
 * id, then `name:value` lines, LF-separated; names, values and the id
 * escaped as in a STOMP 1.2 frame (`\\`, `\n`, `\r`, `\c`), so that no
 * text can end a line or a name early. Headers named in `skip` are left out.
 */
export function packHeaders(
  id: string,
  headers: readonly Header[],
  skip?: ReadonlySet<string>,
): string {
  let text = escapeHeader(id, '1.2');
  for (const [name, value] of headers) {
    if (skip?.has(name)) continue;
    text += `\n${escapeHeader(name, '1.2', false)}:${escapeHeader(value, '1.2')}`;
  }
  return text;
}

/**
 * Reads back what {@link packHeaders} wrote (a malformed escape is kept as it is); headers
 * whose name `drop` says are left out.
 */
export function unpackHeaders(
  packed: Buffer,
  drop?: (name: string) => boolean,
): { id: string; headers: Header[] } {
  const text = packed.toString();
  const lf = text.indexOf('\n');
  const id = unescapeLine(lf < 0 ? text : text.slice(0, lf));
  return { id, headers: lf < 0 ? [] : readLines(text.slice(lf + 1), drop) };
}

/** The `name:value` lines of packed header text; see {@link unpackHeaders}. */
function readLines(text: string, drop?: (name: string) => boolean): Header[] {
  const headers: Header[] = [];
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = unescapeLine(line.slice(0, colon));
    if (drop?.(name)) continue;
    headers.push([name, unescapeLine(line.slice(colon + 1))]);
  }
  return headers;
}

function unescapeLine(text: string): string {
  if (!text.includes('\\')) return text;
  try {
    return unescapeHeader(text, '1.2');
  } catch {
    return text;
  }
}

/** About the bytes of a record in a batch (string lengths stand for their UTF-8 bytes). */
export function recordSize(record: ProducedRecord): number {
  let size = 32 + record.value.byteLength + (record.key?.length ?? 0);
  for (const [name, value] of record.headers) size += name.length + value.length + 2;
  return size;
}
