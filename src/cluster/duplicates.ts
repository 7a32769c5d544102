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

/** The ids of one partition's latest records. */
interface Window {
  readonly ids: Set<string>;
  /** The same ids in arrival order, as a ring: `ring[next]` is the oldest once full. */
  readonly ring: string[];
  next: number;
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
      w = { ids: new Set(), ring: [], next: 0 };
      partitions.set(partition, w);
    }
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
