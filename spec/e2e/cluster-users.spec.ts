import { Client, type IMessage } from '@stomp/stompjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import {
  clusterTopics,
  deleteTopicsAfterTest,
  kafkaBrokers,
  skipKafka,
  startCluster,
  uniqueName,
} from '../helpers/cluster.js';
import {
  buildDist,
  type Instance,
  killAllChildren,
  killChild,
  sleep,
  startInstance,
} from '../helpers/haproxy.js';
import { RawClient } from '../helpers/raw-client.js';

/**
 * Issue 5 across the cluster, with a real Kafka: resumes on any instance
 * (the history is read back from Kafka), offline users' messages surviving
 * the loss of an instance, the connection registry, and a stompjs app that
 * sees no gap across a broker restart.
 */

if (skipKafka) console.warn('!!! cluster-users.spec.ts SKIPPED: no Kafka broker');

const TIMEOUT_MS = 15_000;
const USER_FLAGS = ['--user', 'alice:a-secret', '--user', 'bob:b-secret'];
const PASSCODES: Record<string, string> = { alice: 'a-secret', bob: 'b-secret' };

const wsUrl = (port: number) => `ws://127.0.0.1:${port}/stomp`;

async function raw(url: string, login?: string): Promise<RawClient> {
  const client = await RawClient.ws(url);
  await client.connect(login ? { login, passcode: PASSCODES[login] ?? '' } : {});
  return client;
}

/** The connection registry on an instance's admin port. */
async function registry(instance: Instance, user: string) {
  const response = await fetch(`http://127.0.0.1:${instance.adminPort}/users/${user}`);
  return (await response.json()) as { online: boolean; instances: string[]; waiting: number };
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

describe.skipIf(skipKafka)('cluster: resume on any instance', () => {
  it('replays exactly the 1,000 missed messages on the same instance, another one, and one started later', async () => {
    const cluster = await startCluster(2);
    const [a, b] = cluster.instances as [NonNullable<(typeof cluster.instances)[0]>, never];
    const reader = await raw(a.url);
    reader.send('SUBSCRIBE\nid:s\ndestination:/topic/feed\nreceipt:s\n\n\0');
    await reader.receipt('s');
    const publisher = await raw((b as typeof a).url);
    publisher.send('SEND\ndestination:/topic/feed\nreceipt:p0\n\nbefore\0');
    await publisher.receipt('p0', TIMEOUT_MS);
    const [seen] = await reader.messages(1, undefined, TIMEOUT_MS);
    const position = getHeader(seen as Frame, 'x-position') as string;
    expect(position).toMatch(/^p[0-9]+-[0-9]+$/);
    reader.destroy();

    for (let i = 0; i < 999; i++) publisher.send(`SEND\ndestination:/topic/feed\n\nmissed ${i}\0`);
    publisher.send('SEND\ndestination:/topic/feed\nreceipt:p1\n\nmissed 999\0');
    await publisher.receipt('p1', TIMEOUT_MS);

    // Started after the messages: it has them only from Kafka's history.
    const later = await startCluster(1, { kafkaTopic: cluster.topic });
    const targets = [a, b as typeof a, later.instances[0] as typeof a];
    const resumed = await Promise.all(
      targets.map(async (instance) => {
        const back = await raw(instance.url);
        back.send(
          `SUBSCRIBE\nid:s\ndestination:/topic/feed\nx-resume-after:${position}\nreceipt:r\n\n\0`,
        );
        expect(getHeader(await back.receipt('r'), 'x-resume')).toBe('complete');
        return back;
      }),
    );
    publisher.send('SEND\ndestination:/topic/feed\n\nlive\0');
    const expected = [...Array.from({ length: 1000 }, (_, i) => `missed ${i}`), 'live'];
    for (const back of resumed) {
      const got = await back.messages(1001, undefined, TIMEOUT_MS);
      expect(got.map(bodyText)).toEqual(expected);
    }
  });
});

describe.skipIf(skipKafka)('cluster: resume older than the history', () => {
  it('tells a client resuming from before what an instance read back from Kafka that the resume is incomplete', async () => {
    const cluster = await startCluster(1);
    const [a] = cluster.instances as [NonNullable<(typeof cluster.instances)[0]>];
    const client = await raw(a.url);
    client.send('SUBSCRIBE\nid:s\ndestination:/topic/old\nreceipt:s\n\n\0');
    await client.receipt('s');
    for (let i = 0; i < 4; i++) client.send(`SEND\ndestination:/topic/old\n\nold ${i}\0`);
    client.send('SEND\ndestination:/topic/old\nreceipt:p\n\nold 4\0');
    await client.receipt('p', TIMEOUT_MS);
    const got = await client.messages(5, undefined, TIMEOUT_MS);
    const first = getHeader(got[0] as Frame, 'x-position') as string;
    await sleep(1_500);
    // Reads back only the last second of Kafka's log: the old messages are not in it.
    const later = await startCluster(1, { kafkaTopic: cluster.topic, historyMaxAgeMs: 1_000 });
    const resumes = async (url: string) => {
      const back = await raw(url);
      back.send(
        `SUBSCRIBE\nid:s\ndestination:/topic/old\nx-resume-after:${first}\nreceipt:r\n\n\0`,
      );
      return getHeader(await back.receipt('r'), 'x-resume');
    };
    expect(await resumes((later.instances[0] as typeof a).url)).toBe('incomplete');
    expect(await resumes(a.url)).toBe('complete');
  });
});

describe.skipIf(skipKafka)(
  'cluster: offline users and the connection registry (instances as processes)',
  () => {
    const topic = uniqueName('stompbus-users');
    const instances: Instance[] = [];

    beforeAll(async () => {
      await buildDist();
      deleteTopicsAfterTest(clusterTopics(topic));
      for (const name of ['users-a', 'users-b', 'users-c']) {
        instances.push(
          await startInstance(name, {
            kafkaBrokers,
            kafkaTopic: topic,
            args: [...USER_FLAGS, '--presence-interval', '500'],
          }),
        );
      }
    }, 120_000);

    afterAll(killAllChildren);

    it('delivers 100 messages kept for an offline user after the instance that took them is killed, exactly once after acks', async () => {
      const [a, b, c] = instances as [Instance, Instance, Instance];
      const alice = await raw(wsUrl(a.port), 'alice');
      await until(async () => (await registry(b, 'alice')).online, 'b sees alice online');
      expect((await registry(c, 'bob')).online).toBe(false);

      for (let i = 0; i < 100; i++) {
        alice.send(`SEND\ndestination:/user/bob/queue/inbox\nreceipt:r${i}\n\nm${i}\0`);
      }
      await alice.receipt('r99', TIMEOUT_MS);
      expect(alice.all('RECEIPT')).toHaveLength(100);
      await killChild(a);
      // The registry forgets the dead instance within three presence intervals.
      await until(async () => !(await registry(b, 'alice')).online, 'alice is offline', 5_000);

      const bob = await raw(wsUrl(b.port), 'bob');
      bob.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nack:client-individual\n\n\0');
      const got = await bob.messages(100, undefined, TIMEOUT_MS);
      expect(got.map(bodyText)).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
      await until(async () => (await registry(c, 'bob')).instances.length === 1, 'c sees bob');
      for (const m of got) bob.send(`ACK\nid:${getHeader(m, 'ack')}\n\n\0`);
      bob.send('DISCONNECT\nreceipt:bye\n\n\0');
      await bob.receipt('bye');

      // Every instance learns (through Kafka) that bob consumed them.
      await until(async () => (await registry(c, 'bob')).waiting === 0, 'c forgets them');
      const again = await raw(wsUrl(c.port), 'bob');
      again.send(
        'SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nack:client-individual\nreceipt:s\n\n\0',
      );
      await again.receipt('s');
      const other = await raw(wsUrl(b.port), 'alice');
      other.send('SEND\ndestination:/user/bob/queue/inbox\nreceipt:n\n\nnew one\0');
      await other.receipt('n', TIMEOUT_MS);
      const [next] = await again.messages(1, undefined, TIMEOUT_MS);
      expect(bodyText(next as Frame)).toBe('new one');
      expect(again.all('MESSAGE')).toHaveLength(1);
    });

    it("refuses a SUBSCRIBE to another user's destination on any instance", async () => {
      const alice = await raw(wsUrl((instances[2] as Instance).port), 'alice');
      alice.send('SUBSCRIBE\nid:x\ndestination:/user/bob/queue/inbox\n\n\0');
      const error = await alice.expectErrorAndClose();
      expect(getHeader(error, 'message')).toBe('STOMP_ERR_FORBIDDEN');
    });
  },
);

describe.skipIf(skipKafka)('cluster: a stompjs app across a broker restart', () => {
  const topic = uniqueName('stompbus-restart');

  beforeAll(async () => {
    await buildDist();
    deleteTopicsAfterTest(clusterTopics(topic));
  }, 120_000);

  afterAll(killAllChildren);

  it('sees every message exactly once, in order, with reconnectDelay and x-resume-after', async () => {
    let a = await startInstance('restart-a', { kafkaBrokers, kafkaTopic: topic });
    const b = await startInstance('restart-b', { kafkaBrokers, kafkaTopic: topic });
    const got: string[] = [];
    let last: string | undefined;
    let connects = 0;
    let subscribed: () => void = () => {};
    const firstSubscribe = new Promise<void>((resolve) => {
      subscribed = resolve;
    });
    const app = new Client({
      webSocketFactory: () => new WebSocket(wsUrl(a.port), ['v12.stomp']),
      reconnectDelay: 200,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      onConnect: () => {
        connects++;
        // What an application does: resume after the last position it saw.
        const headers: Record<string, string> = { receipt: `sub-${connects}` };
        if (last) headers['x-resume-after'] = last;
        app.watchForReceipt(headers.receipt as string, () => subscribed());
        app.subscribe(
          '/topic/ticks',
          (m: IMessage) => {
            got.push(m.body);
            last = m.headers['x-position'];
          },
          headers,
        );
      },
    });
    app.activate();
    try {
      await firstSubscribe;
      const publisher = await raw(wsUrl(b.port));
      let restarted: Promise<Instance> | undefined;
      for (let i = 0; i < 200; i++) {
        publisher.send(`SEND\ndestination:/topic/ticks\nreceipt:t${i}\n\ntick ${i}\0`);
        if (i === 60) {
          const { port, tcpPort } = a;
          await killChild(a);
          restarted = startInstance('restart-a2', {
            kafkaBrokers,
            kafkaTopic: topic,
            port,
            tcpPort,
          });
        }
        await sleep(10);
      }
      await publisher.receipt('t199', TIMEOUT_MS);
      a = await (restarted as Promise<Instance>);
      const deadline = Date.now() + 20_000;
      while (!got.includes('tick 199') && Date.now() < deadline) await sleep(50);
      expect(connects).toBeGreaterThanOrEqual(2);
      expect(got).toEqual(Array.from({ length: 200 }, (_, i) => `tick ${i}`));
    } finally {
      await app.deactivate();
    }
  }, 60_000);
});

describe.skipIf(skipKafka)(
  'cluster: a user’s instance killed mid-traffic, with --kafka-interest subscribed',
  () => {
    const topic = uniqueName('stompbus-kill');

    beforeAll(async () => {
      await buildDist();
      deleteTopicsAfterTest(clusterTopics(topic));
    }, 120_000);

    afterAll(killAllChildren);

    it('loses nothing receipted: the user reconnects elsewhere and gets every message, in order', async () => {
      const start = (name: string) =>
        startInstance(name, {
          kafkaBrokers,
          kafkaTopic: topic,
          args: [...USER_FLAGS, '--kafka-interest', 'subscribed', '--kafka-partitions', '3'],
        });
      const p = await start('kill-publisher');
      const s = await start('kill-subscriber');
      const r = await start('kill-rescue');
      const bob = await raw(wsUrl(s.port), 'bob');
      bob.send(
        'SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nack:client-individual\nreceipt:s\n\n\0',
      );
      await bob.receipt('s', TIMEOUT_MS);
      // bob acknowledges what he gets, as it comes.
      let acked = 0;
      const ackLoop = setInterval(() => {
        const frames = bob.all('MESSAGE');
        for (; acked < frames.length; acked++) {
          bob.send(`ACK\nid:${getHeader(frames[acked] as Frame, 'ack')}\n\n\0`);
        }
      }, 5);

      const alice = await raw(wsUrl(p.port), 'alice');
      const receipted: number[] = [];
      let sending = true;
      const sendLoop = (async () => {
        for (let i = 0; sending; i++) {
          alice.send(`SEND\ndestination:/user/bob/queue/inbox\nreceipt:m${i}\n\n${i}\0`);
          await alice.receipt(`m${i}`, TIMEOUT_MS);
          receipted.push(i);
          await sleep(3);
        }
      })();
      await until(async () => bob.all('MESSAGE').length >= 100, 'bob got 100 on S');
      await killChild(s);
      clearInterval(ackLoop);
      const onS = bob.all('MESSAGE').map((m) => Number(bodyText(m)));
      // Traffic goes on while bob is away, then he comes back on R.
      await until(async () => receipted.length >= onS.length + 50, 'traffic while bob is away');
      const again = await raw(wsUrl(r.port), 'bob');
      again.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nack:auto\nreceipt:s\n\n\0');
      await again.receipt('s', TIMEOUT_MS);
      await until(async () => receipted.length >= onS.length + 100, 'traffic after bob is back');
      sending = false;
      await sendLoop;
      const last = receipted.at(-1) as number;
      await until(
        async () => again.all('MESSAGE').some((m) => Number(bodyText(m)) === last),
        'bob got the last one on R',
      );
      await sleep(300);
      const onR = again.all('MESSAGE').map((m) => Number(bodyText(m)));
      // In order, once each on R; nothing receipted missing from S and R together.
      expect(onR).toEqual([...onR].sort((x, y) => x - y));
      expect(new Set(onR).size).toBe(onR.length);
      const got = new Set([...onS, ...onR]);
      expect(receipted.filter((i) => !got.has(i))).toEqual([]);
      // What R gives again is only what S had handed out last (acknowledged as S died).
      expect(onR[0]).toBeGreaterThan((onS.at(-1) as number) - 50);
    }, 90_000);
  },
);
