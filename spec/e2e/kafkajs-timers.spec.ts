import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { fixKafkajsRequestQueue } from '../../src/cluster/kafkajs-timer-fix.js';
import { skipKafka, startCluster } from '../helpers/cluster.js';
import { publishWithReceipt, stompClient } from '../helpers/stomp-client.js';

if (skipKafka) {
  console.warn(
    '!!! kafkajs-timers.spec.ts: the Kafka part SKIPPED (see spec/kafka-global-setup.ts)',
  );
}

interface Queue {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}
const RequestQueue = createRequire(import.meta.url)(
  'kafkajs/src/network/requestQueue/index.js',
) as {
  prototype: Queue;
};
const proto = RequestQueue.prototype;
const original = proto.checkPendingRequests;
afterEach(() => {
  proto.checkPendingRequests = original;
});

/** Counts the calls of every request queue's `checkPendingRequests` during `ms`. */
async function checksDuring(ms: number): Promise<number> {
  let calls = 0;
  proto.checkPendingRequests = function (this: Queue) {
    calls++;
    return original.call(this);
  };
  await new Promise((resolve) => setTimeout(resolve, ms));
  proto.checkPendingRequests = original;
  return calls;
}

/** A request queue with only what the scheduling reads. */
function fakeQueue(pending: unknown[], throttledUntil: number) {
  const queue = {
    pending,
    throttledUntil,
    throttleCheckTimeoutId: null as NodeJS.Timeout | null,
    checks: 0,
    checkPendingRequests() {
      queue.checks++;
    },
  };
  return queue;
}

describe("kafkajs' request queue timers", () => {
  it('is fixed in the installed kafkajs', () => {
    expect(['applied', 'already']).toContain(fixKafkajsRequestQueue());
  });

  it('arms no timer while no request waits, and checks a throttled one when the throttle ends', async () => {
    fixKafkajsRequestQueue();
    const idle = fakeQueue([], -1);
    proto.scheduleCheckPendingRequests.call(idle as unknown as Queue);
    expect(idle.throttleCheckTimeoutId).toBeNull();

    const throttled = fakeQueue([{}], Date.now() + 60);
    proto.scheduleCheckPendingRequests.call(throttled as unknown as Queue);
    expect(throttled.throttleCheckTimeoutId).not.toBeNull();
    // Armed once: a second call while armed adds nothing.
    proto.scheduleCheckPendingRequests.call(throttled as unknown as Queue);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(throttled.checks).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(throttled.checks).toBe(1);
    expect(throttled.throttleCheckTimeoutId).toBeNull();
  });

  it.skipIf(skipKafka)(
    'leaves an idle cluster instance without the millisecond timer loop (kafkajs 2.2.4 wakes each connection every 1 ms)',
    async () => {
      const { instances } = await startCluster(1);
      const client = await stompClient(instances[0]!.url);
      // Every connection of the instance has answered requests: producer, consumers, admin.
      await publishWithReceipt(client, { destination: '/topic/idle', body: 'x' });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const calls = await checksDuring(1_000);
      // Requests answered in that second (fetch long-polls, heart-beats) check the queue
      // once each: a few dozen. The loop made about a thousand per connection.
      expect(calls).toBeLessThan(150);
      await client.deactivate();
    },
  );
});
