import { describe, expect, it } from 'vitest';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import type { StompServer } from '../../src/server.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer } from '../helpers/server.js';
import { expectOthersUnaffected } from '../helpers/unaffected.js';

const USERS = new Map([
  ['alice', 'a-secret'],
  ['bob', 'b-secret'],
]);

async function as(server: StompServer, login?: string): Promise<RawClient> {
  const client = await RawClient.ws(server.url);
  await client.connect(login ? { login, passcode: USERS.get(login) ?? '' } : {});
  return client;
}

/** Waits until `client` holds `n` MESSAGE frames and returns them. */
function messages(client: RawClient, n: number, timeoutMs = 5000): Promise<Frame[]> {
  return client.waitFor(
    () => (client.all('MESSAGE').length >= n ? client.all('MESSAGE') : undefined),
    timeoutMs,
    `${n} messages`,
  );
}

/** The connection registry, on the admin port. */
async function registry(server: StompServer, user: string) {
  const response = await fetch(`${server.admin?.url}/users/${user}`);
  return (await response.json()) as { online: boolean; instances: string[] };
}

describe('user destinations', () => {
  it('delivers /user/<name>/queue/x to every session of that user on /user/queue/x, and to nobody else', async () => {
    const server = await startServer({ users: USERS });
    const bob1 = await as(server, 'bob');
    const bob2 = await as(server, 'bob');
    const alice = await as(server, 'alice');
    for (const c of [bob1, bob2, alice]) {
      c.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nreceipt:s\n\n\0');
      await c.receipt('s');
    }
    alice.send('SEND\ndestination:/user/bob/queue/inbox\nreceipt:p\n\nhi bob\0');
    await alice.receipt('p');
    for (const bob of [bob1, bob2]) {
      const [m] = await messages(bob, 1);
      expect(bodyText(m as Frame)).toBe('hi bob');
      // STOMP 1.2 "MESSAGE": destination is what the subscriber subscribed to.
      expect(getHeader(m as Frame, 'destination')).toBe('/user/queue/inbox');
      expect(getHeader(m as Frame, 'x-position')).toMatch(/.+-[0-9]+$/);
    }
    alice.send('SEND\ndestination:/user/alice/queue/inbox\nreceipt:q\n\nnote to self\0');
    await alice.receipt('q');
    const [own] = await messages(alice, 1);
    expect(bodyText(own as Frame)).toBe('note to self');
    expect(alice.all('MESSAGE')).toHaveLength(1);
    expect(bob1.all('MESSAGE')).toHaveLength(1);
  });

  it('fans /user/<name>/topic/x out to the sessions of that user on /user/topic/x', async () => {
    const server = await startServer({ users: USERS });
    const bob = await as(server, 'bob');
    bob.send('SUBSCRIBE\nid:t\ndestination:/user/topic/alerts\nreceipt:s\n\n\0');
    await bob.receipt('s');
    const alice = await as(server, 'alice');
    alice.send('SEND\ndestination:/user/bob/topic/alerts\n\nalert\0');
    const [m] = await messages(bob, 1);
    expect(getHeader(m as Frame, 'destination')).toBe('/user/topic/alerts');
  });

  it("refuses a SUBSCRIBE to another user's destination with STOMP_ERR_FORBIDDEN, then closes", async () => {
    const server = await startServer({ users: USERS });
    const bob = await as(server, 'bob');
    bob.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nreceipt:s\n\n\0');
    await bob.receipt('s');
    const alice = await as(server, 'alice');
    alice.send('SUBSCRIBE\nid:spy\ndestination:/user/bob/queue/inbox\nreceipt:r\n\n\0');
    const error = await alice.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_FORBIDDEN');
    expect(getHeader(error, 'receipt-id')).toBe('r');
    // Nothing of bob's reached alice, and bob still gets his messages.
    const other = await as(server, 'alice');
    other.send('SEND\ndestination:/user/bob/queue/inbox\nreceipt:p\n\nfor bob only\0');
    await other.receipt('p');
    const [m] = await messages(bob, 1);
    expect(bodyText(m as Frame)).toBe('for bob only');
    expect(alice.all('MESSAGE')).toHaveLength(0);
  });

  it('refuses /user/queue/x to a session without a login', async () => {
    const server = await startServer();
    const anonymous = await as(server);
    anonymous.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\n\n\0');
    const error = await anonymous.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_FORBIDDEN');
    await expectOthersUnaffected(server);
  });

  it('keeps messages for an offline user and delivers them in order on the next SUBSCRIBE', async () => {
    const server = await startServer({ users: USERS });
    const alice = await as(server, 'alice');
    for (let i = 0; i < 100; i++) {
      alice.send(`SEND\ndestination:/user/bob/queue/inbox\n\nm${i}\0`);
    }
    alice.send('SEND\ndestination:/user/bob/queue/other\nreceipt:p\n\nelsewhere\0');
    await alice.receipt('p');
    expect(server.broker.waitingFor('bob')).toBe(101);
    const bob = await as(server, 'bob');
    bob.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\n\n\0');
    const got = await messages(bob, 100);
    expect(got.map(bodyText)).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
    // auto acks: written out means consumed; the other queue still waits.
    expect(server.broker.waitingFor('bob')).toBe(1);
  });

  it('counts a message as delivered only once acked: unacked ones come again in the next session', async () => {
    const server = await startServer({ users: USERS });
    const alice = await as(server, 'alice');
    for (let i = 0; i < 5; i++) alice.send(`SEND\ndestination:/user/bob/queue/inbox\n\nm${i}\0`);
    alice.send('SEND\ndestination:/user/bob/queue/inbox\nreceipt:p\n\nm5\0');
    await alice.receipt('p');

    const first = await as(server, 'bob');
    first.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nack:client-individual\n\n\0');
    const got = await messages(first, 6);
    // Acks m0, m2 and m4 only, then the session drops.
    for (const m of [got[0], got[2], got[4]]) {
      first.send(`ACK\nid:${getHeader(m as Frame, 'ack')}\n\n\0`);
    }
    first.send('DISCONNECT\nreceipt:bye\n\n\0');
    await first.receipt('bye');

    const second = await as(server, 'bob');
    second.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nack:client\n\n\0');
    const again = await messages(second, 3);
    expect(again.map(bodyText)).toEqual(['m1', 'm3', 'm5']);
    // A cumulative ACK of the last one consumes all three.
    second.send(`ACK\nid:${getHeader(again[2] as Frame, 'ack')}\nreceipt:a\n\n\0`);
    await second.receipt('a');
    expect(server.broker.waitingFor('bob')).toBe(0);
  });

  it('counts one delivery per offer however many sessions take it: a NACK redelivers', async () => {
    const server = await startServer({ users: USERS });
    const sessions = await Promise.all([1, 2, 3, 4, 5].map(() => as(server, 'bob')));
    for (const bob of sessions) {
      bob.send(
        'SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nack:client-individual\nreceipt:s\n\n\0',
      );
      await bob.receipt('s');
    }
    const alice = await as(server, 'alice');
    alice.send('SEND\ndestination:/user/bob/queue/inbox\nreceipt:p\n\nfor all of bob\0');
    await alice.receipt('p');
    const first = sessions[0] as RawClient;
    const [m] = await messages(first, 1);
    first.send(`NACK\nid:${getHeader(m as Frame, 'ack')}\n\n\0`);
    const [, again] = await messages(first, 2);
    expect(bodyText(again as Frame)).toBe('for all of bob');
    expect(getHeader(again as Frame, 'redelivered')).toBe('true');
  });

  it("dead-letters a user's message to their own /user/queue/DLQ, never to the shared /queue/DLQ", async () => {
    const server = await startServer({ users: USERS, maxDeliveries: 2 });
    const alice = await as(server, 'alice');
    alice.send('SUBSCRIBE\nid:dlq\ndestination:/queue/DLQ\nreceipt:s\n\n\0');
    await alice.receipt('s');
    const bob = await as(server, 'bob');
    bob.send('SUBSCRIBE\nid:dlq\ndestination:/user/queue/DLQ\n\n\0');
    bob.send(
      'SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nack:client-individual\nreceipt:s\n\n\0',
    );
    await bob.receipt('s');
    alice.send('SEND\ndestination:/user/bob/queue/inbox\nreceipt:p\n\nsecret for bob\0');
    await alice.receipt('p');
    for (let n = 1; n <= 2; n++) {
      const got = await messages(bob, n);
      bob.send(`NACK\nid:${getHeader(got[n - 1] as Frame, 'ack')}\n\n\0`);
    }
    const [, , dead] = await messages(bob, 3);
    expect(getHeader(dead as Frame, 'subscription')).toBe('dlq');
    expect(getHeader(dead as Frame, 'destination')).toBe('/user/queue/DLQ');
    expect(getHeader(dead as Frame, 'original-destination')).toBe('/user/bob/queue/inbox');
    expect(bodyText(dead as Frame)).toBe('secret for bob');
    expect(alice.all('MESSAGE')).toHaveLength(0);
    expect(server.broker.waitingFor('bob')).toBe(0);
  });

  it('hands out a large mailbox at the pace the client reads, not as a slow-consumer ERROR', async () => {
    const server = await startServer({ users: USERS });
    const alice = await as(server, 'alice');
    const big = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 100; i++)
      alice.send(`SEND\ndestination:/user/bob/queue/inbox\n\n${i} ${big}\0`);
    alice.send(`SEND\ndestination:/user/bob/queue/inbox\nreceipt:p\n\n100 ${big}\0`);
    await alice.receipt('p');
    const bob = await as(server, 'bob');
    bob.send('SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\n\n\0');
    const got = await messages(bob, 101, 10_000);
    expect(got.map((m) => bodyText(m).split(' ')[0])).toEqual(
      Array.from({ length: 101 }, (_, i) => String(i)),
    );
    expect(bob.all('ERROR')).toHaveLength(0);
  });

  it('honours prefetch-count on a user queue', async () => {
    const server = await startServer({ users: USERS });
    const alice = await as(server, 'alice');
    for (let i = 0; i < 9; i++) alice.send(`SEND\ndestination:/user/bob/queue/inbox\n\nm${i}\0`);
    alice.send('SEND\ndestination:/user/bob/queue/inbox\nreceipt:p\n\nm9\0');
    await alice.receipt('p');
    const bob = await as(server, 'bob');
    bob.send(
      'SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nack:client-individual\nprefetch-count:3\nreceipt:s\n\n\0',
    );
    await bob.receipt('s');
    const got = await messages(bob, 3);
    expect(bob.all('MESSAGE')).toHaveLength(3);
    bob.send(`ACK\nid:${getHeader(got[0] as Frame, 'ack')}\nreceipt:a\n\n\0`);
    await bob.receipt('a');
    const more = await messages(bob, 4);
    expect(more.map(bodyText)).toEqual(['m0', 'm1', 'm2', 'm3']);
    expect(bob.all('MESSAGE')).toHaveLength(4);
  });

  it('refuses a SEND to a user that does not exist when users are configured', async () => {
    const server = await startServer({ users: USERS });
    const alice = await as(server, 'alice');
    alice.send('SEND\ndestination:/user/mallory/queue/inbox\nreceipt:p\n\nspam\0');
    const error = await alice.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_INVALID_DESTINATION');
    expect(getHeader(error, 'receipt-id')).toBe('p');
    expect(server.broker.waitingFor('mallory')).toBe(0);
  });

  it('tells whether a user is connected (GET /users/<name>)', async () => {
    const server = await startServer({ users: USERS });
    expect((await registry(server, 'bob')).online).toBe(false);
    const bob = await as(server, 'bob');
    const online = await registry(server, 'bob');
    expect(online.online).toBe(true);
    expect(online.instances).toHaveLength(1);
    bob.send('DISCONNECT\nreceipt:bye\n\n\0');
    await bob.receipt('bye');
    await bob.closed;
    expect((await registry(server, 'bob')).online).toBe(false);
  });
});

describe('resume after reconnect (x-position, x-resume-after)', () => {
  async function subscribeOnce(server: StompServer, headers = ''): Promise<RawClient> {
    const client = await as(server);
    client.send(`SUBSCRIBE\nid:s\ndestination:/topic/feed\n${headers}receipt:s\n\n\0`);
    await client.receipt('s');
    return client;
  }

  it('replays exactly the missed messages, then the live ones, in order', async () => {
    const server = await startServer();
    const publisher = await as(server);
    const reader = await subscribeOnce(server);
    publisher.send('SEND\ndestination:/topic/feed\nreceipt:p0\n\nbefore\0');
    await publisher.receipt('p0');
    const [seen] = await messages(reader, 1);
    const position = getHeader(seen as Frame, 'x-position') as string;
    reader.destroy();

    for (let i = 0; i < 1000; i++) publisher.send(`SEND\ndestination:/topic/feed\n\nmissed ${i}\0`);
    publisher.send('SEND\ndestination:/topic/feed\nreceipt:p1\n\nmissed 1000\0');
    await publisher.receipt('p1');

    const back = await as(server);
    back.send(
      `SUBSCRIBE\nid:s\ndestination:/topic/feed\nx-resume-after:${position}\nreceipt:s\n\n\0`,
    );
    const receipt = await back.receipt('s');
    expect(getHeader(receipt, 'x-resume')).toBe('complete');
    publisher.send('SEND\ndestination:/topic/feed\n\nlive\0');
    const got = await messages(back, 1002);
    expect(got.map(bodyText)).toEqual([
      ...Array.from({ length: 1001 }, (_, i) => `missed ${i}`),
      'live',
    ]);
    expect(getHeader(got[0] as Frame, 'x-resume')).toBe('complete');
    expect(getHeader(got[1] as Frame, 'x-resume')).toBeUndefined();
    const positions = got.map((m) => Number(getHeader(m, 'x-position')?.split('-').at(-1)));
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
  });

  it('says so plainly when the position is older than what is retained', async () => {
    const server = await startServer({ historyMaxMessages: 10 });
    const publisher = await as(server);
    const reader = await subscribeOnce(server);
    publisher.send('SEND\ndestination:/topic/feed\n\nfirst\0');
    const [seen] = await messages(reader, 1);
    reader.destroy();
    for (let i = 0; i < 20; i++) publisher.send(`SEND\ndestination:/topic/feed\n\nm${i}\0`);
    publisher.send('SEND\ndestination:/topic/feed\nreceipt:p\n\nlast\0');
    await publisher.receipt('p');
    const back = await subscribeOnce(
      server,
      `x-resume-after:${getHeader(seen as Frame, 'x-position')}\n`,
    );
    expect(getHeader(back.frames.find((f) => f.command === 'RECEIPT') as Frame, 'x-resume')).toBe(
      'incomplete',
    );
    const got = await messages(back, 10);
    expect(getHeader(got[0] as Frame, 'x-resume')).toBe('incomplete');
    expect(got.map(bodyText)).toEqual([
      ...Array.from({ length: 9 }, (_, i) => `m${i + 11}`),
      'last',
    ]);
  });

  it('replays a large backlog at the pace the client reads, then the live messages', async () => {
    const server = await startServer();
    const publisher = await as(server);
    const reader = await subscribeOnce(server);
    publisher.send('SEND\ndestination:/topic/feed\n\nbefore\0');
    const [seen] = await messages(reader, 1);
    reader.destroy();
    const body = 'y'.repeat(8 * 1024);
    for (let i = 0; i < 1000; i++)
      publisher.send(`SEND\ndestination:/topic/feed\n\n${i} ${body}\0`);
    publisher.send('SEND\ndestination:/topic/feed\nreceipt:p\n\n1000 last\0');
    await publisher.receipt('p');
    const back = await subscribeOnce(
      server,
      `x-resume-after:${getHeader(seen as Frame, 'x-position')}\n`,
    );
    publisher.send('SEND\ndestination:/topic/feed\n\nlive\0');
    const got = await messages(back, 1002, 10_000);
    expect(got.map((m) => bodyText(m).split(' ')[0])).toEqual([
      ...Array.from({ length: 1001 }, (_, i) => String(i)),
      'live',
    ]);
    expect(back.all('ERROR')).toHaveLength(0);
  });

  it('never vouches for a resume when no history is kept (--history-max-messages 0)', async () => {
    const server = await startServer({ historyMaxMessages: 0 });
    const publisher = await as(server);
    const reader = await subscribeOnce(server);
    publisher.send('SEND\ndestination:/topic/feed\n\nfirst\0');
    const [seen] = await messages(reader, 1);
    publisher.send('SEND\ndestination:/topic/feed\nreceipt:p\n\nmissed\0');
    await publisher.receipt('p');
    const back = await subscribeOnce(
      server,
      `x-resume-after:${getHeader(seen as Frame, 'x-position')}\n`,
    );
    const receipt = back.frames.find((f) => f.command === 'RECEIPT') as Frame;
    expect(getHeader(receipt, 'x-resume')).toBe('incomplete');
  });

  it('treats a position from an earlier broker process as incomplete', async () => {
    const server = await startServer();
    const back = await subscribeOnce(server, 'x-resume-after:0badc0de-41\n');
    const receipt = back.frames.find((f) => f.command === 'RECEIPT') as Frame;
    expect(getHeader(receipt, 'x-resume')).toBe('incomplete');
  });

  it('refuses x-resume-after on queues and user queues (they hand out what waits anyway)', async () => {
    const server = await startServer({ users: USERS });
    for (const destination of ['/queue/jobs', '/user/queue/inbox']) {
      const client = await as(server, 'bob');
      client.send(`SUBSCRIBE\nid:s\ndestination:${destination}\nx-resume-after:p0-1\n\n\0`);
      const error = await client.expectErrorAndClose();
      expect(getHeader(error, 'message')).toBe('STOMP_ERR_INVALID_HEADER');
    }
  });

  it('refuses a malformed x-resume-after with STOMP_ERR_INVALID_HEADER, then closes', async () => {
    const server = await startServer();
    const client = await as(server);
    client.send('SUBSCRIBE\nid:s\ndestination:/topic/feed\nx-resume-after:yesterday\n\n\0');
    const error = await client.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_INVALID_HEADER');
    await expectOthersUnaffected(server);
  });
});
