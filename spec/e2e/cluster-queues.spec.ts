/**
 * Cluster-wide queues (docs/cluster-queues.md) with a real Kafka and stompbus
 * instances as child processes (`node bin/stompbus.js`), clients with
 * @stomp/stompjs: competing consumers on several instances, NACK, a consumer's
 * instance SIGKILLed, the owning instance SIGKILLed mid-traffic, the dead
 * letter queue read on another instance, acked messages never coming back,
 * and `--queues local`.
 */
import type { Client, IMessage } from '@stomp/stompjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { getHeader } from '../../src/frame/index.js';
import { kafkaBrokers, skipKafka, uniqueName } from '../helpers/cluster.js';
import {
  buildDist,
  type Instance,
  killAllChildren,
  killChild,
  sleep,
  startInstance,
} from '../helpers/haproxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';

if (skipKafka) {
  console.warn(
    '!!! cluster-queues.spec.ts SKIPPED: no Kafka broker (see spec/kafka-global-setup.ts)',
  );
}

/** Heart-beats every 300 ms: a consumer whose instance is gone is given up after 0.9 s. */
const FAST = ['--presence-interval', '300', '--heartbeat', '0,0'];

let instances: Instance[] = [];

beforeAll(async () => {
  if (!skipKafka) await buildDist();
}, 120_000);

afterEach(async () => {
  await killAllChildren();
  instances = [];
});

afterAll(async () => {
  await killAllChildren();
});

async function cluster(count: number, args: string[] = []): Promise<Instance[]> {
  const topic = uniqueName('stompbus-queues');
  // One after the other: the first creates the topics.
  for (let i = 0; i < count; i++) {
    instances.push(
      await startInstance(`q${i}`, {
        kafkaBrokers,
        kafkaTopic: topic,
        args: ['--kafka-partitions', '3', ...FAST, ...args],
        timeoutMs: 30_000,
      }),
    );
  }
  return instances;
}

function ws(instance: Instance): Promise<Client> {
  return stompClient(`ws://127.0.0.1:${instance.port}/stomp`);
}

/** Subscribes with a receipt and waits for it. */
async function subscribe(
  client: Client,
  destination: string,
  onMessage: (m: IMessage) => void,
  headers: Record<string, string> = {},
): Promise<void> {
  const receipt = uniqueName('sub');
  const done = new Promise<void>((resolve) => client.watchForReceipt(receipt, () => resolve()));
  client.subscribe(destination, onMessage, { ...headers, receipt });
  await done;
}

/** The partitions of the queues topic an instance owns, from its metrics. */
async function owned(instance: Instance): Promise<number[]> {
  const text = await (await fetch(`http://127.0.0.1:${instance.adminPort}/metrics`)).text();
  return [...text.matchAll(/^stompbus_queue_partitions_owned\{partition="(\d+)"\} 1$/gm)].map((m) =>
    Number(m[1]),
  );
}

/** Waits until every one of the queues topic's 3 partitions is owned by exactly one instance. */
async function ownersSettled(of: Instance[], timeoutMs = 30_000): Promise<Map<number, Instance>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const owners = new Map<number, Instance>();
    let twice = false;
    for (const instance of of) {
      for (const p of await owned(instance).catch(() => [])) {
        if (owners.has(p)) twice = true;
        owners.set(p, instance);
      }
    }
    if (!twice && owners.size === 3) return owners;
    if (Date.now() > deadline)
      throw new Error(`queue partitions not settled: ${[...owners.keys()]}`);
    await sleep(200);
  }
}

/** The queues topic's partition of a queue name (murmur2, as the producer places it). */
async function partitionOf(queue: string): Promise<number> {
  const { partitionFor } = await import('../../src/cluster/partitioner.js');
  return partitionFor(queue, 3);
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const bodies = (messages: IMessage[]) => messages.map((m) => m.body);

describe.skipIf(skipKafka)('cluster-wide queues (real Kafka, instances as processes)', () => {
  it('a producer on A, consumers on B and C: each gets a share, every message exactly once', async () => {
    const [a, b, c] = await cluster(3);
    const queue = `/queue/${uniqueName('work')}`;
    const onB = new Inbox();
    const onC = new Inbox();
    const consumerB = await ws(b as Instance);
    const consumerC = await ws(c as Instance);
    const ackEach = (inbox: Inbox) => (m: IMessage) => {
      inbox.take(m);
      m.ack();
    };
    await subscribe(consumerB, queue, ackEach(onB), {
      ack: 'client-individual',
      'prefetch-count': '5',
    });
    await subscribe(consumerC, queue, ackEach(onC), {
      ack: 'client-individual',
      'prefetch-count': '5',
    });
    const producer = await ws(a as Instance);
    const sent: string[] = [];
    for (let i = 0; i < 60; i++) {
      sent.push(`m${i}`);
      await publishWithReceipt(producer, { destination: queue, body: `m${i}` });
    }
    await until(() => onB.messages.length + onC.messages.length >= 60, 20_000, 'all 60');
    await sleep(500);
    const all = [...bodies(onB.messages), ...bodies(onC.messages)];
    expect(all.sort()).toEqual([...sent].sort());
    expect(onB.messages.length).toBeGreaterThan(0);
    expect(onC.messages.length).toBeGreaterThan(0);
    // Each consumer sees its share in the order sent.
    for (const inbox of [onB, onC]) {
      const n = bodies(inbox.messages).map((b) => Number(b.slice(1)));
      expect(n).toEqual([...n].sort((x, y) => x - y));
      expect(inbox.messages.every((m) => m.headers.redelivered === undefined)).toBe(true);
    }
  }, 120_000);

  it('a NACK on B redelivers to C, marked redelivered', async () => {
    const [a, b, c] = await cluster(3);
    const queue = `/queue/${uniqueName('nack')}`;
    const onB = new Inbox();
    const onC = new Inbox();
    const consumerB = await ws(b as Instance);
    const consumerC = await ws(c as Instance);
    await subscribe(
      consumerB,
      queue,
      (m) => {
        onB.take(m);
        m.nack();
      },
      { ack: 'client-individual' },
    );
    await subscribe(
      consumerC,
      queue,
      (m) => {
        onC.take(m);
        m.ack();
      },
      { ack: 'client-individual' },
    );
    const producer = await ws(a as Instance);
    for (let i = 0; i < 10; i++) {
      await publishWithReceipt(producer, { destination: queue, body: `n${i}` });
    }
    await until(() => new Set(bodies(onC.messages)).size >= 10, 20_000, 'every message acked on C');
    expect(new Set(bodies(onC.messages)).size).toBe(10);
    expect(onB.messages.length).toBeGreaterThan(0);
    // What B rejected reached C, marked redelivered.
    for (const body of bodies(onB.messages)) {
      const again = onC.messages.find((m) => m.body === body);
      expect(again?.headers.redelivered).toBe('true');
    }
  }, 120_000);

  it("a consumer's instance SIGKILLed: what it held unacknowledged reaches the other consumer", async () => {
    const [a, b, c] = await cluster(3);
    const queue = `/queue/${uniqueName('kill')}`;
    const onB = new Inbox();
    const onC = new Inbox();
    const consumerB = await ws(b as Instance);
    // B takes and never acknowledges.
    await subscribe(consumerB, queue, onB.take, {
      ack: 'client-individual',
      'prefetch-count': '4',
    });
    const producer = await ws(a as Instance);
    for (let i = 0; i < 4; i++) {
      await publishWithReceipt(producer, { destination: queue, body: `k${i}` });
    }
    await onB.waitFor(4, 15_000);
    const consumerC = await ws(c as Instance);
    await subscribe(
      consumerC,
      queue,
      (m) => {
        onC.take(m);
        m.ack();
      },
      { ack: 'client-individual' },
    );
    await sleep(300);
    // C has room, but everything is held by B.
    expect(onC.messages).toEqual([]);
    const killedAt = Date.now();
    await killChild(b as Instance);
    await onC.waitFor(4, 20_000);
    const tookMs = Date.now() - killedAt;
    expect(bodies(onC.messages).sort()).toEqual(['k0', 'k1', 'k2', 'k3']);
    expect(onC.messages.every((m) => m.headers.redelivered === 'true')).toBe(true);
    // Three heart-beats of 300 ms, and the owner's clock; not the Kafka session timeout.
    expect(tookMs).toBeLessThan(10_000);
  }, 120_000);

  it('the owning instance SIGKILLed mid-traffic: nothing receipted is lost', async () => {
    const all = await cluster(3);
    const queue = `/queue/${uniqueName('owner')}`;
    const owners = await ownersSettled(all);
    const owner = owners.get(await partitionOf(queue)) as Instance;
    const others = all.filter((i) => i !== owner);
    const [p, q] = others as [Instance, Instance];
    const received: IMessage[] = [];
    for (const instance of [p, q]) {
      const consumer = await ws(instance);
      await subscribe(
        consumer,
        queue,
        (m) => {
          received.push(m);
          m.ack();
        },
        { ack: 'client-individual', 'prefetch-count': '10' },
      );
    }
    const producer = await ws(p);
    const receipted: string[] = [];
    for (let i = 0; i < 120; i++) {
      if (i === 40) await killChild(owner);
      await publishWithReceipt(producer, { destination: queue, body: `o${i}` });
      receipted.push(`o${i}`);
      await sleep(10);
    }
    // A new owner takes the partition over after the group's session timeout.
    await until(
      () => receipted.every((b) => received.some((m) => m.body === b)),
      45_000,
      'every receipted message',
    );
    const seen = new Set(bodies(received));
    expect(receipted.filter((b) => !seen.has(b))).toEqual([]);
  }, 150_000);

  it('the dead letter queue is a cluster queue: read on another instance', async () => {
    const [a, b, c] = await cluster(3, ['--max-deliveries', '2']);
    const queue = `/queue/${uniqueName('poison')}`;
    const consumerB = await ws(b as Instance);
    let tries = 0;
    await subscribe(
      consumerB,
      queue,
      (m) => {
        tries++;
        m.nack();
      },
      { ack: 'client-individual' },
    );
    const dead = new Inbox();
    const dlq = await ws(c as Instance);
    await subscribe(dlq, '/queue/DLQ', dead.take);
    const producer = await ws(a as Instance);
    await publishWithReceipt(producer, { destination: queue, body: 'poison' });
    const [letter] = await dead.waitFor(1, 20_000);
    expect(letter?.body).toBe('poison');
    expect(letter?.headers['original-destination']).toBe(queue);
    expect(letter?.headers['delivery-count']).toBe('2');
    expect(tries).toBe(2);
  }, 120_000);

  it('acked means gone: taken and acked on B, a SUBSCRIBE on C right after gets none of it (10 rounds)', async () => {
    const [a, b, c] = await cluster(3);
    const producer = await ws(a as Instance);
    for (let round = 0; round < 10; round++) {
      const queue = `/queue/${uniqueName('acked')}`;
      for (let i = 0; i < 20; i++) {
        await publishWithReceipt(producer, { destination: queue, body: `r${round}-${i}` });
      }
      const consumer = await ws(b as Instance);
      const taken = new Inbox();
      await subscribe(consumer, queue, taken.take, { ack: 'client-individual' });
      await taken.waitFor(20, 15_000);
      for (const [i, m] of taken.messages.entries()) {
        if (i < taken.messages.length - 1) m.ack();
      }
      // The last ACK with a receipt: all ACKs before it are done too (frame order).
      const receipt = uniqueName('ack');
      const acked = new Promise<void>((resolve) =>
        consumer.watchForReceipt(receipt, () => resolve()),
      );
      (taken.messages.at(-1) as IMessage).ack({ receipt });
      await acked;
      await consumer.deactivate();
      const again = new Inbox();
      const other = await ws(c as Instance);
      await subscribe(other, queue, again.take, { ack: 'client-individual' });
      await sleep(400);
      expect(bodies(again.messages)).toEqual([]);
      await other.deactivate();
    }
  }, 240_000);

  it('a full queue refuses SENDs on every instance with STOMP_ERR_QUEUE_FULL; nothing receipted is lost', async () => {
    const [a, b] = await cluster(2, ['--max-queue-messages', '5']);
    const queue = `/queue/${uniqueName('full')}`;
    const producer = await ws(a as Instance);
    for (let i = 0; i < 5; i++)
      await publishWithReceipt(producer, { destination: queue, body: `f${i}` });
    // The owner says "full" through Kafka: B refuses once it has read it.
    const refusedAt = Date.now();
    let error: Awaited<ReturnType<RawClient['expectErrorAndClose']>> | undefined;
    let accepted = 0;
    while (!error && Date.now() - refusedAt < 10_000) {
      const raw = await RawClient.ws(`ws://127.0.0.1:${(b as Instance).port}/stomp`);
      await raw.connect();
      raw.send(`SEND\ndestination:${queue}\nreceipt:x\n\nextra\0`);
      const answer = await raw.waitFor(
        () => raw.frames.find((f) => f.command === 'RECEIPT' || f.command === 'ERROR'),
        5_000,
        'RECEIPT or ERROR',
      );
      if (answer.command === 'ERROR') {
        error = answer;
        await raw.closed;
      } else {
        accepted++;
        raw.destroy();
        await sleep(100);
      }
    }
    expect(error && getHeader(error, 'message')).toBe('STOMP_ERR_QUEUE_FULL');
    expect(error && getHeader(error, 'receipt-id')).toBe('x');
    // The producer on A is unaffected, and every receipted message is there for a consumer.
    expect(producer.connected).toBe(true);
    const inbox = new Inbox();
    await subscribe(await ws(b as Instance), queue, inbox.take);
    await inbox.waitFor(5 + accepted, 15_000);
    expect(bodies(inbox.messages).slice(0, 5)).toEqual(['f0', 'f1', 'f2', 'f3', 'f4']);
  }, 120_000);

  it('--queues local keeps one queue per instance', async () => {
    const [a, b] = await cluster(2, ['--queues', 'local']);
    const queue = `/queue/${uniqueName('local')}`;
    const onB = new Inbox();
    const onA = new Inbox();
    await subscribe(await ws(b as Instance), queue, onB.take);
    await subscribe(await ws(a as Instance), queue, onA.take);
    const producer = await ws(a as Instance);
    await publishWithReceipt(producer, { destination: queue, body: 'here' });
    await onA.waitFor(1, 5_000);
    await sleep(500);
    expect(bodies(onA.messages)).toEqual(['here']);
    expect(onB.messages).toEqual([]);
  }, 120_000);
});
