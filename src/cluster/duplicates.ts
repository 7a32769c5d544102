/**
 * Records written twice. A produce request whose answer was lost (Kafka
 * stopped after writing it, the connection broke) is tried again by the
 * produce queue, and kafkajs retries within a request too, so the same
 * records may follow their first copy in the partition. Each of our records
 * carries the broker's message id; a second record with an id seen shortly
 * before in the same partition is that copy, and is dropped. Every instance
 * reads the same partition in the same order, so every instance drops the
 * same records.
 */

/**
 * Ids remembered per partition. A retry writes its copy behind the first one
 * as soon as Kafka takes requests again (one request in flight per instance,
 * oldest records first), so only what other instances wrote into the same
 * partition meanwhile separates them: 10,000 records covers that by far, at
 * about a megabyte per partition at most.
 */
export const DUPLICATE_WINDOW = 10_000;

/**
 * Sequence numbers remembered per writer and partition, for ids of the form a
 * broker gives (`<writer>-<sequence>`, the sequence counting every message of
 * that process). A copy comes back within its own request's span of
 * sequences (the produce queue retries its oldest request first), which is at
 * most a few thousand: 16,384 covers that by far, in 2 KB per writer and partition.
 */
export const SEQUENCE_WINDOW = 16_384;

/** Writers remembered per partition; past that, the one seen least lately is forgotten. */
const MAX_WRITERS = 256;

/** The ids of one partition's latest records. */
interface Window {
  /** Ids of the form `<writer>-<sequence>`, by writer. */
  readonly writers: Map<string, Writer>;
  /** The writer of the last such id (most records come from few writers in a row). */
  last: Writer | undefined;
  /** Other ids: a set and, for its oldest, a ring. */
  ids: Set<string> | undefined;
  ring: string[] | undefined;
  next: number;
}

/** One writer's latest sequence numbers in one partition, as bits. */
interface Writer {
  readonly prefix: string;
  /** Bit `s % SEQUENCE_WINDOW` is set when sequence `s` (in the window) was seen. */
  readonly bits: Uint32Array;
  /** The highest sequence seen; the window is (high − SEQUENCE_WINDOW, high]. */
  high: number;
}

/** The message ids of the latest records per topic and partition. */
export class Duplicates {
  /** Per topic, per partition: the latest ids. */
  private readonly seen = new Map<string, Map<number, Window>>();

  constructor(private readonly window = DUPLICATE_WINDOW) {}

  /** True when `id` came in the same partition recently (a copy); else remembers it. */
  repeated(topic: string, partition: number, id: string): boolean {
    let partitions = this.seen.get(topic);
    if (!partitions) {
      partitions = new Map();
      this.seen.set(topic, partitions);
    }
    let w = partitions.get(partition);
    if (!w) {
      w = { writers: new Map(), last: undefined, ids: undefined, ring: undefined, next: 0 };
      partitions.set(partition, w);
    }
    const dash = id.lastIndexOf('-');
    const sequence = dash > 0 ? sequenceOf(id, dash + 1) : -1;
    return sequence < 0 ? this.repeatedId(w, id) : repeatedSequence(w, id, dash, sequence);
  }

  /** An id of another form: kept in a set of the partition's latest `window` such ids. */
  private repeatedId(w: Window, id: string): boolean {
    w.ids ??= new Set();
    w.ring ??= [];
    if (w.ids.has(id)) return true;
    // The oldest id leaves through the ring, not through the Set's iterator: deleted
    // entries stay at the front of a Set's table until it is rebuilt, so finding its first
    // live entry took a scan over them for every record (issue 12's profile: 10% of an
    // instance's CPU).
    const oldest = w.ring[w.next];
    if (oldest !== undefined) w.ids.delete(oldest);
    w.ring[w.next] = id;
    w.next = (w.next + 1) % this.window;
    w.ids.add(id);
    return false;
  }
}

/**
 * `<writer>-<sequence>`: whether this writer's sequence was seen in the partition within
 * its window; else remembers it. A sequence older than the window counts as new, as an id
 * past the set's window does.
 */
function repeatedSequence(w: Window, id: string, dash: number, sequence: number): boolean {
  let writer = w.last;
  if (!writer || writer.prefix.length !== dash || !id.startsWith(writer.prefix)) {
    const prefix = id.slice(0, dash);
    writer = w.writers.get(prefix);
    if (writer && w.writers.size > MAX_WRITERS / 2) {
      // Many writers: the one just seen goes last, so that the one forgotten is the one
      // seen least lately (with few, none is ever forgotten and this costs nothing).
      w.writers.delete(prefix);
      w.writers.set(prefix, writer);
    }
    if (!writer) {
      if (w.writers.size >= MAX_WRITERS) {
        const first = w.writers.keys().next().value as string;
        w.writers.delete(first);
      }
      writer = { prefix, bits: new Uint32Array(SEQUENCE_WINDOW / 32), high: -1 };
      w.writers.set(prefix, writer);
    }
    w.last = writer;
  }
  const { bits } = writer;
  if (sequence > writer.high) {
    // The slots between the old and the new high now stand for newer sequences.
    if (sequence - writer.high >= SEQUENCE_WINDOW) bits.fill(0);
    else clearRange(bits, writer.high + 1, sequence);
    writer.high = sequence;
  } else if (sequence <= writer.high - SEQUENCE_WINDOW) {
    return false;
  } else if (isSet(bits, sequence)) {
    return true;
  }
  set(bits, sequence);
  return false;
}

/**
 * The decimal number from `from` to the end of `id`; -1 when that is not one as a broker
 * writes it (too long, or a leading zero: `w-07` and `w-7` are two ids).
 */
function sequenceOf(id: string, from: number): number {
  const length = id.length - from;
  if (length < 1 || length > 15) return -1;
  if (length > 1 && id.charCodeAt(from) === 48) return -1;
  let n = 0;
  for (let i = from; i < id.length; i++) {
    const digit = id.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    n = n * 10 + digit;
  }
  return n;
}

function slot(sequence: number): number {
  return sequence % SEQUENCE_WINDOW;
}

function isSet(bits: Uint32Array, sequence: number): boolean {
  const at = slot(sequence);
  return ((bits[at >>> 5] as number) & (1 << (at & 31))) !== 0;
}

function set(bits: Uint32Array, sequence: number): void {
  const at = slot(sequence);
  bits[at >>> 5] = (bits[at >>> 5] as number) | (1 << (at & 31));
}

/** Clears the bits of sequences `from` to `to` − 1 (fewer than the window), a word at a time. */
function clearRange(bits: Uint32Array, from: number, to: number): void {
  let at = slot(from);
  let count = to - from;
  while (count > 0) {
    const bit = at & 31;
    const n = Math.min(32 - bit, count);
    const mask = n === 32 ? -1 : ((1 << n) - 1) << bit;
    bits[at >>> 5] = (bits[at >>> 5] as number) & ~mask;
    at = (at + n) % SEQUENCE_WINDOW;
    count -= n;
  }
}
