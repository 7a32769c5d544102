/**
 * Permissions per destination over real sockets (WebSocket and TCP), with
 * @stomp/stompjs and raw frames: a server started with `aclFile`, passcode
 * users and `jwtSecret` (HS256 tokens carrying `stompbus.*` scopes), the same
 * rules on a second cluster instance, and the command refusing a bad file.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IFrame } from '@stomp/stompjs';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import { jwtAuthenticate } from '../../src/security/jwt.js';
import type { StompServer } from '../../src/server.js';
import { plainProducer, skipKafka, startCluster, uniqueName } from '../helpers/cluster.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer } from '../helpers/server.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';
import { expectOthersUnaffected } from '../helpers/unaffected.js';

const USERS = new Map([
  ['alice', 'a-secret'],
  ['bob', 'b-secret'],
  ['carol', 'c-secret'],
]);
const SECRET = 'an HS256 secret of at least 32 bytes, for the spec';

const RULES = {
  rules: [
    {
      user: '*',
      read: ['/topic/public.*', '/topic/inbox.{user}', '/user/{user}/**', '/topic/still-alive'],
      write: ['/topic/public.chat', '/user/*/queue/chat', '/topic/still-alive'],
    },
    { user: 'alice', read: ['/queue/orders'], write: ['/topic/inbox.*', '/queue/orders'] },
    { user: 'guest', read: ['/topic/still-alive'], write: ['/topic/still-alive'] },
  ],
};
const dir = mkdtempSync(join(tmpdir(), 'stompbus-acl-e2e-'));
const ACL_FILE = join(dir, 'acl.json');
writeFileSync(ACL_FILE, JSON.stringify(RULES));

type Over = 'ws' | 'tcp';
const target = (server: StompServer, over: Over) =>
  over === 'ws' ? server.url : (server.tcpPort as number);

/** An HS256 token for `sub` with these scopes (space-separated `scope` claim). */
function token(sub: string, scopes: string[] = []): Promise<string> {
  return new SignJWT({ scope: scopes.join(' ') })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(SECRET));
}

/** A raw client logged in as `login` (passcode from USERS), or with `headers`. */
async function raw(server: StompServer, over: Over, headers: Record<string, string>) {
  const client =
    over === 'ws' ? await RawClient.ws(server.url) : await RawClient.tcp(server.tcpPort as number);
  await client.connect(headers);
  return client;
}
const as = (login: string) => ({ login, passcode: USERS.get(login) ?? '' });

/** SUBSCRIBE and wait for its receipt. */
async function subscribe(client: RawClient, id: string, destination: string): Promise<void> {
  client.send(`SUBSCRIBE\nid:${id}\ndestination:${destination}\nreceipt:sub-${id}\n\n\0`);
  await client.receipt(`sub-${id}`);
}

/** SEND with a receipt and wait for it. */
async function send(client: RawClient, destination: string, body: string): Promise<void> {
  const receipt = `send-${Math.random().toString(36).slice(2)}`;
  client.send(`SEND\ndestination:${destination}\nreceipt:${receipt}\n\n${body}\0`);
  await client.receipt(receipt);
}

/** Expects ERROR STOMP_ERR_FORBIDDEN answering `receipt`, then the close. */
async function expectForbidden(client: RawClient, receipt: string): Promise<Frame> {
  const error = await client.expectErrorAndClose();
  expect(getHeader(error, 'message')).toBe('STOMP_ERR_FORBIDDEN');
  expect(getHeader(error, 'receipt-id')).toBe(receipt);
  return error;
}

const bodies = (client: RawClient) => client.all('MESSAGE').map(bodyText);

describe.each<Over>(['ws', 'tcp'])('permissions per destination over %s', (over) => {
  const server = () => startServer({ aclFile: ACL_FILE, users: USERS, jwtSecret: SECRET });

  it('grants what the rules say, {user} and user destinations included (stompjs)', async () => {
    const s = await server();
    const alice = await stompClient(target(s, over), { connectHeaders: as('alice') });
    const bob = await stompClient(target(s, over), { connectHeaders: as('bob') });
    const inbox = new Inbox();
    for (const d of ['/topic/public.chat', '/topic/inbox.bob', '/user/queue/chat']) {
      await new Promise<void>((resolve) => {
        bob.watchForReceipt(`s${d}`, () => resolve());
        bob.subscribe(d, inbox.take, { receipt: `s${d}` });
      });
    }
    await publishWithReceipt(alice, { destination: '/topic/public.chat', body: 'to all' });
    await publishWithReceipt(alice, { destination: '/topic/inbox.bob', body: 'to your inbox' });
    await publishWithReceipt(alice, { destination: '/user/bob/queue/chat', body: 'to you' });
    const got = await inbox.waitFor(3);
    expect(got.map((m) => m.body).sort()).toEqual(['to all', 'to you', 'to your inbox']);
    const orders = new Inbox();
    alice.subscribe('/queue/orders', orders.take);
    await publishWithReceipt(alice, { destination: '/queue/orders', body: 'order 1' });
    expect((await orders.waitFor(1))[0]?.body).toBe('order 1');
  });

  it('refuses a SEND no rule grants: ERROR with receipt-id, close, and the message reaches nobody', async () => {
    const s = await server();
    const carol = await raw(s, over, as('carol'));
    await subscribe(carol, 'in', '/topic/inbox.carol');
    const bob = await raw(s, over, as('bob'));
    bob.send('SEND\ndestination:/topic/inbox.carol\nreceipt:forged\n\nfrom bob\0');
    await expectForbidden(bob, 'forged');
    const alice = await raw(s, over, as('alice'));
    await send(alice, '/topic/inbox.carol', 'from alice');
    await carol.waitFor(() => carol.all('MESSAGE').length === 1, 5000, 'the allowed message');
    // A user destination no rule opens: alice may read her own, bob may not write it.
    await subscribe(alice, 'other', '/user/queue/other');
    const bob2 = await raw(s, over, as('bob'));
    bob2.send('SEND\ndestination:/user/alice/queue/other\nreceipt:u\n\nsneaky\0');
    await expectForbidden(bob2, 'u');
    await send(alice, '/topic/inbox.carol', 'again');
    await carol.waitFor(() => carol.all('MESSAGE').length === 2, 5000, 'the second message');
    expect(bodies(carol)).toEqual(['from alice', 'again']);
    expect(alice.all('MESSAGE')).toHaveLength(0);
  });

  it('refuses a SUBSCRIBE no rule grants; that client gets nothing of what is published after', async () => {
    const s = await server();
    const carol = await raw(s, over, as('carol'));
    await subscribe(carol, 'in', '/topic/inbox.carol');
    const bob = await raw(s, over, as('bob'));
    bob.send(
      'SUBSCRIBE\nid:spy\ndestination:/topic/inbox.carol\nreceipt:spy\n\n\0' +
        'SUBSCRIBE\nid:ok\ndestination:/topic/public.chat\nreceipt:behind\n\n\0',
    );
    await expectForbidden(bob, 'spy');
    const alice = await raw(s, over, as('alice'));
    await send(alice, '/topic/inbox.carol', 'for carol only');
    await send(alice, '/topic/public.chat', 'for everyone');
    await carol.waitFor(() => carol.all('MESSAGE').length === 1, 5000, 'the message');
    expect(bob.all('MESSAGE')).toHaveLength(0);
    expect(bob.all('RECEIPT')).toHaveLength(0);
    // Queues obey too: only alice reads /queue/orders.
    const bob2 = await raw(s, over, as('bob'));
    bob2.send('SUBSCRIBE\nid:q\ndestination:/queue/orders\nreceipt:q\n\n\0');
    await expectForbidden(bob2, 'q');
    await send(alice, '/queue/orders', 'order');
    expect(s.broker.queueDepth('/queue/orders')).toBe(1);
  });

  it('tells stompjs why: onStompError gets STOMP_ERR_FORBIDDEN with the receipt-id', async () => {
    const s = await server();
    const bob = await stompClient(target(s, over), { connectHeaders: as('bob') });
    const error = new Promise<IFrame>((resolve) => {
      bob.onStompError = resolve;
    });
    bob.subscribe('/topic/inbox.alice', () => {}, { receipt: 'peek' });
    const frame = await error;
    expect(frame.headers.message).toBe('STOMP_ERR_FORBIDDEN');
    expect(frame.headers['receipt-id']).toBe('peek');
    expect(frame.body).toContain('/topic/inbox.alice');
  });

  it("adds the grants of a token's stompbus.read: and stompbus.write: scopes (HS256)", async () => {
    const s = await server();
    const scopes = [
      'openid',
      'stompbus.read:/topic/scoped.**',
      'stompbus.write:/topic/scoped.{user}',
    ];
    // The token as the passcode (stompjs) and as an authorization: Bearer header (raw).
    const dave = await stompClient(target(s, over), {
      connectHeaders: { login: 'ignored', passcode: await token('dave', scopes) },
    });
    const inbox = new Inbox();
    for (const d of ['/topic/scoped.dave', '/topic/scoped.a.b', '/topic/public.chat']) {
      await new Promise<void>((resolve) => {
        dave.watchForReceipt(d, () => resolve());
        dave.subscribe(d, inbox.take, { receipt: d });
      });
    }
    await publishWithReceipt(dave, { destination: '/topic/scoped.dave', body: 'own topic' });
    const alice = await raw(s, over, as('alice'));
    await send(alice, '/topic/public.chat', 'rules still apply');
    await inbox.waitFor(2);
    const dave2 = await raw(s, over, { authorization: `Bearer ${await token('dave', scopes)}` });
    await subscribe(dave2, 'a', '/topic/scoped.a.b');
    await send(dave2, '/topic/scoped.dave', 'again');
    dave2.send('SEND\ndestination:/topic/scoped.a.b\nreceipt:not-mine\n\nx\0');
    await expectForbidden(dave2, 'not-mine');
    expect(bodies(dave2)).toEqual([]);
    const erin = await raw(s, over, { passcode: await token('erin') });
    erin.send('SUBSCRIBE\nid:x\ndestination:/topic/scoped.a.b\nreceipt:x\n\n\0');
    await expectForbidden(erin, 'x');
    // dave's first session saw its own sends, none of the refused one.
    await send(alice, '/topic/public.chat', 'last');
    await inbox.waitFor(4);
    expect(inbox.messages.map((m) => m.body)).toEqual([
      'own topic',
      'rules still apply',
      'again',
      'last',
    ]);
  });

  it('leaves other clients unaffected by a refusal', async () => {
    // An embedder's authenticate in front of the JWT one: no login is the user "guest".
    const login = jwtAuthenticate({ jwtSecret: SECRET, users: USERS });
    const s = await startServer({
      aclFile: ACL_FILE,
      authenticate: (r) => (r.login === undefined && r.passcode === undefined ? 'guest' : login(r)),
    });
    const bob = await raw(s, over, as('bob'));
    await subscribe(bob, 'pub', '/topic/public.chat');
    const intruder = await raw(s, over, as('carol'));
    intruder.send('SEND\ndestination:/queue/orders\nreceipt:no\n\nx\0');
    await expectForbidden(intruder, 'no');
    await expectOthersUnaffected(s, over);
    await send(bob, '/topic/public.chat', 'still here');
    await bob.waitFor(() => bob.all('MESSAGE').length === 1, 5000, 'its own message');
  });
});

describe('permissions with JWT login and no ACL file', () => {
  it('grants by scopes alone; passcode users and unscoped tokens get nothing', async () => {
    const s = await startServer({ users: USERS, jwtSecret: SECRET });
    const dave = await raw(s, 'ws', { passcode: await token('dave', ['stompbus.read:/topic/x']) });
    await subscribe(dave, 'x', '/topic/x');
    dave.send('SEND\ndestination:/topic/x\nreceipt:w\n\nno write scope\0');
    await expectForbidden(dave, 'w');
    const alice = await raw(s, 'tcp', as('alice'));
    alice.send('SUBSCRIBE\nid:x\ndestination:/topic/x\nreceipt:a\n\n\0');
    await expectForbidden(alice, 'a');
  });
});

describe.skipIf(skipKafka)('permissions on every instance of a cluster', () => {
  it('enforces the same rules on a second instance, bridged Kafka topics included', async () => {
    const bridge = uniqueName('stompbus-spec-acl');
    const { instances } = await startCluster(2, {
      aclFile: ACL_FILE,
      users: USERS,
      jwtSecret: SECRET,
      kafkaBridges: { [bridge]: '/topic/public.feed', [`${bridge}-secret`]: '/topic/secret.feed' },
    });
    const [one, two] = instances as [StompServer, StompServer];
    const carol = await raw(two, 'ws', as('carol'));
    await subscribe(carol, 'in', '/topic/inbox.carol');
    await subscribe(carol, 'feed', '/topic/public.feed');
    const spy = await raw(two, 'tcp', as('bob'));
    spy.send('SUBSCRIBE\nid:s\ndestination:/topic/inbox.carol\nreceipt:s\n\n\0');
    await expectForbidden(spy, 's');
    const secret = await raw(two, 'ws', as('carol'));
    secret.send('SUBSCRIBE\nid:s\ndestination:/topic/secret.feed\nreceipt:b\n\n\0');
    await expectForbidden(secret, 'b');
    const forger = await raw(one, 'tcp', as('bob'));
    forger.send('SEND\ndestination:/topic/inbox.carol\nreceipt:f\n\nforged\0');
    await expectForbidden(forger, 'f');
    await send(await raw(one, 'ws', as('alice')), '/topic/inbox.carol', 'across instances');
    const producer = await plainProducer();
    await producer.send({ topic: bridge, acks: -1, messages: [{ value: 'from kafka' }] });
    await carol.waitFor(() => carol.all('MESSAGE').length === 2, 15_000, 'two messages');
    expect(bodies(carol).sort()).toEqual(['across instances', 'from kafka']);
  });
});

describe('the command with a bad --acl-file', () => {
  it('exits 2 with one line naming the file and the rule', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({
        rules: [
          { user: 'a', read: ['/topic/ok'] },
          { user: 'b', write: ['/topic/**.x'] },
        ],
      }),
    );
    const bin = fileURLToPath(new URL('../../bin/stompbus.js', import.meta.url));
    const child = spawn(process.execPath, [bin, '--acl-file', file, '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '', STOMPBUS_ADMIN_PORT: '0' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe(
      `stompbus: --acl-file ${file}: rules[1].write[0] "/topic/**.x": "**" may only be the last segment\n`,
    );
  });
});
