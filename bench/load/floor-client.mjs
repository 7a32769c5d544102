// What the benchmarks' plain kafkajs floors share with the fan-out: its consumer settings and
// its producer queue. Plain JavaScript: the ceiling's floor processes run without a TypeScript
// loader.

/**
 * The fan-out's consumer settings (src/cluster/kafka-client.ts): session 6 s, heart-beat 2 s,
 * an idle fetch waits 250 ms at most. Run such a consumer with `autoCommit: false`, as the
 * fan-out, which reads from the live end and never commits.
 */
export const FLOOR_CONSUMER = Object.freeze({
  sessionTimeout: 6_000,
  heartbeatInterval: 2_000,
  maxWaitTimeInMs: 250,
  allowAutoTopicCreation: false,
});

// The producer queue, as stompbus's produce queue batches (src/cluster/produce-queue.ts):
// the records offered in one event-loop turn go out in one `sendBatch`, at most `maxBatch` per
// request, `acks: -1`, one request in flight; what arrives meanwhile forms the next request.

/**
 * @param {{ sendBatch(batch: object): Promise<unknown> }} producer a connected kafkajs producer
 * @param {string} topic
 * @param {number} maxBatch records per request at most
 * @param {(count: number, error: unknown) => void} onFailed a request's records failed
 */
export function floorQueue(producer, topic, maxBatch, onFailed) {
  const queue = [];
  let scheduled = false;
  let flushing;
  const flush = async () => {
    while (queue.length > 0) {
      const messages = queue.splice(0, maxBatch);
      await producer
        .sendBatch({ topicMessages: [{ topic, messages }], acks: -1 })
        .catch((error) => onFailed(messages.length, error));
    }
  };
  const schedule = () => {
    if (scheduled || flushing) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      flushing ??= flush().finally(() => {
        flushing = undefined;
        if (queue.length > 0) schedule();
      });
    });
  };
  return {
    /** Queues a record; it leaves at the end of this event-loop turn or after the request in flight. */
    offer(message) {
      queue.push(message);
      schedule();
    },
    /** Resolves once every record offered so far was answered. */
    async settled() {
      while (flushing || queue.length > 0) await (flushing ?? new Promise(setImmediate));
    },
  };
}
