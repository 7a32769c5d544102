/**
 * A fix for kafkajs 2.2.4's request queue, applied when the client is loaded.
 *
 * Every broker connection of kafkajs has a request queue, whose
 * `scheduleCheckPendingRequests` arms a timer to send the requests it holds
 * back (while the broker throttles the client, or too many are in flight).
 * In 2.2.4 it arms that timer even when it holds nothing, with a negative
 * delay (1 ms), and the timer's callback arms it again: once a connection
 * has answered one request, it wakes the event loop about a thousand times
 * a second for as long as it lives. An idle stompbus instance, with its
 * producer, two consumers and the admin client, made about 1,600 event-loop
 * wake-ups a second with nothing to read (`strace -c`, 6 s); on a busy one
 * the timers compete with the traffic. docs/kafka.md has the details.
 *
 * The replacement arms the timer only while requests wait, for as long as
 * the throttle lasts (at least kafkajs' own 10 ms re-check). Nothing else
 * needs it: a request that is not held back is sent at once, and one held
 * back by the in-flight limit is sent when an answer or a timeout frees a
 * slot (`fulfillRequest` and the request timeout call `checkPendingRequests`).
 *
 * The method is replaced only when it is the known one (the version and the
 * shape of its code match); a kafkajs that fixed it is left alone.
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

type Outcome = 'applied' | 'already' | 'not needed';
let outcome: Outcome | undefined;

/**
 * Replaces kafkajs' `RequestQueue.prototype.scheduleCheckPendingRequests`
 * (once per process); says what it did.
 */
export function fixKafkajsRequestQueue(): Outcome {
  if (outcome !== undefined) return outcome === 'applied' ? 'already' : outcome;
  const require = createRequire(import.meta.url);
  let version: string | undefined;
  let RequestQueue: { prototype: RequestQueueLike } | undefined;
  try {
    version = (require('kafkajs/package.json') as { version?: string }).version;
    RequestQueue = require('kafkajs/src/network/requestQueue/index.js');
  } catch {
    outcome = 'not needed';
    return outcome;
  }
  const proto = RequestQueue?.prototype;
  const original = proto?.scheduleCheckPendingRequests?.toString() ?? '';
  // The 2.2.4 code: the delay computed before the pending check, used whatever it is.
  const known =
    version === '2.2.4' &&
    original.includes('this.throttledUntil - Date.now()') &&
    original.includes('if (this.pending.length > 0)');
  if (!proto || !known) {
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
      Math.max(throttled, RECHECK_MS),
    );
  };
  outcome = 'applied';
  return outcome;
}
