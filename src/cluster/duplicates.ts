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

/** The message ids of the latest records per topic and partition. */
export class Duplicates {
  /** Per topic, per partition: the latest ids, oldest first. */
  private readonly seen = new Map<string, Map<number, Set<string>>>();

  constructor(private readonly window = DUPLICATE_WINDOW) {}

  /** True when `id` came in the same partition recently (a copy); else remembers it. */
  repeated(topic: string, partition: number, id: string): boolean {
    let partitions = this.seen.get(topic);
    if (!partitions) {
      partitions = new Map();
      this.seen.set(topic, partitions);
    }
    let ids = partitions.get(partition);
    if (!ids) {
      ids = new Set();
      partitions.set(partition, ids);
    }
    if (ids.has(id)) return true;
    ids.add(id);
    if (ids.size > this.window) {
      // A Set iterates in insertion order: the first one is the oldest.
      const oldest = ids.values().next().value as string;
      ids.delete(oldest);
    }
    return false;
  }
}
