import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  fixKafkajsGrouping,
  fixKafkajsRequestQueue,
  groupByPartition,
} from '../../src/cluster/kafkajs-fixes.js';
import { skipKafka, startCluster } from '../helpers/cluster.js';
import { publishWithReceipt, stompClient } from '../helpers/stomp-client.js';

if (skipKafka) {
  console.warn(
    '!!! kafkajs-fixes.spec.ts: the Kafka part SKIPPED (see spec/kafka-global-setup.ts)',
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
const REPO = fileURLToPath(new URL('../../', import.meta.url));
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

describe("kafkajs' grouping of a request's records by partition", () => {
  // This process loaded kafkajs before (the spec helpers import it): the original stays.
  const original = createRequire(import.meta.url)(
    'kafkajs/src/producer/groupMessagesPerPartition.js',
  ) as typeof groupByPartition;

  it('is too late to replace once kafkajs is loaded, and leaves the original then', () => {
    expect(fixKafkajsGrouping()).toBe('too late');
    expect(original.toString()).toContain('[...current, message]');
  });

  it('groups exactly as kafkajs does: every partition, its records in their order (property)', () => {
    const partitionMetadata = Array.from({ length: 8 }, (_, partitionId) => ({ partitionId }));
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 7 }), { maxLength: 200 }), (partitions) => {
        const messages = partitions.map((partition, i) => ({ i, partition }));
        const args = {
          topic: 't',
          partitionMetadata,
          messages,
          partitioner: ({ message }: { message: { partition: number } }) => message.partition,
        };
        expect(groupByPartition(args)).toEqual(original(args));
      }),
    );
    expect(
      groupByPartition({ topic: 't', partitionMetadata: [], messages: [1], partitioner: () => 0 }),
    ).toEqual({});
  });

  it('is replaced in a process that creates the client before loading kafkajs, as the stompbus command does', () => {
    // The compiled client (spec/build-global-setup.ts builds dist/); no Kafka is contacted.
    const script = `
      import { createRequire } from 'node:module';
      const { createKafkajsClient } = await import(${JSON.stringify(`${REPO}dist/cluster/kafka-client.js`)});
      await createKafkajsClient({ brokers: ['127.0.0.1:9'] });
      const require = createRequire(${JSON.stringify(`${REPO}dist/cluster/kafka-client.js`)});
      console.log(require('kafkajs/src/producer/groupMessagesPerPartition.js').name);
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: REPO,
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('groupByPartition');
  });
});
