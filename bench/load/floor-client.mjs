// What the benchmarks' plain kafkajs floors share with the fan-out: its consumer settings and
// its producer queue. Plain JavaScript: the ceiling's floor processes run without a TypeScript
// loader.

/**
 * The fan-out's consumer settings (src/cluster/kafka-client.ts): session 6 s, heart-beat 2 s,
 * an idle fetch waits 250 ms at most.
 */
const FLOOR_CONSUMER = Object.freeze({
  sessionTimeout: 6_000,
  heartbeatInterval: 2_000,
  maxWaitTimeInMs: 250,
  allowAutoTopicCreation: false,
});

/** A topic setting: records stamped with Kafka's append time (for a split at Kafka). */
export const LOG_APPEND_TIME = Object.freeze({
  name: 'message.timestamp.type',
  value: 'LogAppendTime',
});

/**
 * Starts a kafkajs consumer with the fan-out's settings on `topic` from its live end, handing
 * each batch to `eachBatch`, and resolves with it once it has joined its group. Run it with
 * `autoCommit: false`, as the fan-out, which reads from the live end and never commits;
 * `true` is kafkajs' default (an OffsetCommit after every batch).
 *
 * @param {{ consumer(config: object): any }} kafka a kafkajs client
 * @param {{ groupId: string, topic: string, autoCommit: boolean, eachBatch: (payload: any) => Promise<void> }} options
 */
export async function startFloorConsumer(kafka, { groupId, topic, autoCommit, eachBatch }) {
  const consumer = kafka.consumer({ groupId, ...FLOOR_CONSUMER });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: false });
  const joined = new Promise((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  await consumer.run({ autoCommit, eachBatch });
  await joined;
  return consumer;
}

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
