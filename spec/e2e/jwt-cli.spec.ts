/**
 * Token login and hashed passcodes from the command line: `bin/stompbus.js`
 * as a child process with `--jwt-secret` (and its environment variable), with
 * a `--users-file` of scrypt hashes made by `stompbus hash-passcode`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { bodyText, getHeader } from '../../src/frame/index.js';
import { RawClient } from '../helpers/raw-client.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/stompbus.js');
const SECRET = 'cli-secret-of-at-least-thirty-two-bytes';
const dir = mkdtempSync(join(tmpdir(), 'stompbus-jwt-cli-'));
const children = new Set<ChildProcess>();

afterEach(() => {
  for (const child of children) child.kill('SIGTERM');
  children.clear();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The environment without stompbus settings, plus `env`. */
function environment(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean = { ...process.env };
  for (const key of Object.keys(clean)) if (key.startsWith('STOMPBUS_')) delete clean[key];
  // A free admin port: commands of several spec files run side by side.
  return { ...clean, STOMPBUS_ADMIN_PORT: '0', ...env };
}

/** Runs `stompbus args` to its end, with `stdin` as its input. */
function run(args: string[], stdin = '', env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: environment(env) });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdin.end(stdin);
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
}

/** A TCP port free a moment ago (`--tcp-port 0` turns TCP off rather than picking one). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts `stompbus` on loopback, free ports; resolves with its WebSocket URL and TCP port. */
async function serve(args: string[], env: Record<string, string> = {}) {
  const tcp = String(await freePort());
  const argv = [BIN, '--host', '127.0.0.1', '--port', '0', '--tcp-port', tcp, ...args];
  const child = spawn(process.execPath, argv, { cwd: ROOT, env: environment(env) });
  children.add(child);
  let out = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready: ${out}`)), 10_000);
    child.on('exit', () => reject(new Error(`exited: ${out}`)));
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      // The ready line (JSON: stdout is no terminal) names both URLs.
      const m = /"ws":"(ws:\/\/[^"]+)","tcp":"stomp:\/\/[^"]+:(\d+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
  return { url: match[1] as string, tcpPort: Number(match[2]) };
}

function token(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT({ exp: Math.floor(Date.now() / 1000) + 600, ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .sign(new TextEncoder().encode(SECRET));
}

/** The CONNECT outcome: the user name, or the refusal's code and body. */
async function login(client: RawClient, headers: Record<string, string>) {
  const lines = Object.entries({ 'accept-version': '1.2', host: 'h', ...headers });
  client.send(`CONNECT\n${lines.map(([k, v]) => `${k}:${v}\n`).join('')}\n\0`);
  const frame = await client.waitFor(() => client.frames[0], 5000, 'CONNECTED or ERROR');
  if (frame.command === 'CONNECTED') return `user ${getHeader(frame, 'user-name')}`;
  await client.closed;
  return `${getHeader(frame, 'message')}: ${bodyText(frame)}`;
}

describe('stompbus hash-passcode', () => {
  it('prints one scrypt line for a passcode read from stdin or given as argument', async () => {
    const piped = await run(['hash-passcode'], 's3cret\n');
    expect(piped.code).toBe(0);
    expect(piped.stdout).toMatch(/^scrypt\$N=16384;r=8;p=1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+\n$/);
    const argument = await run(['hash-passcode', 's3cret']);
    expect(argument.stdout).toMatch(/^scrypt\$/);
    expect(argument.stdout).not.toBe(piped.stdout);
  });

  it('refuses an empty passcode and is listed in --help', async () => {
    const empty = await run(['hash-passcode'], '\n');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('empty');
    const help = await run(['--help']);
    expect(help.stdout).toContain('hash-passcode [passcode]');
    expect(help.stdout).toContain('--jwt-secret <secret>');
  });
});

describe('stompbus with token login and hashed passcodes', () => {
  it('logs in with tokens under --jwt-secret (or STOMPBUS_JWT_SECRET) and checks the issuer', async () => {
    const viaFlag = await serve(['--jwt-secret', SECRET, '--jwt-issuer', 'https://idp']);
    const viaEnv = await serve(['--jwt-issuer', 'https://idp'], { STOMPBUS_JWT_SECRET: SECRET });
    for (const { url, tcpPort } of [viaFlag, viaEnv]) {
      const good = await token({ sub: 'alice', iss: 'https://idp' });
      expect(await login(await RawClient.ws(url), { passcode: good })).toBe('user alice');
      expect(await login(await RawClient.tcp(tcpPort), { authorization: `Bearer ${good}` })).toBe(
        'user alice',
      );
      const evil = await token({ sub: 'alice', iss: 'https://evil' });
      expect(await login(await RawClient.tcp(tcpPort), { passcode: evil })).toMatch(
        /^STOMP_ERR_AUTH_FAILED: .*wrong issuer \(iss\)/,
      );
    }
  });

  it('takes a users file of scrypt hashes and plain passcodes, beside tokens', async () => {
    const hash = (await run(['hash-passcode'], 'alice-pw\n')).stdout.trim();
    const file = join(dir, 'users');
    writeFileSync(file, `# users\nalice:${hash}\nbob:bob-pw\n`);
    const { url, tcpPort } = await serve(['--users-file', file, '--jwt-secret', SECRET]);
    const tcp = () => RawClient.tcp(tcpPort);
    expect(await login(await tcp(), { login: 'alice', passcode: 'alice-pw' })).toBe('user alice');
    expect(await login(await RawClient.ws(url), { login: 'bob', passcode: 'bob-pw' })).toBe(
      'user bob',
    );
    expect(await login(await tcp(), { passcode: await token({ sub: 'carol' }) })).toBe(
      'user carol',
    );
    for (const wrong of [
      { login: 'alice', passcode: hash },
      { login: 'alice', passcode: 'bob-pw' },
      { login: 'mallory', passcode: 'alice-pw' },
    ]) {
      expect(await login(await tcp(), wrong)).toMatch(/^STOMP_ERR_AUTH_FAILED: /);
    }
  });

  it('refuses to start with a malformed hash or a short secret', async () => {
    const file = join(dir, 'bad-users');
    writeFileSync(file, 'alice:scrypt$N=3;r=8;p=1$c2FsdA$aGFzaA\n');
    const bad = await run(['--users-file', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('hashed passcode');
    const short = await run(['--host', '127.0.0.1', '--port', '0', '--jwt-secret', 'short']);
    expect(short.code).toBe(1);
    expect(short.stderr).toContain('--jwt-secret needs at least 32 bytes');
  });
});
