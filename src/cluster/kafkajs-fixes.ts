/**
 * Two fixes for kafkajs 2.2.4, applied when the client is loaded
 * ({@link fixKafkajs}); each replaces one function only when it is the known
 * code (the version and the shape of its code match), so a kafkajs that fixed
 * it is left alone. docs/kafka.md lists them with the figures.
 *
 * **The request queue's timer.** Every broker connection of kafkajs has a
 * request queue, whose `scheduleCheckPendingRequests` arms a timer to send
 * the requests it holds back (while the broker throttles the client, or too
 * many are in flight). In 2.2.4 it arms that timer even when it holds
 * nothing, with a negative delay (1 ms), and the timer's callback arms it
 * again: once a connection has answered one request, it wakes the event loop
 * about a thousand times a second for as long as it lives. An idle stompbus
 * instance, with its producer, two consumers and the admin client, made
 * about 1,600 event-loop wake-ups a second with nothing to read (`strace -c`,
 * 6 s); on a busy one the timers compete with the traffic. The replacement
 * arms the timer only while requests wait, with kafkajs' own delay then (the
 * rest of the throttle, else its 10 ms re-check). Nothing else needs it: a
 * request that is not held back is sent at once, and one held back by the
 * in-flight limit is sent when an answer or a timeout frees a slot
 * (`fulfillRequest` and the request timeout call `checkPendingRequests`).
 *
 * **Grouping a request's records by partition.** The producer's
 * `groupMessagesPerPartition` copies a partition's array for every record it
 * adds (`[...current, message]`): quadratic in the records per partition,
 * 2.3 µs a record for a 1,000-record request to one partition, and as much
 * garbage. The replacement appends (12 ns a record). kafkajs' producer takes
 * that function once, when its module loads, so it is replaced only when
 * kafkajs' producer is not loaded yet (as in the `stompbus` command, which
 * loads kafkajs on the first connect); an application that loaded kafkajs
 * before keeps the original, which gives the same result, slower.
 */
import { createRequire } from 'node:module';

/** kafkajs' own re-check interval while throttled (`CHECK_PENDING_REQUESTS_INTERVAL`). */
const RECHECK_MS = 10;

/** The part of kafkajs' RequestQueue the fix touches. */
interface RequestQueueLike {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/** What replacing a piece of kafkajs did: `already` when asked again after `applied`. */
export type Outcome = 'applied' | 'already' | 'not needed' | 'too late';
let outcome: Outcome | undefined;

/**
 * Puts `replace(original)` in the place of the export of kafkajs 2.2.4's module `path` (inside
 * the kafkajs package), as long as none of the modules that take that export when they load
 * (`takers`) is loaded yet and the original's code contains `known`; says what it did. kafkajs
 * of another version, or whose code differs, is left alone (`not needed`).
 */
export function replaceKafkajsExport<T>(
  path: string,
  takers: readonly string[],
  known: string,
  replace: (original: T) => T,
): Exclude<Outcome, 'already'> {
  const require = createRequire(import.meta.url);
  let version: string | undefined;
  let modulePath: string;
  let takerPaths: string[];
  try {
    version = (require('kafkajs/package.json') as { version?: string }).version;
    modulePath = require.resolve(`kafkajs/${path}`);
    takerPaths = takers.map((taker) => require.resolve(`kafkajs/${taker}`));
  } catch {
    return 'not needed';
  }
  if (version !== '2.2.4') return 'not needed';
  // A taker holds the export it required: replacing it now would change nothing.
  if (takerPaths.some((taker) => require.cache[taker])) return 'too late';
  const original = require(modulePath) as T;
  const cached = require.cache[modulePath];
  if (!cached || typeof original !== 'function' || !original.toString().includes(known)) {
    return 'not needed';
  }
  cached.exports = replace(original);
  return 'applied';
}
let groupingOutcome: Outcome | undefined;

/** Applies both fixes (see the top of this file); call it before kafkajs is imported. */
export function fixKafkajs(): { requestQueue: Outcome; grouping: Outcome } {
  const grouping = fixKafkajsGrouping();
  return { requestQueue: fixKafkajsRequestQueue(), grouping };
}

/**
 * The prototype of the class that kafkajs 2.2.4's module `path` (inside the kafkajs package)
 * exports, when its `method` is the known code: its source contains every string of `known`.
 * Undefined for another kafkajs version, another shape of code, or no kafkajs.
 */
export function knownKafkajsPrototype<P extends object>(
  path: string,
  method: keyof P & string,
  known: readonly string[],
): P | undefined {
  const require = createRequire(import.meta.url);
  try {
    if ((require('kafkajs/package.json') as { version?: string }).version !== '2.2.4') return;
    const proto = (require(`kafkajs/${path}`) as { prototype?: P } | undefined)?.prototype;
    const original = proto?.[method];
    if (typeof original !== 'function') return;
    const code = original.toString();
    return known.every((part) => code.includes(part)) ? proto : undefined;
  } catch {
    return;
  }
}

/**
 * Replaces kafkajs' `RequestQueue.prototype.scheduleCheckPendingRequests`
 * (once per process); says what it did.
 */
export function fixKafkajsRequestQueue(): Outcome {
  if (outcome !== undefined) return outcome === 'applied' ? 'already' : outcome;
  // The 2.2.4 code: the delay computed before the pending check, used whatever it is.
  const proto = knownKafkajsPrototype<RequestQueueLike>(
    'src/network/requestQueue/index.js',
    'scheduleCheckPendingRequests',
    ['this.throttledUntil - Date.now()', 'if (this.pending.length > 0)'],
  );
  if (!proto) {
    outcome = 'not needed';
    return outcome;
  }
  proto.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(
    this: RequestQueueLike,
  ) {
    if (this.throttleCheckTimeoutId || this.pending.length === 0) return;
    const throttled = this.throttledUntil - Date.now();
    this.throttleCheckTimeoutId = setTimeout(
      () => {
        this.throttleCheckTimeoutId = null;
        this.checkPendingRequests();
      },
      throttled > 0 ? throttled : RECHECK_MS,
    );
  };
  outcome = 'applied';
  return outcome;
}

/** What kafkajs' producer passes to `groupMessagesPerPartition`. */
interface GroupArgs<M> {
  topic: string;
  partitionMetadata: readonly unknown[];
  messages: readonly M[];
  partitioner: (args: {
    topic: string;
    partitionMetadata: readonly unknown[];
    message: M;
  }) => number;
}

/**
 * kafkajs' `groupMessagesPerPartition` in linear time: the same object (partition →
 * its records in their order), built by appending.
 */
export function groupByPartition<M>(args: GroupArgs<M>): Record<number, M[]> {
  const { topic, partitionMetadata, messages, partitioner } = args;
  const groups: Record<number, M[]> = {};
  if (partitionMetadata.length === 0) return groups;
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    const group = groups[partition];
    if (group) group.push(message);
    else groups[partition] = [message];
  }
  return groups;
}

/**
 * Puts {@link groupByPartition} in the place of kafkajs 2.2.4's
 * `groupMessagesPerPartition`, if kafkajs' producer has not loaded it yet
 * (once per process); says what it did.
 */
export function fixKafkajsGrouping(): Outcome {
  if (groupingOutcome !== undefined) {
    return groupingOutcome === 'applied' ? 'already' : groupingOutcome;
  }
  groupingOutcome = replaceKafkajsExport(
    'src/producer/groupMessagesPerPartition.js',
    ['src/producer/sendMessages.js'],
    '[...current, message]',
    () => groupByPartition,
  );
  return groupingOutcome;
}
