/**
 * Token login and hashed passcodes in memory: `jwtAuthenticate` as a
 * broker's `authenticate` hook, driven over a duplex pair with raw frames.
 * Every key kind, every refusal reason, both token sources, passcodes and
 * tokens side by side. spec/e2e/jwt.spec.ts does it over sockets, with a
 * JWKS server, expiry mid-session and the command line.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CryptoKey,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  type JWTPayload,
  SignJWT,
  UnsecuredJWT,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseArgs } from '../../src/config.js';
import { bodyText, getHeader } from '../../src/frame/index.js';
import {
  createJwtVerifier,
  type JwtAuthenticateOptions,
  jwtAuthenticate,
} from '../../src/security/jwt.js';
import { checkPasscode, checkPasscodeAsync, hashPasscode, validateUsers } from '../../src/users.js';
import { memoryClient, testBroker } from '../helpers/duplex-pair.js';

const SECRET = 'a-test-secret-of-at-least-32-bytes!';
const HMAC_KEY = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);

type Kind = 'RS256' | 'PS256' | 'ES256' | 'EdDSA';
const KINDS: Kind[] = ['RS256', 'PS256', 'ES256', 'EdDSA'];
const keys = {} as Record<Kind, { privateKey: CryptoKey; pem: string; file: string }>;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'stompbus-jwt-'));
  for (const alg of KINDS) {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const pem = await exportSPKI(publicKey);
    const file = join(dir, `${alg}.pem`);
    writeFileSync(file, pem);
    keys[alg] = { privateKey, pem, file };
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A token: `sub` alice, an hour to live, unless `claims` say otherwise (undefined removes one). */
function sign(
  alg: string,
  key: CryptoKey | Uint8Array,
  claims: JWTPayload = {},
  header: Record<string, string> = {},
): Promise<string> {
  const payload: JWTPayload = { sub: 'alice', iat: now(), exp: now() + 3600, ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return new SignJWT(payload).setProtectedHeader({ alg, ...header }).sign(key);
}
const hs256 = (claims?: JWTPayload) => sign('HS256', HMAC_KEY, claims);

/** A broker whose authenticate is `jwtAuthenticate(options)`. */
function broker(options: JwtAuthenticateOptions = { jwtSecret: SECRET }) {
  return testBroker({ authenticate: jwtAuthenticate(options) });
}

/** Connects with `headers` and returns the CONNECTED frame and the session's scopes. */
async function accepted(
  options: JwtAuthenticateOptions | undefined,
  headers: Record<string, string>,
) {
  const b = broker(options);
  const client = memoryClient(b);
  const frame = await client.connect(headers);
  const [session] = [...b.sessions];
  return { frame, user: getHeader(frame, 'user-name'), scopes: session?.scopes, client };
}

/** Sends CONNECT with `headers`; expects ERROR STOMP_ERR_AUTH_FAILED and the close; returns the body. */
async function refused(
  options: JwtAuthenticateOptions | undefined,
  headers: Record<string, string>,
) {
  const client = memoryClient(broker(options));
  const lines = Object.entries({ 'accept-version': '1.2', host: 'h', ...headers })
    .map(([k, v]) => `${k}:${v}\n`)
    .join('');
  client.send(`CONNECT\n${lines}\n\0`);
  const error = await client.expectErrorAndClose();
  expect(getHeader(error, 'message')).toBe('STOMP_ERR_AUTH_FAILED');
  expect(client.all('CONNECTED')).toHaveLength(0);
  return bodyText(error);
}

describe('token login: key kinds', () => {
  it.each(['HS256', 'HS384', 'HS512'])('accepts %s tokens with --jwt-secret', async (alg) => {
    const long = 'k'.repeat(64);
    const token = await sign(alg, new TextEncoder().encode(long));
    const { user } = await accepted({ jwtSecret: long }, { passcode: token });
    expect(user).toBe('alice');
  });

  it.each(KINDS)('accepts %s tokens with --jwt-public-key (PEM)', async (alg) => {
    const token = await sign(alg, keys[alg].privateKey, { sub: `user-${alg}` });
    const { user } = await accepted({ jwtPublicKey: keys[alg].file }, { passcode: token });
    expect(user).toBe(`user-${alg}`);
  });

  it('limits a secret to the HMAC algorithms it is long enough for (RFC 7518 §3.2)', async () => {
    expect(() => createJwtVerifier({ jwtSecret: 'short' })).toThrow(/at least 32 bytes/);
    const token = await sign('HS512', HMAC_KEY);
    expect(await refused(undefined, { passcode: token })).toContain(
      'algorithm HS512 is not allowed',
    );
  });

  it('refuses a private key file at start, and starts with no key at all only for users', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const file = join(dir, 'private.pem');
    writeFileSync(file, await exportPKCS8(privateKey));
    expect(() => createJwtVerifier({ jwtPublicKey: file })).toThrow(/private key/);
    expect(() => createJwtVerifier({})).toThrow(/needs --jwt-secret/);
  });
});

describe('token login: sources, user, scopes, expiry', () => {
  it('takes the token from the passcode and ignores the login', async () => {
    const token = await hs256({ scope: 'stompbus.read:/topic/a stompbus.write:/queue/b' });
    const { user, scopes } = await accepted(undefined, { login: 'mallory', passcode: token });
    expect(user).toBe('alice');
    expect(scopes).toEqual(['stompbus.read:/topic/a', 'stompbus.write:/queue/b']);
  });

  it('takes the token from authorization: Bearer (any case of the name, as stompjs sends it)', async () => {
    const token = await hs256({ scope: ['stompbus.read:/topic/x', 'profile'] });
    for (const name of ['authorization', 'Authorization']) {
      const { user, scopes } = await accepted(undefined, { [name]: `Bearer ${token}` });
      expect(user).toBe('alice');
      expect(scopes).toEqual(['stompbus.read:/topic/x', 'profile']);
    }
  });

  it('names the user by --jwt-user-claim', async () => {
    const token = await hs256({ preferred_username: 'al' });
    const { user } = await accepted(
      { jwtSecret: SECRET, jwtUserClaim: 'preferred_username' },
      { passcode: token },
    );
    expect(user).toBe('al');
  });

  it('checks issuer and audience when configured', async () => {
    const options = { jwtSecret: SECRET, jwtIssuer: 'https://idp', jwtAudience: 'stompbus' };
    const token = await hs256({ iss: 'https://idp', aud: ['other', 'stompbus'] });
    expect((await accepted(options, { passcode: token })).user).toBe('alice');
  });

  it('ends the session at exp plus the clock tolerance: ERROR STOMP_ERR_TOKEN_EXPIRED, then close', async () => {
    const exp = now() + 1;
    const verify = createJwtVerifier({ jwtSecret: SECRET, jwtClockToleranceSec: 7 });
    expect((await verify(await hs256({ exp }))).expiresAt).toBe((exp + 7) * 1000);
    // Expired 10 s ago, within the default 30 s of tolerance: still accepted.
    expect((await accepted(undefined, { passcode: await hs256({ exp: now() - 10 }) })).user).toBe(
      'alice',
    );
    const { client } = await accepted(
      { jwtSecret: SECRET, jwtClockToleranceSec: 0 },
      { passcode: await hs256({ exp }) },
    );
    const error = await client.expectErrorAndClose(3000);
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_TOKEN_EXPIRED');
  });
});

describe('token login: refusals say why, and never what the key is', () => {
  const cases: Array<[string, () => Promise<Record<string, string>>, string]> = [
    [
      'bad signature',
      async () => ({ passcode: (await hs256()).replace(/.{4}$/, 'AAAA') }),
      'bad signature',
    ],
    [
      'a token signed with another secret',
      async () => ({ passcode: await sign('HS256', new TextEncoder().encode('x'.repeat(40))) }),
      'bad signature',
    ],
    [
      'alg none (RFC 7519 §6)',
      async () => ({ passcode: new UnsecuredJWT({ sub: 'alice' }).encode() }),
      'alg none is not accepted',
    ],
    ['expired', async () => ({ passcode: await hs256({ exp: now() - 60 }) }), 'expired (exp)'],
    [
      'not yet valid',
      async () => ({ passcode: await hs256({ nbf: now() + 600 }) }),
      'not yet valid (nbf)',
    ],
    [
      'no user claim',
      async () => ({ passcode: await hs256({ sub: undefined }) }),
      'no usable sub claim',
    ],
    [
      'a user claim with a slash',
      async () => ({ passcode: await hs256({ sub: 'a/b' }) }),
      'no usable sub claim',
    ],
    ['a malformed bearer token', async () => ({ authorization: 'Bearer abc' }), 'malformed'],
    [
      'a header that is not JSON',
      async () => ({ passcode: 'bm90LWpzb24.e30.c2ln' }),
      'malformed token',
    ],
    ['no token at all', async () => ({ login: 'alice' }), 'no token'],
  ];
  it.each(cases)('refuses %s', async (_, headers, reason) => {
    const body = await refused({ jwtSecret: SECRET, jwtClockToleranceSec: 5 }, await headers());
    expect(body).toContain(reason);
    expect(body).not.toContain(SECRET);
  });

  it('refuses a wrong issuer or audience', async () => {
    const options = { jwtSecret: SECRET, jwtIssuer: 'https://idp', jwtAudience: 'stompbus' };
    const wrongIss = await hs256({ iss: 'https://evil', aud: 'stompbus' });
    expect(await refused(options, { passcode: wrongIss })).toContain('wrong issuer (iss)');
    const wrongAud = await hs256({ iss: 'https://idp', aud: 'other' });
    expect(await refused(options, { passcode: wrongAud })).toContain('wrong audience (aud)');
  });

  it('refuses an HS256 token signed with the public key as secret (algorithm confusion)', async () => {
    const forged = await sign('HS256', new TextEncoder().encode(keys.RS256.pem));
    const body = await refused({ jwtPublicKey: keys.RS256.file }, { passcode: forged });
    expect(body).toContain('algorithm HS256 is not allowed for the configured key');
  });

  it('refuses an algorithm the key does not allow (an ES256 token for an RSA key)', async () => {
    const token = await sign('ES256', keys.ES256.privateKey);
    const body = await refused({ jwtPublicKey: keys.RS256.file }, { passcode: token });
    expect(body).toContain('algorithm ES256 is not allowed');
  });

  it('refuses a token of another key of the same kind', async () => {
    const token = await sign('EdDSA', (await generateKeyPair('EdDSA')).privateKey);
    expect(await refused({ jwtPublicKey: keys.EdDSA.file }, { passcode: token })).toContain(
      'bad signature',
    );
  });
});

describe('passcodes and tokens side by side', () => {
  let hashed: string;
  beforeAll(async () => {
    hashed = await hashPasscode('b-secret');
  });
  const options = (): JwtAuthenticateOptions => ({
    jwtSecret: SECRET,
    users: new Map([
      ['carol', 'c-secret'],
      ['bob', hashed],
    ]),
  });

  it('accepts a plain passcode, a hashed one and a token on the same broker', async () => {
    expect((await accepted(options(), { login: 'carol', passcode: 'c-secret' })).user).toBe(
      'carol',
    );
    expect((await accepted(options(), { login: 'bob', passcode: 'b-secret' })).user).toBe('bob');
    const token = await hs256({ sub: 'dave' });
    expect((await accepted(options(), { login: 'bob', passcode: token })).user).toBe('dave');
  });

  it('refuses a wrong passcode, an unknown login and a bad token', async () => {
    for (const headers of [
      { login: 'bob', passcode: 'c-secret' },
      { login: 'carol', passcode: 'c-secre' },
      { login: 'nobody', passcode: 'b-secret' },
      { login: 'bob', passcode: (await hs256()).replace(/.{4}$/, 'AAAA') },
    ]) {
      await refused(options(), headers);
    }
  });

  it('checks users alone (no JWT key) off the event loop', async () => {
    const users = new Map([['bob', hashed]]);
    expect((await accepted({ users }, { login: 'bob', passcode: 'b-secret' })).user).toBe('bob');
    await refused({ users }, { login: 'bob', passcode: await hs256() });
  });
});

describe('hashed passcodes (scrypt)', () => {
  it('prints scrypt$N=16384;r=8;p=1$<salt>$<hash> with a fresh salt each time', async () => {
    const [a, b] = [await hashPasscode('pw'), await hashPasscode('pw')];
    expect(a).toMatch(/^scrypt\$N=16384;r=8;p=1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
  });

  it('compares hashed and plain entries, synchronously and not', async () => {
    const users = new Map([
      ['a', await hashPasscode('pw', { N: 1024, r: 8, p: 1 })],
      ['b', 'plain'],
    ]);
    expect(checkPasscode(users, 'a', 'pw')).toBe(true);
    expect(checkPasscode(users, 'a', 'pW')).toBe(false);
    expect(checkPasscode(users, 'b', 'plain')).toBe(true);
    expect(checkPasscode(users, 'b', 'plai')).toBe(false);
    expect(await checkPasscodeAsync(users, 'a', 'pw')).toBe(true);
    expect(await checkPasscodeAsync(users, 'a', '')).toBe(false);
    expect(await checkPasscodeAsync(users, 'a', undefined)).toBe(false);
    expect(await checkPasscodeAsync(users, 'zed', 'pw')).toBe(false);
  });

  it('refuses malformed or too costly entries, in code and on the command line', () => {
    for (const bad of [
      'scrypt$N=1000;r=8;p=1$c2FsdA$aGFzaA',
      'scrypt$N=16384,r=8,p=1$c2FsdA$aGFzaA',
      'scrypt$N=4194304;r=8;p=1$c2FsdA$aGFzaA',
    ]) {
      expect(() => validateUsers(new Map([['x', bad]]))).toThrow(/hashed passcode/);
      expect(() => parseArgs(['--user', `x:${bad}`], {})).toThrow(/hashed passcode/);
    }
  });

  it('parses the hash-passcode command', () => {
    expect(parseArgs(['hash-passcode'], {})).toEqual({
      kind: 'hash-passcode',
      passcode: undefined,
    });
    expect(parseArgs(['hash-passcode', 's3cret'], {})).toEqual({
      kind: 'hash-passcode',
      passcode: 's3cret',
    });
    expect(parseArgs(['hash-passcode', '--help'], {})).toEqual({ kind: 'help' });
    expect(() => parseArgs(['hash-passcode', 'a', 'b'], {})).toThrow(/one passcode/);
  });
});
