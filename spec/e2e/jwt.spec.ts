/**
 * Token login over real sockets: the server with `--jwt-*` options over
 * WebSocket and TCP (stompjs and raw frames), a JSON Web Key Set served on
 * 127.0.0.1 with a key rotation, expiry mid-session, stompjs reconnecting
 * with fresh tokens and resuming without a gap, and the chat example's token
 * mode in Chromium. The command line's side is spec/e2e/jwt-cli.spec.ts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, type IMessage } from '@stomp/stompjs';
import { TCPWrapper } from '@stomp/tcp-wrapper';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { bodyText, getHeader } from '../../src/frame/index.js';
import type { StompServer } from '../../src/server.js';
import {
  launchChromium,
  logLines,
  openChat,
  say,
  startChat,
  waitForLine,
  waitForState,
} from '../helpers/browser.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer } from '../helpers/server.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';
import { missingChromium, skipWithout } from '../helpers/tools.js';

const SECRET = 'e2e-secret-of-at-least-thirty-two-bytes';
const now = () => Math.floor(Date.now() / 1000);

/** JWT login refuses what nothing grants: the tokens grant topics and user destinations. */
const SCOPE = [
  'stompbus.read:/topic/**',
  'stompbus.write:/topic/**',
  'stompbus.read:/user/{user}/**',
  'stompbus.write:/user/**',
].join(' ');

/** An HS256 token for `sub` that lives `ttl` seconds. */
function token(sub: string, ttl = 3600, claims: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ sub, exp: now() + ttl, scope: SCOPE, ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .sign(new TextEncoder().encode(SECRET));
}

type Over = 'ws' | 'tcp';
const raw = (server: StompServer, over: Over) =>
  over === 'ws' ? RawClient.ws(server.url) : RawClient.tcp(server.tcpPort as number);

/** A raw client logged in with a token (as passcode) for `sub`. */
async function loggedIn(server: StompServer, over: Over, sub: string, ttl = 3600) {
  const client = await raw(server, over);
  const connected = await client.connect({ login: 'ignored', passcode: await token(sub, ttl) });
  expect(getHeader(connected, 'user-name')).toBe(sub);
  return client;
}

/** The ERROR a CONNECT with `headers` gets, after which the connection closes. */
async function refusal(server: StompServer, over: Over, headers: Record<string, string>) {
  const client = await raw(server, over);
  const lines = Object.entries({ 'accept-version': '1.2', host: 'h', ...headers });
  client.send(`CONNECT\n${lines.map(([k, v]) => `${k}:${v}\n`).join('')}\n\0`);
  const error = await client.expectErrorAndClose();
  expect(getHeader(error, 'message')).toBe('STOMP_ERR_AUTH_FAILED');
  return bodyText(error);
}

const jwtServer = () => startServer({ jwtSecret: SECRET, jwtClockToleranceSec: 0 });

describe.each<Over>(['ws', 'tcp'])('token login over %s', (over) => {
  it('logs stompjs in with the token as passcode or as authorization: Bearer; the user is the sub', async () => {
    const server = await jwtServer();
    const target = over === 'ws' ? server.url : (server.tcpPort as number);
    const alice = await stompClient(target, { connectHeaders: { passcode: await token('alice') } });
    const bob = await stompClient(target, {
      connectHeaders: { Authorization: `Bearer ${await token('bob')}` },
    });
    // User destinations key on the token's user.
    const inbox = new Inbox();
    bob.subscribe('/user/queue/inbox', inbox.take);
    await publishWithReceipt(bob, { destination: '/topic/sync', body: 'subscribed' });
    await publishWithReceipt(alice, { destination: '/user/bob/queue/inbox', body: 'hi bob' });
    const [message] = await inbox.waitFor(1);
    expect(message?.body).toBe('hi bob');
    expect([...server.sessions].map((s) => s.user).sort()).toEqual(['alice', 'bob']);
  });

  it('refuses bad tokens with ERROR STOMP_ERR_AUTH_FAILED saying why, then closes', async () => {
    const server = await jwtServer();
    const forged = (await token('alice')).replace(/.{4}$/, 'AAAA');
    expect(await refusal(server, over, { passcode: forged })).toContain('bad signature');
    const expired = await token('alice', -5);
    expect(await refusal(server, over, { authorization: `Bearer ${expired}` })).toContain(
      'expired',
    );
    expect(await refusal(server, over, { login: 'alice' })).toContain('no token');
  });

  it('ends a session at its token expiry (ERROR STOMP_ERR_TOKEN_EXPIRED, close); others carry on', async () => {
    const server = await jwtServer();
    const other = await loggedIn(server, over, 'bob');
    other.send('SUBSCRIBE\nid:s\ndestination:/topic/still-alive\nreceipt:s\n\n\0');
    await other.receipt('s');
    const short = await loggedIn(server, over, 'alice', 2);
    short.send('SUBSCRIBE\nid:s\ndestination:/topic/still-alive\n\n\0');
    const error = await short.expectErrorAndClose(4000);
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_TOKEN_EXPIRED');
    // Bob's session is untouched, and a new login works.
    const publisher = await loggedIn(server, over, 'carol');
    publisher.send('SEND\ndestination:/topic/still-alive\n\nfine\0');
    expect(bodyText(await other.next('MESSAGE'))).toBe('fine');
    expect(other.all('ERROR')).toHaveLength(0);
  });

  it('reconnects stompjs with a fresh token (beforeConnect) and misses nothing (x-resume-after)', async () => {
    const server = await jwtServer();
    const publisher = await loggedIn(server, over, 'publisher');
    const got: string[] = [];
    const errors: string[] = [];
    let last: string | undefined;
    let sessions = 0;
    const reader: Client = new Client({
      webSocketFactory:
        over === 'ws'
          ? () => new WebSocket(server.url, ['v12.stomp'])
          : () => new TCPWrapper('127.0.0.1', server.tcpPort as number),
      reconnectDelay: 50,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      // Tokens of 1-2 s: the session ends (at least) twice during the test.
      beforeConnect: async () => {
        reader.connectHeaders = { passcode: await token('reader', 2) };
      },
      onConnect: () => {
        sessions++;
        const take = (m: IMessage) => {
          got.push(m.body);
          last = m.headers['x-position'];
        };
        reader.subscribe('/topic/feed', take, last ? { 'x-resume-after': last } : {});
      },
      onStompError: (frame) => errors.push(frame.headers.message ?? ''),
    });
    readers.add(reader);
    reader.activate();
    await vi.waitFor(() => expect(sessions).toBe(1));
    const sent: string[] = [];
    const until = Date.now() + 4500;
    while (Date.now() < until) {
      sent.push(`m${sent.length}`);
      publisher.send(`SEND\ndestination:/topic/feed\n\n${sent.at(-1)}\0`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await vi.waitFor(() => expect(got.length).toBeGreaterThanOrEqual(sent.length), 5000);
    expect(got).toEqual(sent);
    expect(errors.filter((e) => e === 'STOMP_ERR_TOKEN_EXPIRED').length).toBeGreaterThanOrEqual(2);
    expect(sessions).toBeGreaterThanOrEqual(3);
  });
});

const readers = new Set<Client>();
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all([...readers].map((c) => c.deactivate({ force: true })));
  readers.clear();
});

describe('token login with a JSON Web Key Set (--jwks-url)', () => {
  let jwks: Server;
  let served: JWK[] = [];
  let fetches = 0;
  const keys: Record<string, CryptoKey> = {};

  beforeAll(async () => {
    jwks = createServer((_req, res) => {
      fetches++;
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ keys: served }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => jwks.close(() => resolve())));

  /** A new ES256 key `kid`, its public half as a JWK. */
  async function newKey(kid: string): Promise<JWK> {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    keys[kid] = privateKey;
    return { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  }
  const signed = (kid: string, sub: string) =>
    new SignJWT({ sub, exp: now() + 3600 })
      .setProtectedHeader({ alg: 'ES256', kid })
      .sign(keys[kid] as CryptoKey);

  it('follows a key rotation by kid, fetching again at most once per cooldown', async () => {
    const [a, b] = [await newKey('a'), await newKey('b')];
    served = [a];
    fetches = 0;
    const url = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
    const server = await startServer({ jwksUrl: url });
    // jose keeps time by Date.now(): moving it on stands for waiting.
    const realNow = Date.now.bind(Date);
    let skew = 0;
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + skew);
    const connectAs = async (kid: string, sub: string) => {
      const client = await RawClient.ws(server.url);
      const frame = await client.connect({ passcode: await signed(kid, sub) });
      return getHeader(frame, 'user-name');
    };

    expect(await connectAs('a', 'alice')).toBe('alice');
    expect(fetches).toBe(1);
    // Rotation: b is published beside a. A token of b within the cooldown finds no key...
    served = [a, b];
    const early = await refusal(server, 'ws', { passcode: await signed('b', 'bob') });
    expect(early).toContain('no key of the key set matches');
    expect(fetches).toBe(1);
    // ...and after it (30 s) one fetch finds b; a's tokens still work while a is served.
    skew += 31_000;
    expect(await connectAs('b', 'bob')).toBe('bob');
    expect(await connectAs('a', 'alice')).toBe('alice');
    expect(fetches).toBe(2);
    // A flood of unknown kids costs one fetch per cooldown, however many come at once.
    await newKey('c');
    skew += 31_000;
    const unknown = await signed('c', 'mallory');
    await Promise.all(
      Array.from({ length: 20 }, () => refusal(server, 'ws', { passcode: unknown })),
    );
    await refusal(server, 'ws', { passcode: unknown });
    expect(fetches).toBe(3);
    // a withdrawn: once the cached set is stale (10 min), a's tokens are refused, b's are not.
    served = [b];
    skew += 11 * 60_000;
    expect(await refusal(server, 'ws', { passcode: await signed('a', 'alice') })).toContain(
      'no key of the key set matches',
    );
    expect(await connectAs('b', 'bob')).toBe('bob');
    expect(fetches).toBe(4);
  });

  it('refuses an HS256 token on a key set (public keys only), and says when the set is unreachable', async () => {
    const server = await startServer({ jwksUrl: 'http://127.0.0.1:1/jwks.json' });
    expect(await refusal(server, 'tcp', { passcode: await token('alice') })).toContain(
      'algorithm HS256 is not allowed',
    );
    await newKey('d');
    expect(await refusal(server, 'tcp', { passcode: await signed('d', 'alice') })).toContain(
      'the key set is unavailable',
    );
  });
});

const noChromium = skipWithout('jwt.spec.ts (chat token mode)', missingChromium());

describe.skipIf(noChromium)('the chat example in token mode, in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('logs pages in with fetched tokens; at expiry they reconnect with fresh ones and chat on', async () => {
    const server = await jwtServer();
    const chat = await startChat(server.url, [
      '--reconnect-delay',
      '200',
      '--token-secret',
      SECRET,
      '--token-ttl',
      '5',
    ]);
    const alice = await openChat(browser, chat, 'alice');
    const bob = await openChat(browser, chat, 'bob');
    // The broker knows the pages by their tokens' sub.
    const users = () => [...new Set([...server.sessions].map((s) => s.user))].sort();
    await expect.poll(users).toEqual(['alice', 'bob']);
    await say(alice, 'before');
    await waitForLine(bob, 'room|alice: before');
    // Both sessions end at their tokens' exp; both pages come back and resume the room.
    for (const page of [alice, bob]) {
      const expired = async () =>
        (await logLines(page)).some((l) => l.includes('STOMP_ERR_TOKEN_EXPIRED'));
      await expect.poll(expired, { timeout: 10_000 }).toBe(true);
      await waitForLine(page, 'system|back in #lobby');
    }
    await waitForState(alice, 'connected');
    await say(alice, 'after');
    await waitForLine(bob, 'room|alice: after');
    // Nothing twice, nothing missed.
    const room = (await logLines(bob)).filter((l) => l.startsWith('room|'));
    expect(room).toEqual(['room|alice: before', 'room|alice: after']);
  });
});
