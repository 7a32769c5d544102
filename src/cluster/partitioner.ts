/**
 * Which partition of the topics topic a destination's records land in: the
 * producer places them with kafkajs' `DefaultPartitioner`, the Java client's
 * (murmur2 of the key's UTF-8 bytes, made positive, modulo the partitions),
 * and cluster interest must compute the same function to know which
 * partitions hold the destinations its sessions subscribe to.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** The Java client's 32-bit murmur2 of `data` (signed, as Java's `int`). */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = SEED ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k =
      (data[i4] as number) |
      ((data[i4 + 1] as number) << 8) |
      ((data[i4 + 2] as number) << 16) |
      ((data[i4 + 3] as number) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & ~3;
  // The tail bytes, as the Java switch that falls through 3 → 2 → 1.
  const rest = length & 3;
  if (rest === 3) h ^= (data[tail + 2] as number) << 16;
  if (rest >= 2) h ^= (data[tail + 1] as number) << 8;
  if (rest >= 1) {
    h ^= data[tail] as number;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition (of `partitions`) a record keyed `key` goes to with the Java default partitioner. */
export function partitionFor(key: string, partitions: number): number {
  return (murmur2(Buffer.from(key, 'utf8')) & 0x7fffffff) % partitions;
}

/** What kafkajs hands a partitioner (the part of it read here). */
export interface PartitionerArgs {
  readonly partitionMetadata: ReadonlyArray<unknown>;
  readonly message: { readonly key?: Buffer | string | null; readonly partition?: number };
}

/**
 * The default partitioner's choice for string keys (our records: the key is the
 * destination), with each key's hash kept: kafkajs's own hashes the key again for every
 * record and copies its partition list twice per record on the way (issue 12's profile).
 * Any other record goes to `fallback` (kafkajs's default partitioner). Bounded; forgets
 * every key when full.
 */
export function keyedPartitioner<A extends PartitionerArgs>(
  fallback: (args: A) => number,
  maxKeys = 10_000,
): (args: A) => number {
  const hashes = new Map<string, number>();
  return (args) => {
    const { key, partition } = args.message;
    if (typeof key !== 'string' || (partition !== undefined && partition !== null)) {
      return fallback(args);
    }
    let hash = hashes.get(key);
    if (hash === undefined) {
      if (hashes.size >= maxKeys) hashes.clear();
      hash = murmur2(Buffer.from(key, 'utf8')) & 0x7fffffff;
      hashes.set(key, hash);
    }
    return hash % args.partitionMetadata.length;
  };
}
