/**
 * Spacing a kafkajs consumer's fetches (`--kafka-fetch-interval`,
 * docs/benchmarks.md "Fewer, fuller fetches"). kafkajs 2.2.4 fetches from a
 * broker, hands every batch of the answer to `eachBatch`, and once all are
 * handled starts the next fetch at once: under steady traffic a fetch every
 * few milliseconds for a handful of records, each a request that Kafka and
 * the instance pay for. Here the next fetch from a broker starts no sooner
 * than the interval after the previous one started; every batch of a fetch is
 * handed over as soon as it comes, and a fetch waiting in Kafka's long poll
 * still answers a record at once.
 *
 * kafkajs has no setting for it, and a pause inside `eachBatch` would hold
 * back the other partitions' batches of the same fetch. So the runner's
 * `fetch(nodeId)` (called by each broker's fetch loop once the last answer's
 * batches are handled) is wrapped, once per process, for the consumers whose
 * group asked for an interval; other consumers' fetches are left as they
 * were. A kafkajs whose code differs is left alone, and its consumers fetch
 * without a pause.
 */
import { createRequire } from 'node:module';

/** The part of kafkajs' consumer runner the wrapper reads. */
interface RunnerLike {
  consumerGroup?: { groupId?: string };
  fetch(nodeId: number): Promise<unknown[]>;
}

/** Interval per consumer group id, ms. */
const intervals = new Map<string, number>();
/** When each runner last started a fetch from each broker (`performance.now()`). */
const started = new WeakMap<RunnerLike, Map<number, number>>();
let wrapped: boolean | undefined;

/**
 * Spaces the fetches of the consumer of group `groupId` at least `intervalMs`
 * apart; returns the function that ends it (call it when the consumer
 * stops), or undefined when the installed kafkajs cannot be paced.
 */
export function paceFetches(groupId: string, intervalMs: number): (() => void) | undefined {
  if (!(intervalMs > 0) || !wrapRunner()) return undefined;
  intervals.set(groupId, intervalMs);
  return () => {
    if (intervals.get(groupId) === intervalMs) intervals.delete(groupId);
  };
}

/** Wraps kafkajs 2.2.4's `Runner.prototype.fetch` (once); false when it is not that code. */
function wrapRunner(): boolean {
  if (wrapped !== undefined) return wrapped;
  wrapped = false;
  const require = createRequire(import.meta.url);
  let Runner: { prototype: RunnerLike } | undefined;
  try {
    const version = (require('kafkajs/package.json') as { version?: string }).version;
    if (version !== '2.2.4') return false;
    Runner = require('kafkajs/src/consumer/runner.js');
  } catch {
    return false;
  }
  const proto = Runner?.prototype;
  const original = proto?.fetch;
  const code = original?.toString() ?? '';
  if (
    !proto ||
    typeof original !== 'function' ||
    !code.includes('FETCH_START') ||
    !code.includes('this.consumerGroup.fetch(nodeId)')
  ) {
    return false;
  }
  proto.fetch = async function fetch(this: RunnerLike, nodeId: number) {
    const interval = intervals.get(this.consumerGroup?.groupId ?? '');
    if (interval !== undefined) {
      let byNode = started.get(this);
      if (!byNode) {
        byNode = new Map();
        started.set(this, byNode);
      }
      const last = byNode.get(nodeId);
      const wait = last === undefined ? 0 : last + interval - performance.now();
      if (wait >= 1) await new Promise((resolve) => setTimeout(resolve, wait));
      byNode.set(nodeId, performance.now());
    }
    return original.call(this, nodeId);
  };
  wrapped = true;
  return true;
}
