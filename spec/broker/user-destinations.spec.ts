/**
 * User destinations (src/broker/destinations/user-queue.ts, topic.ts):
 * `broker.sendToUser` and SENDs to `/user/<name>/…`, subscribed to as
 * `/user/queue/…` and `/user/topic/…`, driven in memory.
 */
import { describe, expect, it } from 'vitest';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import type { StompBroker } from '../../src/stomp-broker.js';
import { type MemoryClient, memoryClient, testBroker, waitUntil } from '../helpers/duplex-pair.js';

const USERS = new Map([
  ['alice', 'a-secret'],
  ['bob', 'b-secret'],
]);

const code = (frame: Frame) => getHeader(frame, 'message');
const bodies = (frames: Frame[]) => frames.map(bodyText);
const ack = (frame: Frame | undefined) => getHeader(frame as Frame, 'ack');

let receipts = 0;

/** A session of `login` (with its passcode from USERS). */
async function as(broker: StompBroker, login: string): Promise<MemoryClient> {
  const client = memoryClient(broker);
  await client.connect({ login, passcode: USERS.get(login) ?? '' });
  return client;
}

/** Subscribes `client` and waits for the RECEIPT (what waits is delivered before it). */
async function subscribe(client: MemoryClient, destination: string, id = 'in', headers = '') {
  const receipt = `s${++receipts}`;
  client.send(
    `SUBSCRIBE\nid:${id}\ndestination:${destination}\n${headers}receipt:${receipt}\n\n\0`,
  );
  await client.receipt(receipt);
}

/** Waits until every frame the broker wrote to `client` before now has arrived. */
async function sync(client: MemoryClient): Promise<void> {
  const receipt = `sync${++receipts}`;
  client.send(`SEND\ndestination:/topic/sync\nreceipt:${receipt}\n\n\0`);
  await client.receipt(receipt);
}

describe('user queues', () => {
  it('keeps sendToUser messages while the user is offline and delivers them in order on SUBSCRIBE to /user/queue/x', async () => {
    const broker = testBroker({ users: USERS });
    for (let i = 0; i < 3; i++) await broker.sendToUser('bob', '/queue/inbox', `m${i}`);
    await broker.sendToUser('bob', '/queue/other', 'elsewhere');
    expect(broker.waitingFor('bob')).toBe(4);
    expect(broker.waitingFor('alice')).toBe(0);
    const bob = await as(broker, 'bob');
    await subscribe(bob, '/user/queue/inbox');
    const got = await bob.messages(3);
    expect(bodies(got)).toEqual(['m0', 'm1', 'm2']);
    // STOMP 1.2 "MESSAGE": the destination is the one subscribed to.
    expect(got.map((m) => getHeader(m, 'destination'))).toEqual(Array(3).fill('/user/queue/inbox'));
    // Written out in auto mode means consumed; the other queue still waits.
    expect(broker.waitingFor('bob')).toBe(1);
  });

  it('delivers a live message to every session of the user on /user/queue/x, and to nobody else', async () => {
    const broker = testBroker({ users: USERS });
    const bob1 = await as(broker, 'bob');
    const bob2 = await as(broker, 'bob');
    const alice = await as(broker, 'alice');
    for (const client of [bob1, bob2, alice]) await subscribe(client, '/user/queue/inbox');
    await broker.sendToUser('bob', '/queue/inbox', 'hi bob', { 'x-from': 'app' });
    for (const bob of [bob1, bob2]) {
      const [m] = await bob.messages(1);
      expect(bodyText(m as Frame)).toBe('hi bob');
      expect(getHeader(m as Frame, 'x-from')).toBe('app');
    }
    await sync(alice);
    expect(alice.all('MESSAGE')).toHaveLength(0);
    expect(broker.waitingFor('bob')).toBe(0);
  });

  it('refuses sendToUser to a user the broker does not know, as it refuses such a SEND', async () => {
    const broker = testBroker({ users: USERS });
    await expect(broker.sendToUser('mallory', '/queue/inbox', 'x')).rejects.toMatchObject({
      code: 'STOMP_ERR_INVALID_DESTINATION',
    });
    expect(broker.waitingFor('mallory')).toBe(0);
  });

  it('routes a SEND to /user/<name>/queue/x like sendToUser', async () => {
    const broker = testBroker({ users: USERS });
    const alice = await as(broker, 'alice');
    alice.send('SEND\ndestination:/user/bob/queue/inbox\nreceipt:p\n\nfrom alice\0');
    await alice.receipt('p');
    expect(broker.waitingFor('bob')).toBe(1);
    const bob = await as(broker, 'bob');
    await subscribe(bob, '/user/queue/inbox');
    expect(bodies(await bob.messages(1))).toEqual(['from alice']);
  });

  it('consumes a user-queue message only on its ACK in client-individual mode', async () => {
    const broker = testBroker({ users: USERS });
    await broker.sendToUser('bob', '/queue/inbox', 'a');
    await broker.sendToUser('bob', '/queue/inbox', 'b');
    const bob = await as(broker, 'bob');
    await subscribe(bob, '/user/queue/inbox', 'in', 'ack:client-individual\n');
    const got = await bob.messages(2);
    expect(broker.waitingFor('bob')).toBe(2);
    bob.send(`ACK\nid:${ack(got[1])}\nreceipt:a\n\n\0`);
    await bob.receipt('a');
    expect(broker.waitingFor('bob')).toBe(1);
  });

  it('consumes every earlier user-queue message on a client-mode ACK', async () => {
    const broker = testBroker({ users: USERS });
    for (const body of ['a', 'b', 'c']) await broker.sendToUser('bob', '/queue/inbox', body);
    const bob = await as(broker, 'bob');
    await subscribe(bob, '/user/queue/inbox', 'in', 'ack:client\n');
    const got = await bob.messages(3);
    bob.send(`ACK\nid:${ack(got[1])}\nreceipt:a\n\n\0`);
    await bob.receipt('a');
    expect(broker.waitingFor('bob')).toBe(1);
  });

  it('offers an unacknowledged user-queue message again, marked redelivered, in the next session', async () => {
    const broker = testBroker({ users: USERS });
    for (const body of ['m0', 'm1', 'm2']) await broker.sendToUser('bob', '/queue/inbox', body);
    const first = await as(broker, 'bob');
    await subscribe(first, '/user/queue/inbox', 'in', 'ack:client-individual\n');
    const got = await first.messages(3);
    first.send(`ACK\nid:${ack(got[1])}\n\n\0DISCONNECT\nreceipt:bye\n\n\0`);
    await first.closed;
    const second = await as(broker, 'bob');
    await subscribe(second, '/user/queue/inbox', 'in', 'ack:client\n');
    const again = await second.messages(2);
    expect(bodies(again)).toEqual(['m0', 'm2']);
    expect(again.map((m) => getHeader(m, 'redelivered'))).toEqual(['true', 'true']);
    second.send(`ACK\nid:${ack(again[1])}\nreceipt:a\n\n\0`);
    await second.receipt('a');
    expect(broker.waitingFor('bob')).toBe(0);
  });

  // BUG (src/broker/destinations/user-queue.ts, UserQueue.offer): an offer to
  // an auto-ack subscription passes `redelivered: false` whatever the letter's
  // deliveries, so a letter that comes again shows redelivered:true to a
  // client-mode subscriber but not to an auto one (queues mark both).
  it('marks a user-queue letter offered again redelivered:true to an auto-ack subscriber too', async () => {
    const broker = testBroker({ users: USERS });
    await broker.sendToUser('bob', '/queue/inbox', 'again');
    const first = await as(broker, 'bob');
    await subscribe(first, '/user/queue/inbox', 'in', 'ack:client-individual\n');
    await first.messages(1);
    first.send('DISCONNECT\n\n\0');
    await first.closed;
    const second = await as(broker, 'bob');
    await subscribe(second, '/user/queue/inbox');
    const [m] = await second.messages(1);
    expect(bodyText(m as Frame)).toBe('again');
    expect(getHeader(m as Frame, 'redelivered')).toBe('true');
  });

  it('hands what a closing session held to another session of the user that has room', async () => {
    const broker = testBroker({ users: USERS });
    const first = await as(broker, 'bob');
    await subscribe(first, '/user/queue/inbox', 'in', 'ack:client-individual\n');
    await broker.sendToUser('bob', '/queue/inbox', 'only once');
    await first.messages(1);
    const second = await as(broker, 'bob');
    await subscribe(second, '/user/queue/inbox', 'in', 'ack:client-individual\n');
    first.destroy();
    const [m] = await second.messages(1);
    expect(bodyText(m as Frame)).toBe('only once');
    expect(getHeader(m as Frame, 'redelivered')).toBe('true');
  });

  it("redelivers a NACKed user-queue message, then dead-letters it to the user's own /user/queue/DLQ", async () => {
    const broker = testBroker({ users: USERS, maxDeliveries: 2 });
    const alice = await as(broker, 'alice');
    await subscribe(alice, '/queue/DLQ', 'shared');
    await subscribe(alice, '/user/queue/DLQ', 'own');
    const bob = await as(broker, 'bob');
    await subscribe(bob, '/user/queue/DLQ', 'dlq');
    await subscribe(bob, '/user/queue/inbox', 'in', 'ack:client-individual\n');
    await broker.sendToUser('bob', '/queue/inbox', 'secret for bob', { 'x-kind': 'poison' });
    const [first] = await bob.messages(1, 'in');
    bob.send(`NACK\nid:${ack(first)}\n\n\0`);
    const [, again] = await bob.messages(2, 'in');
    expect(getHeader(again as Frame, 'redelivered')).toBe('true');
    bob.send(`NACK\nid:${ack(again)}\n\n\0`);
    const [dead] = await bob.messages(1, 'dlq');
    expect(bodyText(dead as Frame)).toBe('secret for bob');
    expect(getHeader(dead as Frame, 'destination')).toBe('/user/queue/DLQ');
    expect(getHeader(dead as Frame, 'original-destination')).toBe('/user/bob/queue/inbox');
    expect(getHeader(dead as Frame, 'delivery-count')).toBe('2');
    expect(getHeader(dead as Frame, 'x-kind')).toBe('poison');
    await sync(alice);
    expect(alice.all('MESSAGE')).toHaveLength(0);
    expect(broker.queueDepth('/queue/DLQ')).toBe(0);
    expect(broker.waitingFor('bob')).toBe(0);
  });

  it("keeps a user's dead letters while they are offline", async () => {
    const broker = testBroker({ users: USERS, maxDeliveries: 1 });
    await broker.sendToUser('bob', '/queue/inbox', 'fails');
    const bob = await as(broker, 'bob');
    await subscribe(bob, '/user/queue/inbox', 'in', 'ack:client-individual\n');
    const [m] = await bob.messages(1);
    bob.send(`NACK\nid:${ack(m)}\n\n\0DISCONNECT\n\n\0`);
    await bob.closed;
    expect(broker.waitingFor('bob')).toBe(1);
    const back = await as(broker, 'bob');
    await subscribe(back, '/user/queue/DLQ', 'dlq');
    const [dead] = await back.messages(1);
    expect(bodyText(dead as Frame)).toBe('fails');
    expect(broker.waitingFor('bob')).toBe(0);
  });

  it('honours prefetch-count on a user queue', async () => {
    const broker = testBroker({ users: USERS });
    for (let i = 0; i < 5; i++) await broker.sendToUser('bob', '/queue/inbox', `m${i}`);
    const bob = await as(broker, 'bob');
    await subscribe(bob, '/user/queue/inbox', 'in', 'ack:client-individual\nprefetch-count:2\n');
    const got = await bob.messages(2);
    await sync(bob);
    expect(bob.all('MESSAGE')).toHaveLength(2);
    bob.send(`ACK\nid:${ack(got[0])}\n\n\0`);
    expect(bodies(await bob.messages(3))).toEqual(['m0', 'm1', 'm2']);
    await sync(bob);
    expect(bob.all('MESSAGE')).toHaveLength(3);
  });

  it('disconnects a user-queue subscriber without prefetch-count past maxPendingAcks with STOMP_ERR_SLOW_CONSUMER', async () => {
    const broker = testBroker({ users: USERS, maxPendingAcks: 2 });
    const bob = await as(broker, 'bob');
    await subscribe(bob, '/user/queue/inbox', 'in', 'ack:client-individual\n');
    for (const body of ['m0', 'm1', 'm2']) await broker.sendToUser('bob', '/queue/inbox', body);
    expect(code(await bob.expectErrorAndClose())).toBe('STOMP_ERR_SLOW_CONSUMER');
    expect(bodies(bob.all('MESSAGE'))).toEqual(['m0', 'm1']);
    // Nothing was consumed: the next session gets all three.
    const next = await as(broker, 'bob');
    await subscribe(next, '/user/queue/inbox');
    expect(bodies(await next.messages(3))).toEqual(['m0', 'm1', 'm2']);
  });

  // BUG (src/session/session.ts, Session.subscribe): the router hands a
  // subscription what waits for it before the session records it, so when
  // that delivery disconnects the session (maxPendingAcks), cleanup misses
  // the new subscription: it stays registered on the user queue and keeps
  // the letters it took "held" for ever; no later session gets them.
  it('gives back the letters a session held when it was disconnected while subscribing', async () => {
    const broker = testBroker({ users: USERS, maxPendingAcks: 2 });
    for (const body of ['m0', 'm1', 'm2']) await broker.sendToUser('bob', '/queue/inbox', body);
    const bob = await as(broker, 'bob');
    bob.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nack:client-individual\n\n\0');
    expect(code(await bob.expectErrorAndClose())).toBe('STOMP_ERR_SLOW_CONSUMER');
    const next = await as(broker, 'bob');
    await subscribe(next, '/user/queue/inbox');
    expect(bodies(await next.messages(3, undefined, 1000))).toEqual(['m0', 'm1', 'm2']);
  });

  it.each([
    ['an empty user', '', '/queue/inbox'],
    ['a user with a slash', 'bob/x', '/queue/inbox'],
    ['a destination outside /queue and /topic', 'bob', '/exchange/inbox'],
    ['a bare /queue/', 'bob', '/queue/'],
  ])(
    'rejects sendToUser with %s with STOMP_ERR_INVALID_DESTINATION',
    async (_, user, destination) => {
      const broker = testBroker({ users: USERS });
      await expect(broker.sendToUser(user, destination, 'x')).rejects.toMatchObject({
        code: 'STOMP_ERR_INVALID_DESTINATION',
      });
      expect(broker.waitingFor(user)).toBe(0);
    },
  );

  it('refuses a SEND to a user that does not exist when users are configured', async () => {
    const broker = testBroker({ users: USERS });
    const alice = await as(broker, 'alice');
    alice.send('SEND\ndestination:/user/mallory/queue/inbox\nreceipt:p\n\nspam\0');
    const error = await alice.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_INVALID_DESTINATION');
    expect(getHeader(error, 'receipt-id')).toBe('p');
    expect(broker.waitingFor('mallory')).toBe(0);
  });

  it('refuses /user/queue/x to a session without a login with STOMP_ERR_FORBIDDEN', async () => {
    const broker = testBroker();
    const anonymous = memoryClient(broker);
    await anonymous.connect();
    anonymous.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nreceipt:r\n\n\0');
    const error = await anonymous.expectErrorAndClose();
    expect(code(error)).toBe('STOMP_ERR_FORBIDDEN');
    expect(getHeader(error, 'receipt-id')).toBe('r');
  });

  it("refuses a SUBSCRIBE naming another user's destination with STOMP_ERR_FORBIDDEN", async () => {
    const broker = testBroker({ users: USERS });
    await broker.sendToUser('bob', '/queue/inbox', 'for bob only');
    const alice = await as(broker, 'alice');
    alice.send('SUBSCRIBE\nid:spy\ndestination:/user/bob/queue/inbox\n\n\0');
    expect(code(await alice.expectErrorAndClose())).toBe('STOMP_ERR_FORBIDDEN');
    expect(alice.all('MESSAGE')).toHaveLength(0);
    expect(broker.waitingFor('bob')).toBe(1);
  });

  it('refuses /user/queue/ without a name with STOMP_ERR_INVALID_DESTINATION', async () => {
    const broker = testBroker({ users: USERS });
    const bob = await as(broker, 'bob');
    bob.send('SUBSCRIBE\nid:in\ndestination:/user/queue/\n\n\0');
    expect(code(await bob.expectErrorAndClose())).toBe('STOMP_ERR_INVALID_DESTINATION');
  });
});

describe('user topics', () => {
  it("fans sendToUser to /topic/x out to the user's sessions on /user/topic/x, keeping nothing offline", async () => {
    const broker = testBroker({ users: USERS });
    await broker.sendToUser('bob', '/topic/alerts', 'while offline');
    const bob1 = await as(broker, 'bob');
    const bob2 = await as(broker, 'bob');
    const alice = await as(broker, 'alice');
    for (const client of [bob1, bob2, alice]) await subscribe(client, '/user/topic/alerts', 't');
    await broker.sendToUser('bob', '/topic/alerts', 'alert');
    for (const bob of [bob1, bob2]) {
      const [m] = await bob.messages(1);
      expect(bodyText(m as Frame)).toBe('alert');
      expect(getHeader(m as Frame, 'destination')).toBe('/user/topic/alerts');
    }
    await Promise.all([bob1, bob2, alice].map(sync));
    expect(bob1.all('MESSAGE')).toHaveLength(1);
    expect(alice.all('MESSAGE')).toHaveLength(0);
    expect(broker.waitingFor('bob')).toBe(0);
  });
});

describe('the user registry', () => {
  it('knows where a user is connected only while a session of theirs is', async () => {
    const broker = testBroker({ users: USERS });
    const bob = await as(broker, 'bob');
    expect(broker.whereIs('bob')).toHaveLength(1);
    expect(broker.whereIs('alice')).toEqual([]);
    bob.destroy();
    await waitUntil(() => broker.whereIs('bob').length === 0, 5000, 'bob to be gone');
  });
});
