import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionFor } from '../../src/cluster/partitioner.js';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import {
  clusterTopics,
  deleteTopicsAfterTest,
  kafkaBrokers,
  plainAdmin,
  skipKafka,
  uniqueName,
} from '../helpers/cluster.js';
import {
  buildDist,
  type Instance,
  killAllChildren,
  ROOT,
  sleep,
  startInstance,
  terminateChild,
} from '../helpers/haproxy.js';
import { RawClient } from '../helpers/raw-client.js';

/**
 * docs/cluster-interest.md "Growing the partitions of a live cluster", run
 * step by step against the real Kafka with instances as processes: stop
 * every instance with SIGTERM, grow both topics with the command the page
 * shows, start them again with `--kafka-interest all`, let clients back in
 * once every /readyz answers 200, and later return to `subscribed` with a
 * rolling restart. What the page promises is checked: every destination's
 * messages once and in order on both sides of the change, an offline user's
 * mailbox from before the change delivered after it, resumes from before the
 * change served from the earlier partition (`complete`) and going on with the
 * new one, and destinations really on their new partitions afterwards.
 */

if (skipKafka) console.warn('!!! partition-growth.spec.ts SKIPPED: no Kafka broker');

const run = promisify(execFile);
const TIMEOUT_MS = 20_000;
const USER_FLAGS = ['--user', 'alice:a-secret', '--user', 'bob:b-secret'];
const PASSCODES: Record<string, string> = { alice: 'a-secret', bob: 'b-secret' };
const DESTINATIONS = Array.from({ length: 12 }, (_, i) => `/topic/grow-${i}`);
const PER_DESTINATION = 20;
const BEFORE = 6;
const AFTER = 12;

const wsUrl = (port: number) => `ws://127.0.0.1:${port}/stomp`;

async function raw(port: number, login?: string): Promise<RawClient> {
  const client = await RawClient.ws(wsUrl(port));
  await client.connect(login ? { login, passcode: PASSCODES[login] ?? '' } : {});
  return client;
}

/** Subscribes to every destination of the spec; resolves once the broker confirmed. */
async function subscribeAll(client: RawClient): Promise<void> {
  for (const [i, destination] of DESTINATIONS.entries()) {
    client.send(`SUBSCRIBE\nid:s${i}\ndestination:${destination}\nreceipt:s${i}\n\n\0`);
  }
  await client.receipt(`s${DESTINATIONS.length - 1}`, TIMEOUT_MS);
}

/** `PER_DESTINATION` messages to each destination, interleaved, every one receipted. */
async function publish(client: RawClient, label: string): Promise<void> {
  let n = 0;
  for (let k = 0; k < PER_DESTINATION; k++) {
    for (const destination of DESTINATIONS) {
      client.send(`SEND\ndestination:${destination}\nreceipt:${label}-${n++}\n\n${label} ${k}\0`);
    }
  }
  await client.receipt(`${label}-${n - 1}`, TIMEOUT_MS);
  expect(
    client.all('RECEIPT').filter((r) => getHeader(r, 'receipt-id')?.startsWith(label)),
  ).toHaveLength(n);
}

/** Per destination, the bodies received, in arrival order. */
function byDestination(frames: Frame[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const frame of frames) {
    const destination = getHeader(frame, 'destination') as string;
    out.set(destination, [...(out.get(destination) ?? []), bodyText(frame)]);
  }
  return out;
}

function expectEveryOnceInOrder(frames: Frame[], label: string): void {
  const got = byDestination(frames);
  const expected = Array.from({ length: PER_DESTINATION }, (_, k) => `${label} ${k}`);
  for (const destination of DESTINATIONS) expect(got.get(destination)).toEqual(expected);
  expect(frames).toHaveLength(DESTINATIONS.length * PER_DESTINATION);
}

/**
 * A subscriber to every destination on one instance, a publisher (alice) on another, a round
 * of `publish`; checks that every message came once and in order, and returns the clients
 * and what the subscriber got.
 */
async function traffic(subscribeOn: number, publishOn: number, label: string) {
  const subscriber = await raw(subscribeOn, 'alice');
  await subscribeAll(subscriber);
  const publisher = await raw(publishOn, 'alice');
  await publish(publisher, label);
  const frames = await subscriber.messages(
    DESTINATIONS.length * PER_DESTINATION,
    undefined,
    TIMEOUT_MS,
  );
  expectEveryOnceInOrder(frames, label);
  return { subscriber, publisher, frames };
}

/** Per destination, the partition its messages carry in `x-position` (`p<partition>-<offset>`). */
function partitionsOf(frames: Frame[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const frame of frames) {
    const position = getHeader(frame, 'x-position') as string;
    out.set(getHeader(frame, 'destination') as string, Number(/^p(\d+)-/.exec(position)?.[1]));
  }
  return out;
}

/** Step 1: SIGTERM, then the instance drains and exits by itself. */
async function terminate(instance: Instance): Promise<void> {
  expect(await terminateChild(instance), `${instance.name} exits on SIGTERM`).toBe(true);
}

/** The growth command of docs/cluster-interest.md, with this spec's Kafka and topics. */
function documentedGrowCommand(topic: string): string {
  const page = readFileSync(join(ROOT, 'docs', 'cluster-interest.md'), 'utf8');
  const section = page.slice(page.indexOf('### Growing the partitions of a live cluster'));
  const command = /```sh\n\s*(node -e .*createPartitions.*)\n\s*```/.exec(section)?.[1];
  if (!command) throw new Error('no growth command in docs/cluster-interest.md');
  expect(command).toContain("'127.0.0.1:9092'");
  expect(command).toContain("'stompbus.topics'");
  expect(command).toContain("'stompbus.topics.users'");
  expect(command).toContain(`count: 120`);
  return command
    .replace("'127.0.0.1:9092'", `'${kafkaBrokers.split(',')[0]}'`)
    .replaceAll("'stompbus.topics.users'", `'${topic}.users'`)
    .replaceAll("'stompbus.topics'", `'${topic}'`)
    .replaceAll('count: 120', `count: ${AFTER}`);
}

describe.skipIf(skipKafka)(
  'cluster: growing the partitions by the documented procedure (instances as processes)',
  () => {
    const topic = uniqueName('stompbus-grow');
    const names = ['grow-a', 'grow-b'];
    let instances: Instance[] = [];

    const start = (interest: 'all' | 'subscribed', i: number, ports?: Instance) =>
      startInstance(names[i] as string, {
        kafkaBrokers,
        kafkaTopic: topic,
        timeoutMs: 40_000,
        ...(ports ? { port: ports.port, tcpPort: ports.tcpPort, adminPort: ports.adminPort } : {}),
        args: [
          ...USER_FLAGS,
          '--kafka-partitions',
          String(BEFORE),
          '--kafka-interest',
          interest,
          '--presence-interval',
          '500',
        ],
      });

    beforeAll(async () => {
      await buildDist();
      deleteTopicsAfterTest(clusterTopics(topic));
      instances = [await start('subscribed', 0), await start('subscribed', 1)];
    }, 120_000);

    afterAll(killAllChildren);

    it('keeps every destination in order, finds an old mailbox, resumes across the change', async () => {
      const [a, b] = instances as [Instance, Instance];

      // Before: traffic from a to a subscriber on b, and letters for bob, who is offline.
      const {
        subscriber: before,
        publisher: alice,
        frames: old,
      } = await traffic(b.port, a.port, 'before');
      const oldPartitions = partitionsOf(old);
      for (const p of oldPartitions.values()) expect(p).toBeLessThan(BEFORE);
      // Where a resume from before the change starts: after each destination's first message.
      const firstPosition = (destination: string) =>
        getHeader(
          old.find((m) => getHeader(m, 'destination') === destination) as Frame,
          'x-position',
        ) as string;
      for (let i = 0; i < 5; i++) {
        alice.send(`SEND\ndestination:/user/bob/queue/inbox\nreceipt:letter-${i}\n\nletter ${i}\0`);
      }
      await alice.receipt('letter-4', TIMEOUT_MS);
      before.destroy();
      alice.destroy();

      // 1. Every instance stopped with SIGTERM.
      await terminate(a);
      await terminate(b);

      // 2. The topics grown with the page's command, run from this checkout.
      await run('bash', ['-c', documentedGrowCommand(topic)], { cwd: ROOT, timeout: 30_000 });
      const admin = await plainAdmin();
      const metadata = await admin.fetchTopicMetadata({ topics: [topic, `${topic}.users`] });
      await admin.disconnect();
      for (const t of metadata.topics) expect(t.partitions).toHaveLength(AFTER);

      // 3. and 4. Started again with `all`, clients let in once both answer /readyz 200
      // (startInstance waits for that).
      const a2 = await start('all', 0, a);
      const b2 = await start('all', 1, b);
      instances = [a2, b2];

      // The mailbox from before the change, where bob connects now. Bob's records moved to
      // another partition, so only the read-back of `all` finds his letters.
      expect(partitionFor('/user/bob', AFTER)).not.toBe(partitionFor('/user/bob', BEFORE));
      const bob = await raw(a2.port, 'bob');
      bob.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nack:client-individual\n\n\0');
      const letters = await bob.messages(5, undefined, TIMEOUT_MS);
      expect(letters.map(bodyText)).toEqual(Array.from({ length: 5 }, (_, i) => `letter ${i}`));
      for (const m of letters) bob.send(`ACK\nid:${getHeader(m, 'ack')}\n\n\0`);

      // A resume from before the change names the destination's partition before it: the
      // instances of step 3 read every partition back, so the resume is served from there
      // (complete), for a destination that moved as for one that stayed, and goes on with
      // the live messages of the partition the destination has now.
      const moves = (d: string) => partitionFor(d, AFTER) !== partitionFor(d, BEFORE);
      const moved = DESTINATIONS.find(moves) as string;
      const stayed = DESTINATIONS.find((d) => !moves(d)) as string;
      expect([moved, stayed].every(Boolean)).toBe(true);
      const resumer = await raw(b2.port, 'alice');
      for (const [id, destination] of [
        ['r1', moved],
        ['r2', stayed],
      ] as const) {
        resumer.send(
          `SUBSCRIBE\nid:${id}\ndestination:${destination}\nx-resume-after:${firstPosition(destination)}\nreceipt:${id}\n\n\0`,
        );
        expect(getHeader(await resumer.receipt(id, TIMEOUT_MS), 'x-resume')).toBe('complete');
      }
      const missed = Array.from({ length: PER_DESTINATION - 1 }, (_, k) => `before ${k + 1}`);
      for (const id of ['r1', 'r2']) {
        const replayed = await resumer.messages(PER_DESTINATION - 1, id, TIMEOUT_MS);
        expect(replayed.map(bodyText), id).toEqual(missed);
      }

      // After: every destination once and in order, on the partitions of the new count.
      const { subscriber: after, frames: fresh } = await traffic(b2.port, a2.port, 'after');
      const newPartitions = partitionsOf(fresh);
      const movedNow = DESTINATIONS.filter((d) => newPartitions.get(d) !== oldPartitions.get(d));
      expect(movedNow).toEqual(DESTINATIONS.filter(moves));
      for (const d of movedNow) expect(newPartitions.get(d)).toBeGreaterThanOrEqual(BEFORE);
      // The resumed subscriptions went on with the live messages, from the new partition.
      const live = Array.from({ length: PER_DESTINATION }, (_, k) => `after ${k}`);
      for (const id of ['r1', 'r2']) {
        const got = await resumer.messages(2 * PER_DESTINATION - 1, id, TIMEOUT_MS);
        expect(got.map(bodyText), id).toEqual([...missed, ...live]);
      }
      expect(
        partitionsOf(
          resumer
            .all('MESSAGE')
            .filter((m) => getHeader(m, 'subscription') === 'r1')
            .slice(-1),
        ).get(moved),
      ).toBe(partitionFor(moved, AFTER));
      resumer.destroy();
      await sleep(500);
      expect(bob.all('MESSAGE')).toHaveLength(5);
      expect(after.all('MESSAGE')).toHaveLength(DESTINATIONS.length * PER_DESTINATION);
      bob.destroy();

      // 5. Back to `subscribed`, one instance after the other; traffic and new letters flow.
      await terminate(a2);
      const a3 = await start('subscribed', 0, a2);
      await terminate(b2);
      const b3 = await start('subscribed', 1, b2);
      instances = [a3, b3];
      const { publisher: third } = await traffic(b3.port, a3.port, 'later');
      third.send('SEND\ndestination:/user/bob/queue/inbox\nreceipt:l\n\nnew letter\0');
      await third.receipt('l', TIMEOUT_MS);
      const bobLater = await raw(b3.port, 'bob');
      bobLater.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\n\n\0');
      const [letter] = await bobLater.messages(1, undefined, TIMEOUT_MS);
      expect(bodyText(letter as Frame)).toBe('new letter');
    }, 180_000);
  },
);
