import type { Client } from '@stomp/stompjs';
import { describe, expect, it } from 'vitest';
import { partitionFor } from '../../src/cluster/partitioner.js';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import type { KafkaFanout } from '../../src/kafka.js';
import type { StompServer } from '../../src/server.js';
import { skipKafka, startCluster, uniqueName } from '../helpers/cluster.js';
import { RawClient } from '../helpers/raw-client.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';

/**
 * `--kafka-interest subscribed` with a real Kafka (docs/cluster-interest.md):
 * an instance fetches only the partitions of the topics topic that hold a
 * destination its clients subscribe to, picks a partition up from its live end
 * when the first subscriber comes and lets it go a linger after the last one
 * left; a resume where the partition is not read is read back from Kafka.
 */

if (skipKafka) console.warn('!!! cluster-interest.spec.ts SKIPPED: no Kafka broker');

const PARTITIONS = 3;
const LINGER_MS = 1_000;
const TIMEOUT_MS = 15_000;

/** A destination `/topic/<prefix>-<i>` that lands in `partition` (of {@link PARTITIONS}). */
function destinationIn(partition: number, prefix: string): string {
  for (let i = 0; ; i++) {
    const destination = `/topic/${prefix}-${i}`;
    if (partitionFor(destination, PARTITIONS) === partition) return destination;
  }
}

function fanoutOf(server: StompServer): KafkaFanout {
  return server.broker.fanout as KafkaFanout;
}

/** Records of the cluster's topics topic this instance fetched (one partition, or all). */
function fetchedOf(server: StompServer, topic: string, partition?: number): number {
  return fanoutOf(server).fetched.of(topic, partition);
}

async function interestCluster(count: number) {
  return startCluster(count, {
    kafkaPartitions: PARTITIONS,
    kafkaInterest: 'subscribed',
    kafkaInterestLingerMs: LINGER_MS,
  });
}

async function subscribed(client: Client, destination: string) {
  const inbox = new Inbox();
  const receipt = uniqueName('sub');
  const done = new Promise<void>((resolve) => client.watchForReceipt(receipt, () => resolve()));
  const subscription = client.subscribe(destination, inbox.take, { receipt });
  await done;
  return { inbox, subscription };
}

async function raw(url: string, login?: string): Promise<RawClient> {
  const client = await RawClient.ws(url);
  await client.connect(login ? { login, passcode: 'pw' } : {});
  return client;
}

/** A user name `<prefix>-<i>` whose records land in `partition` of the users topic. */
function userIn(partition: number, prefix: string): string {
  for (let i = 0; ; i++) {
    const user = `${prefix}-${i}`;
    if (partitionFor(`/user/${user}`, PARTITIONS) === partition) return user;
  }
}

async function until(check: () => boolean, what: string, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe.skipIf(skipKafka)(
  'cluster interest: each instance reads only what its clients want',
  () => {
    it('delivers across instances once and in order, and an instance fetches nothing of a partition nobody there wants', async () => {
      const { instances, topic } = await interestCluster(3);
      const [a, b, c] = instances as [StompServer, StompServer, StompServer];
      const x = destinationIn(0, 'x');
      const y = destinationIn(1, 'y');
      // Before any subscriber, no partition of the topics topic is read anywhere.
      for (const server of instances) expect(fanoutOf(server).interestPartitions()).toEqual([]);

      const subscriber = await stompClient(b.url);
      const { inbox } = await subscribed(subscriber, x);
      expect(fanoutOf(b).interestPartitions()).toEqual([0]);

      const publisher = await stompClient(a.url);
      const count = 100;
      const sends: Promise<void>[] = [];
      for (let i = 0; i < count; i++) {
        // Half to a destination nobody subscribes to, in another partition.
        publisher.publish({ destination: y, body: `y${i}` });
        if (i % 10 === 9)
          sends.push(publishWithReceipt(publisher, { destination: x, body: `x${i}` }));
        else publisher.publish({ destination: x, body: `x${i}` });
      }
      await Promise.all(sends);
      const got = await inbox.waitFor(count, TIMEOUT_MS);
      await sleep(300);
      expect(inbox.messages.map((m) => m.body)).toEqual(
        Array.from({ length: count }, (_, i) => `x${i}`),
      );
      expect(new Set(got.map((m) => m.headers['message-id'])).size).toBe(count);

      // B fetched its partition and nothing else; A (publisher only) and C fetched nothing of it.
      expect(fetchedOf(b, topic, 0)).toBeGreaterThanOrEqual(count);
      expect(fetchedOf(b, topic, 1)).toBe(0);
      expect(fetchedOf(b, topic, 2)).toBe(0);
      expect(fetchedOf(a, topic)).toBe(0);
      expect(fetchedOf(c, topic)).toBe(0);
      // The presence topic is read everywhere; the users topic only where a user has a session.
      expect(fetchedOf(c, `${topic}.presence`)).toBeGreaterThan(0);
      expect(fanoutOf(c).userPartitions()).toEqual([]);
      // A queue (local, never through Kafka) picks no partition up.
      await subscribed(await stompClient(c.url), '/queue/jobs');
      expect(fanoutOf(c).interestPartitions()).toEqual([]);
    });

    it('picks a partition up and lets it go as subscribers come and go, with nothing lost, old or twice', async () => {
      const { instances, topic } = await interestCluster(3);
      const [a, b, c] = instances as [StompServer, StompServer, StompServer];
      const x = destinationIn(2, 'churn');
      // A subscriber on C stays all along: it must see every message once, in order.
      const steady = await subscribed(await stompClient(c.url), x);

      // A publisher that keeps sending with receipts, numbering its messages.
      const publisher = await stompClient(a.url);
      let next = 0;
      let acked = -1;
      let publishing = true;
      const publishLoop = (async () => {
        while (publishing) {
          const seq = next++;
          await publishWithReceipt(publisher, { destination: x, body: String(seq) });
          acked = seq;
          await sleep(5);
        }
      })();

      const client = await stompClient(b.url);
      const checkRun = (inbox: Inbox, ackedBefore: number, sentAfter: number, last: number) => {
        const seqs = inbox.messages.map((m) => Number(m.body));
        // Contiguous and ascending: nothing lost, nothing twice.
        expect(seqs).toEqual(
          Array.from({ length: seqs.length }, (_, i) => (seqs[0] as number) + i),
        );
        // Nothing acknowledged before the SUBSCRIBE was sent is delivered as new,
        // and everything sent after its RECEIPT arrives.
        expect(seqs[0]).toBeGreaterThan(ackedBefore);
        expect(seqs[0]).toBeLessThanOrEqual(sentAfter);
        expect(seqs.at(-1)).toBeGreaterThanOrEqual(last);
      };

      for (let round = 0; round < 2; round++) {
        await until(() => acked >= 20 * (round + 1), 'some traffic');
        const ackedBefore = acked;
        const { inbox, subscription } = await subscribed(client, x);
        const sentAfter = next;
        expect(fanoutOf(b).interestPartitions()).toEqual([2]);
        await until(() => acked >= sentAfter + 20, 'traffic after the subscription');
        const last = acked;
        await until(
          () => Number(inbox.messages.at(-1)?.body ?? -1) >= last,
          'the subscriber caught up',
        );
        subscription.unsubscribe();
        await sleep(100);
        checkRun(inbox, ackedBefore, sentAfter, last);

        // Let go after the linger: B fetches nothing of the partition while traffic goes on.
        await until(
          () => fanoutOf(b).interestPartitions()?.length === 0,
          'the partition is let go',
        );
        const fetched = fetchedOf(b, topic, 2);
        const ackedAtRelease = acked;
        await until(() => acked >= ackedAtRelease + 20, 'traffic while let go');
        expect(fetchedOf(b, topic, 2)).toBe(fetched);
      }
      publishing = false;
      await publishLoop;
      await until(
        () => Number(steady.inbox.messages.at(-1)?.body ?? -1) >= acked,
        'the steady subscriber caught up',
      );
      const all = steady.inbox.messages.map((m) => Number(m.body));
      expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i));
    });

    it('serves a resume where the partition is not read from Kafka: every missed message once, then live, complete', async () => {
      const { instances, topic } = await interestCluster(3);
      const [a, b, c] = instances as [StompServer, StompServer, StompServer];
      const x = destinationIn(1, 'resume');
      const other = destinationIn(1, 'other');
      const reader = await raw(b.url);
      reader.send(`SUBSCRIBE\nid:s\ndestination:${x}\nreceipt:s\n\n\0`);
      await reader.receipt('s', TIMEOUT_MS);
      const publisher = await raw(a.url);
      for (let i = 0; i < 5; i++) publisher.send(`SEND\ndestination:${x}\n\nseen ${i}\0`);
      publisher.send(`SEND\ndestination:${x}\nreceipt:p0\n\nseen 5\0`);
      await publisher.receipt('p0', TIMEOUT_MS);
      const seen = await reader.messages(6, undefined, TIMEOUT_MS);
      const position = getHeader(seen[5] as Frame, 'x-position') as string;
      reader.destroy();

      // Missed, mixed with traffic to another destination of the same partition.
      for (let i = 0; i < 300; i++) {
        publisher.send(`SEND\ndestination:${x}\n\nmissed ${i}\0`);
        publisher.send(`SEND\ndestination:${other}\n\nother ${i}\0`);
      }
      publisher.send(`SEND\ndestination:${x}\nreceipt:p1\n\nmissed 300\0`);
      await publisher.receipt('p1', TIMEOUT_MS);
      // C never read the partition: the resume is cold there.
      expect(fetchedOf(c, topic)).toBe(0);

      const back = await raw(c.url);
      back.send(`SUBSCRIBE\nid:s\ndestination:${x}\nx-resume-after:${position}\nreceipt:r\n\n\0`);
      expect(getHeader(await back.receipt('r', TIMEOUT_MS), 'x-resume')).toBe('complete');
      publisher.send(`SEND\ndestination:${x}\nreceipt:p2\n\nlive\0`);
      await publisher.receipt('p2', TIMEOUT_MS);
      const expected = [...Array.from({ length: 301 }, (_, i) => `missed ${i}`), 'live'];
      const got = await back.messages(expected.length, undefined, TIMEOUT_MS);
      await sleep(300);
      expect(back.all('MESSAGE').map(bodyText)).toEqual(expected);
      expect(getHeader(got[0] as Frame, 'x-resume')).toBe('complete');
    });

    it('serves a resume where the partition is read but only since after the position: read back by offset, then live, once each, complete', async () => {
      const { instances, topic } = await interestCluster(3);
      const [a, b] = instances as [StompServer, StompServer, StompServer];
      const x = destinationIn(2, 'warm');
      const other = destinationIn(2, 'warm-other');
      const reader = await raw(a.url);
      reader.send(`SUBSCRIBE\nid:s\ndestination:${x}\nreceipt:s\n\n\0`);
      await reader.receipt('s', TIMEOUT_MS);
      const publisher = await raw(a.url);
      publisher.send(`SEND\ndestination:${x}\nreceipt:p0\n\nseen\0`);
      await publisher.receipt('p0', TIMEOUT_MS);
      const [seen] = await reader.messages(1, undefined, TIMEOUT_MS);
      const position = getHeader(seen as Frame, 'x-position') as string;
      reader.destroy();
      for (let i = 0; i < 200; i++) {
        publisher.send(`SEND\ndestination:${x}\n\nmissed ${i}\0`);
        publisher.send(`SEND\ndestination:${other}\n\nother ${i}\0`);
      }
      publisher.send(`SEND\ndestination:${x}\nreceipt:p1\n\nmissed 200\0`);
      await publisher.receipt('p1', TIMEOUT_MS);
      expect(fetchedOf(b, topic)).toBe(0);

      // B picks the partition up for a subscriber of another destination: from its live end.
      const steady = await raw(b.url);
      steady.send(`SUBSCRIBE\nid:s\ndestination:${other}\nreceipt:s\n\n\0`);
      await steady.receipt('s', TIMEOUT_MS);
      expect(fanoutOf(b).interestPartitions()).toEqual([2]);
      for (let i = 0; i < 50; i++) {
        publisher.send(`SEND\ndestination:${x}\n\nafter ${i}\0`);
        publisher.send(`SEND\ndestination:${other}\n\nlive ${i}\0`);
      }
      publisher.send(`SEND\ndestination:${other}\nreceipt:p2\n\nlive 50\0`);
      await publisher.receipt('p2', TIMEOUT_MS);
      await steady.messages(51, undefined, TIMEOUT_MS);

      // B reads partition 2 since after the position: the resume reads the rest back.
      const back = await raw(b.url);
      back.send(`SUBSCRIBE\nid:s\ndestination:${x}\nx-resume-after:${position}\nreceipt:r\n\n\0`);
      expect(getHeader(await back.receipt('r', TIMEOUT_MS), 'x-resume')).toBe('complete');
      publisher.send(`SEND\ndestination:${x}\n\nnow\0`);
      publisher.send(`SEND\ndestination:${other}\nreceipt:p3\n\nlive 51\0`);
      await publisher.receipt('p3', TIMEOUT_MS);
      const expected = [
        ...Array.from({ length: 201 }, (_, i) => `missed ${i}`),
        ...Array.from({ length: 50 }, (_, i) => `after ${i}`),
        'now',
      ];
      await back.messages(expected.length, undefined, TIMEOUT_MS);
      await steady.messages(52, undefined, TIMEOUT_MS);
      await sleep(300);
      expect(back.all('MESSAGE').map(bodyText)).toEqual(expected);
      // The subscriber already there got nothing read back, nothing twice.
      expect(steady.all('MESSAGE').map(bodyText)).toEqual(
        Array.from({ length: 52 }, (_, i) => `live ${i}`),
      );
    });

    it("reads a user's traffic only where the user has a session: a user moving between instances gets every message once, the offline mailbox read back where the user comes back", async () => {
      const sender = userIn(0, 'sender');
      const bob = userIn(1, 'bob');
      const { instances, topic } = await startCluster(3, {
        kafkaPartitions: PARTITIONS,
        kafkaInterest: 'subscribed',
        kafkaInterestLingerMs: LINGER_MS,
        users: new Map([
          [sender, 'pw'],
          [bob, 'pw'],
        ]),
      });
      const usersTopic = `${topic}.users`;
      const [a, b, c] = instances as [StompServer, StompServer, StompServer];
      for (const server of instances) expect(fanoutOf(server).userPartitions()).toEqual([]);
      const alice = await raw(a.url, sender);
      await until(
        () => fanoutOf(a).userPartitions()?.join() === '0',
        'A reads the sender’s partition',
      );

      const onB = await raw(b.url, bob);
      const inbox = '/user/queue/inbox';
      onB.send(`SUBSCRIBE\nid:in\ndestination:${inbox}\nack:client-individual\nreceipt:s\n\n\0`);
      await onB.receipt('s', TIMEOUT_MS);
      expect(fanoutOf(b).userPartitions()).toEqual([1]);
      const send = async (from: number, to: number) => {
        for (let i = from; i < to; i++) {
          alice.send(`SEND\ndestination:/user/${bob}/queue/inbox\nreceipt:m${i}\n\nm${i}\0`);
        }
        await alice.receipt(`m${to - 1}`, TIMEOUT_MS);
      };
      await send(0, 50);
      const got = await onB.messages(50, undefined, TIMEOUT_MS);
      expect(got.map(bodyText)).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
      // 30 consumed on B; 20 left unacknowledged when bob leaves B.
      for (const m of got.slice(0, 30)) onB.send(`ACK\nid:${getHeader(m, 'ack')}\n\n\0`);
      // B reads its own consumption records back: they are in Kafka.
      await until(() => fetchedOf(b, usersTopic, 1) >= 80, 'the consumption records are in Kafka');
      onB.send('DISCONNECT\nreceipt:bye\n\n\0');
      await onB.receipt('bye');
      // Offline: kept in Kafka only.
      await send(50, 80);
      // Neither C nor A (whose sender writes to it) ever fetched bob's partition.
      expect(fetchedOf(c, usersTopic, 1)).toBe(0);
      expect(fetchedOf(a, usersTopic, 1)).toBe(0);

      // bob comes back on C: his mailbox is read back there before the SUBSCRIBE is answered.
      const onC = await raw(c.url, bob);
      onC.send(`SUBSCRIBE\nid:in\ndestination:${inbox}\nack:client-individual\nreceipt:s\n\n\0`);
      await onC.receipt('s', TIMEOUT_MS);
      await send(80, 81);
      const back = await onC.messages(51, undefined, TIMEOUT_MS);
      await sleep(300);
      expect(onC.all('MESSAGE').map(bodyText)).toEqual(
        Array.from({ length: 51 }, (_, i) => `m${30 + i}`),
      );
      for (const m of back) onC.send(`ACK\nid:${getHeader(m, 'ack')}\n\n\0`);
      expect(fetchedOf(c, usersTopic, 1)).toBeGreaterThan(0);
      expect(fanoutOf(c).userPartitions()).toEqual([1]);

      // B lets bob's partition go after the linger and fetches nothing of it while traffic goes on.
      await until(() => fanoutOf(b).userPartitions()?.length === 0, 'B lets bob’s partition go');
      await sleep(300);
      const fetched = fetchedOf(b, usersTopic, 1);
      await send(81, 101);
      await onC.messages(71, undefined, TIMEOUT_MS);
      expect(fetchedOf(b, usersTopic, 1)).toBe(fetched);
      expect(fetchedOf(a, usersTopic, 1)).toBe(0);
      expect(onC.all('MESSAGE').map(bodyText).slice(51)).toEqual(
        Array.from({ length: 20 }, (_, i) => `m${81 + i}`),
      );
    });
  },
);
