/**
 * Spacing a kafkajs consumer's fetches (`--kafka-fetch-interval`,
 * docs/benchmarks.md "Fewer, fuller fetches"). kafkajs 2.2.4 fetches from a
 * broker, hands every batch of the answer to `eachBatch`, and once all are
 * handled starts the next fetch at once: under steady traffic a fetch every
 * few milliseconds for a handful of records, each a request that Kafka and
 * the instance pay for. Here, after a fetch that brought records, the next
 * fetch from that broker starts no sooner than the interval after it started;
 * every batch of a fetch is handed over as soon as it comes. After a fetch that
 * brought nothing (an idle long poll ran out) the next one starts at once, so
 * an idle consumer is always waiting in a long poll and gets a record as soon
 * as Kafka has it.
 *
 * kafkajs has no setting for it, and a pause inside `eachBatch` would hold
 * back the other partitions' batches of the same fetch. So the runner's
 * `fetch(nodeId)` (called by each broker's fetch loop once the last answer's
 * batches are handled) is wrapped, once per process, for the consumers whose
 * group asked for an interval; other consumers' fetches are left as they
 * were. A kafkajs whose code differs is left alone, and its consumers fetch
 * without a pause.
 */
import { knownKafkajsPrototype } from './kafkajs-fixes.js';

/** The part of kafkajs' consumer runner the wrapper reads. */
interface RunnerLike {
  consumerGroup?: { groupId?: string };
  fetch(nodeId: number): Promise<Array<{ messages?: unknown[] }>>;
}

/**
 * The longest interval, ms (a longer one is taken as this): kafkajs heart-beats from its
 * fetch loop, which waits meanwhile.
 */
export const MAX_FETCH_INTERVAL_MS = 1_000;

/** Interval per consumer group id, ms. */
const intervals = new Map<string, number>();
/**
 * When each runner started its last fetch from each broker that brought records
 * (`performance.now()`); none after a fetch that brought nothing.
 */
const started = new WeakMap<RunnerLike, Map<number, number>>();
let wrapped: boolean | undefined;

/**
 * Spaces the fetches of the consumer of group `groupId` at least `intervalMs`
 * apart; returns the function that ends it (call it when the consumer
 * stops), or undefined when the installed kafkajs cannot be paced.
 */
export function paceFetches(groupId: string, intervalMs: number): (() => void) | undefined {
  if (!(intervalMs > 0) || !wrapRunner()) return undefined;
  intervals.set(groupId, Math.min(intervalMs, MAX_FETCH_INTERVAL_MS));
  return () => {
    intervals.delete(groupId);
  };
}

/** Wraps kafkajs 2.2.4's `Runner.prototype.fetch` (once); false when it is not that code. */
function wrapRunner(): boolean {
  if (wrapped !== undefined) return wrapped;
  const proto = knownKafkajsPrototype<RunnerLike>('src/consumer/runner.js', 'fetch', [
    'FETCH_START',
    'this.consumerGroup.fetch(nodeId)',
  ]);
  wrapped = proto !== undefined;
  if (!proto) return false;
  const original = proto.fetch;
  proto.fetch = async function fetch(this: RunnerLike, nodeId: number) {
    const interval = intervals.get(this.consumerGroup?.groupId ?? '');
    if (interval === undefined) return original.call(this, nodeId);
    let byNode = started.get(this);
    if (!byNode) {
      byNode = new Map();
      started.set(this, byNode);
    }
    const last = byNode.get(nodeId);
    const wait = last === undefined ? 0 : last + interval - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const start = performance.now();
    const batches = await original.call(this, nodeId);
    if (batches.some((batch) => (batch.messages?.length ?? 0) > 0)) byNode.set(nodeId, start);
    else byNode.delete(nodeId);
    return batches;
  };
  return true;
}
