import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@stomp/stompjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FLAGS } from '../../src/config.js';
import { getHeader } from '../../src/frame/index.js';
import { RawClient } from '../helpers/raw-client.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/stompbus.js');
/** Longest any child may take to start or to exit on its own. */
const PROCESS_TIMEOUT_MS = 10_000;
/** Longest SIGTERM may take with `--shutdown-timeout 1000` (the CLI's own hard deadline is 6 s). */
const SHUTDOWN_BOUND_MS = 8_000;

/** How a child process ended. */
interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The `stompbus` command running as a child process (`node bin/stompbus.js`). */
class Cli {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  private readonly child: ChildProcess;
  private hasExited = false;
  private readonly listeners = new Set<() => void>();

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      // A free admin port unless the test says otherwise: commands run side by side.
      env: { ...cleanEnv(), STOMPBUS_ADMIN_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => this.output('stdout', d));
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => this.output('stderr', d));
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.hasExited = true;
        this.wake();
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
    running.add(this);
  }

  /** Waits until stdout matches `pattern`; fails early if the process exits first. */
  waitForStdout(pattern: RegExp, timeoutMs = PROCESS_TIMEOUT_MS): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(this.stdout);
        if (match) done(() => resolve(match));
        else if (this.hasExited) done(() => reject(this.failure(`exited before ${pattern}`)));
      };
      const timer = setTimeout(
        () => done(() => reject(this.failure(`no ${pattern} within ${timeoutMs} ms`))),
        timeoutMs,
      );
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        settle();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Waits for the ready line (JSON: stdout is no terminal); returns the WebSocket port actually bound. */
  async ready(): Promise<number> {
    const match = await this.waitForStdout(/"ws":"ws:\/\/[^"]+:(\d+)\/stomp"/);
    return Number(match[1]);
  }

  /** Waits for the ready line's TCP URL; returns the TCP port. */
  async tcpReady(): Promise<number> {
    const match = await this.waitForStdout(/"tcp":"stomp:\/\/[^"]+:(\d+)"/);
    return Number(match[1]);
  }

  /** Waits for the process to exit on its own. */
  waitExit(timeoutMs = PROCESS_TIMEOUT_MS): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(this.failure(`did not exit within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    return Promise.race([this.exited, timeout]).finally(() => clearTimeout(timer));
  }

  /** Sends a signal to this child (by its PID), if it still runs. */
  signal(signal: NodeJS.Signals): void {
    if (!this.hasExited) this.child.kill(signal);
  }

  private output(stream: 'stdout' | 'stderr', data: string): void {
    this[stream] += data;
    this.wake();
  }

  private wake(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private failure(what: string): Error {
    return new Error(`stompbus ${what}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`);
  }
}

const running = new Set<Cli>();

/** The test's environment without any stompbus setting, so that only the test's own apply. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key.startsWith('STOMPBUS_') || key === 'KAFKA_BROKERS') delete env[key];
  }
  return env;
}

/** Runs the command to completion. */
function run(args: string[], env: Record<string, string> = {}): Promise<Exit> {
  return new Cli(args, env).waitExit();
}

/** Starts the command on loopback with a free WebSocket port and TCP off, unless `args` say otherwise. */
function serve(args: string[] = [], env: Record<string, string> = {}): Cli {
  return new Cli(['--host', '127.0.0.1', '--port', '0', '--tcp-port', '0', ...args], env);
}

/** A port held open on 127.0.0.1 for the test, so that stompbus finds it taken. */
async function occupyPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  held.add(server);
  return { port: (server.address() as AddressInfo).port, server };
}

/**
 * A port that was free a moment ago. `--tcp-port 0` turns TCP off, so the
 * command cannot be asked for "any free TCP port" the way `--port 0` can.
 */
async function freePort(): Promise<number> {
  const { port, server } = await occupyPort();
  held.delete(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const held = new Set<Server>();
const sockets = new Set<Socket>();

/** Polls `check` every 20 ms for up to 5 s. */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A CONNECT frame as raw bytes. */
function connectFrame(headers: Record<string, string>): string {
  const lines = Object.entries({ 'accept-version': '1.2', host: 'localhost', ...headers })
    .map(([k, v]) => `${k}:${v}\n`)
    .join('');
  return `CONNECT\n${lines}\n\0`;
}

/** Subscribes and waits for the RECEIPT that shows the broker has the subscription. */
function subscribed(client: Client, destination: string, inbox: Inbox): Promise<void> {
  const receipt = `sub-${Math.random().toString(36).slice(2)}`;
  const done = new Promise<void>((resolve) => client.watchForReceipt(receipt, () => resolve()));
  client.subscribe(destination, inbox.take, { receipt });
  return done;
}

let tmp: string;

beforeAll(() => {
  // bin/stompbus.js runs dist/, which spec/build-global-setup.ts compiled from the sources under test.
  tmp = mkdtempSync(join(tmpdir(), 'stompbus-cli-'));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

afterEach(async () => {
  const children = [...running];
  running.clear();
  for (const cli of children) cli.signal('SIGKILL');
  await Promise.all(children.map((cli) => cli.exited));
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  const servers = [...held];
  held.clear();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

describe('stompbus --help and --version', () => {
  it('lists every flag with its environment variable', async () => {
    const { code, stdout, stderr } = await run(['--help']);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    const lines = stdout.split('\n');
    for (const f of FLAGS) {
      const at = lines.findIndex((line) => line.startsWith(`  ${f.flag} <${f.arg}>`));
      expect(at, `${f.flag} is listed`).toBeGreaterThanOrEqual(0);
      expect(lines[at + 1]?.trim(), `${f.flag} names its variable`).toBe(`env ${f.env}`);
    }
    // And nothing that is not a flag: every option row is one of FLAGS, --help or --version.
    const listed = lines.flatMap((line) => /^ {2}(--[a-z-]+)/.exec(line)?.[1] ?? []);
    expect(listed).toEqual([...FLAGS.map((f) => f.flag), '--help', '--version']);
  });

  it('prints only flags and variables that docs/configuration.md documents', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    const page = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
    const flags = stdout.split('\n').flatMap((line) => /^ {2}(--[a-z-]+)/.exec(line)?.[1] ?? []);
    const envs = stdout.split('\n').flatMap((line) => /^ +env ([A-Z_]+)$/.exec(line)?.[1] ?? []);
    const commands = stdout
      .split('\n')
      .flatMap((line) => /^ {2}([a-z][a-z-]+) /.exec(line)?.[1] ?? []);
    expect(flags.length).toBeGreaterThan(40);
    expect(envs).toHaveLength(FLAGS.length);
    expect(commands).toEqual(['hash-passcode']);
    // Quoted as code, whole: `--max-connections` does not count for `--max-connections-per-ip`.
    const documented = (name: string) => new RegExp(`\`${name}(?![A-Za-z_-])`).test(page);
    expect([...flags, ...envs, ...commands].filter((name) => !documented(name))).toEqual([]);
  });

  it("prints package.json's version", async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    const { code, stdout, stderr } = await run(['--version']);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).toBe(`${pkg.version}\n`);
  });
});

describe('stompbus with bad arguments', () => {
  it('exits 2 with a one-line message for an unknown flag', async () => {
    const { code, stdout, stderr } = await run(['--no-such-flag']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toContain('--no-such-flag');
  });

  it('exits 2 with a one-line message for a number past its bounds', async () => {
    const { code, stdout, stderr } = await run(['--kafka-fetch-interval', '1001']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trimEnd()).toBe('stompbus: --kafka-fetch-interval takes at most 1000');
    const produce = await run(['--kafka-produce-interval', '1001']);
    expect(produce.code).toBe(2);
    expect(produce.stdout).toBe('');
    expect(produce.stderr.trimEnd()).toBe('stompbus: --kafka-produce-interval takes at most 1000');
  });

  it('exits 2 with a one-line message for a flag without its value', async () => {
    const { code, stderr } = await run(['--port']);
    expect(code).toBe(2);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toContain('--port');
  });

  it.each([
    ['--port', ['--tcp-port', '0']],
    ['--tcp-port', ['--port', '0']],
  ])('exits 1 with one line naming %s when that port is taken', async (flag, others) => {
    const { port } = await occupyPort();
    const { code, stdout, stderr } = await run([
      '--host',
      '127.0.0.1',
      ...others,
      flag,
      String(port),
    ]);
    expect(code).toBe(1);
    expect(stdout).not.toContain('ready');
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toContain(String(port));
    expect(stderr).toMatch(new RegExp(`${flag}\\b`));
    // The form a quick-start user types, with a port to try.
    const other = port + 10 <= 65535 ? port + 10 : port - 10;
    expect(stderr.trimEnd()).toBe(
      `stompbus: port ${port} is already in use; choose another with ${flag} (npm start -- ${flag} ${other})`,
    );
  });
});

describe('stompbus configuration from the environment', () => {
  it('takes the ports from STOMPBUS_PORT and STOMPBUS_TCP_PORT', async () => {
    const [wsPort, tcpPort] = [await freePort(), await freePort()];
    const cli = new Cli(['--host', '127.0.0.1'], {
      STOMPBUS_PORT: String(wsPort),
      STOMPBUS_TCP_PORT: String(tcpPort),
    });
    expect(await cli.ready()).toBe(wsPort);
    expect(await cli.tcpReady()).toBe(tcpPort);
  });

  it('reports a taken port from STOMPBUS_PORT under the flag that overrides it', async () => {
    const { port } = await occupyPort();
    const { code, stderr } = await run(['--host', '127.0.0.1', '--tcp-port', '0'], {
      STOMPBUS_PORT: String(port),
    });
    expect(code).toBe(1);
    expect(stderr).toContain(String(port));
    expect(stderr).toContain('--port');
  });

  it('takes the heart-beat floor from STOMPBUS_HEARTBEAT_MIN', async () => {
    const cli = serve([], { STOMPBUS_HEARTBEAT_MIN: '300' });
    const client = await RawClient.ws(`ws://127.0.0.1:${await cli.ready()}/stomp`);
    const connected = await client.connect({ 'heart-beat': '10,10' });
    expect(getHeader(connected, 'heart-beat')).toBe('300,300');
  });

  it('lets flags beat the environment', async () => {
    const { port } = await occupyPort();
    // Both variables name a taken port; the flags choose a free one and no TCP.
    const cli = serve(['--shutdown-timeout', '1000'], {
      STOMPBUS_PORT: String(port),
      STOMPBUS_TCP_PORT: String(port),
    });
    const wsPort = await cli.ready();
    expect(wsPort).not.toBe(port);
    const health = await fetch(`http://127.0.0.1:${wsPort}/healthz`, {
      signal: AbortSignal.timeout(5000),
    });
    expect(await health.json()).toMatchObject({ status: 'ok' });
    cli.signal('SIGTERM');
    const { code, stdout } = await cli.waitExit(SHUTDOWN_BOUND_MS);
    expect(code).toBe(0);
    expect(stdout).toMatch(/"event":"ready"/);
    expect(stdout).not.toContain('"tcp":');
  });
});

describe('npx stompbus serving WebSocket and TCP', () => {
  it('lets a stompjs client over WebSocket and one over TCP exchange messages', async () => {
    const cli = serve(['--tcp-port', String(await freePort())]);
    const wsPort = await cli.ready();
    const tcpPort = await cli.tcpReady();
    const ws = await stompClient(`ws://127.0.0.1:${wsPort}/stomp`);
    const tcp = await stompClient(tcpPort);
    const [wsInbox, tcpInbox] = [new Inbox(), new Inbox()];
    await subscribed(ws, '/topic/cli', wsInbox);
    await subscribed(tcp, '/topic/cli', tcpInbox);
    await publishWithReceipt(ws, { destination: '/topic/cli', body: 'from ws' });
    await publishWithReceipt(tcp, { destination: '/topic/cli', body: 'from tcp' });
    for (const inbox of [wsInbox, tcpInbox]) {
      const messages = await inbox.waitFor(2);
      expect(messages.map((m) => m.body)).toEqual(['from ws', 'from tcp']);
    }
  });

  it('drains on SIGTERM: /readyz 503 at once, STOMP_ERR_SHUTDOWN to every client, then exits 0', async () => {
    const cli = serve(
      ['--tcp-port', String(await freePort()), '--shutdown-timeout', '1000', '--drain-time', '600'],
      { STOMPBUS_DRAIN_DELAY: '500' },
    );
    const wsPort = await cli.ready();
    const tcpPort = await cli.tcpReady();
    const clients = [
      await RawClient.ws(`ws://127.0.0.1:${wsPort}/stomp`),
      await RawClient.tcp(tcpPort),
    ];
    for (const client of clients) await client.connect();
    const stompjs = await stompClient(`ws://127.0.0.1:${wsPort}/stomp`);
    const stompjsError = new Promise<string | undefined>((resolve) => {
      stompjs.onStompError = (frame) => resolve(frame.headers.message);
    });
    const signalled = Date.now();
    cli.signal('SIGTERM');
    await until(() => cli.stdout.includes('SIGTERM, draining'), 'the drain to start');
    const ready = await fetch(`http://127.0.0.1:${wsPort}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'draining' });
    for (const client of clients) {
      const error = await client.expectErrorAndClose();
      expect(getHeader(error, 'message')).toBe('STOMP_ERR_SHUTDOWN');
    }
    expect(await stompjsError).toBe('STOMP_ERR_SHUTDOWN');
    // Served through the 500 ms of STOMPBUS_DRAIN_DELAY first.
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(450);
    expect((await clients[0]?.closed)?.code).toBe(1001);
    const { code, signal, stdout, stderr } = await cli.waitExit(SHUTDOWN_BOUND_MS);
    expect({ code, signal, stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    expect(stdout).toContain('SIGTERM, draining 3 connection(s)');
    expect(stdout).toContain('over 600 ms after 500 ms');
  });

  it.each([
    ['SIGINT', []],
    ['SIGINT during a drain', ['SIGTERM']],
    ['a second SIGTERM', ['SIGTERM']],
  ] as const)('stops at once on %s, whatever the drain flags say', async (what, before) => {
    // The defaults: 2 s of drain delay, then 10 s of spread; none of it applies.
    const cli = serve(['--shutdown-timeout', '1000']);
    const wsPort = await cli.ready();
    const clients = [
      await RawClient.ws(`ws://127.0.0.1:${wsPort}/stomp`),
      await RawClient.ws(`ws://127.0.0.1:${wsPort}/stomp`),
    ];
    for (const client of clients) await client.connect();
    for (const signal of before) {
      cli.signal(signal);
      await until(() => cli.stdout.includes(`${signal}, draining`), 'the drain to start');
    }
    const signalled = Date.now();
    cli.signal(what === 'a second SIGTERM' ? 'SIGTERM' : 'SIGINT');
    for (const client of clients) {
      const error = await client.expectErrorAndClose();
      expect(getHeader(error, 'message')).toBe('STOMP_ERR_SHUTDOWN');
    }
    expect(Date.now() - signalled).toBeLessThan(1500);
    const { code, stdout } = await cli.waitExit(SHUTDOWN_BOUND_MS);
    expect(code).toBe(0);
    expect(stdout).toMatch(/SIG(INT|TERM), closing 2 connection\(s\)/);
  });

  it('cuts a TCP client that keeps its half of the connection open once the grace has passed', async () => {
    const cli = serve([
      '--tcp-port',
      String(await freePort()),
      '--shutdown-timeout',
      '200',
      '--drain-delay',
      '0',
    ]);
    await cli.ready();
    // allowHalfOpen: the client never answers the server's FIN with its own.
    const socket = connect({ port: await cli.tcpReady(), host: '127.0.0.1', allowHalfOpen: true });
    sockets.add(socket);
    let received = '';
    socket.setEncoding('utf8').on('data', (d: string) => {
      received += d;
    });
    socket.write(connectFrame({}));
    await until(() => received.startsWith('CONNECTED\n'), 'CONNECTED');
    cli.signal('SIGTERM');
    // The session's own close timeout is 5 s: exiting well before it shows the grace was applied.
    const { code } = await cli.waitExit(3000);
    expect(code).toBe(0);
    expect(received).toContain('ERROR\nmessage:STOMP_ERR_SHUTDOWN\n');
  });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'exits 0 on %s sent as soon as the ready line appears',
    async (signal) => {
      // A supervisor may stop the broker the moment it reports ready. One start
      // can win the race by luck, so three run side by side.
      const exits = [serve(), serve(), serve()].map(async (cli) => {
        await cli.ready();
        cli.signal(signal);
        const { code, signal: killedBy } = await cli.waitExit(SHUTDOWN_BOUND_MS);
        return { code, killedBy };
      });
      for (const exit of await Promise.all(exits))
        expect(exit).toEqual({ code: 0, killedBy: null });
    },
  );
});

describe('stompbus with users', () => {
  it('rejects a wrong passcode for a --user with STOMP_ERR_AUTH_FAILED', async () => {
    const cli = serve(['--user', 'alice:secret']);
    const url = `ws://127.0.0.1:${await cli.ready()}/stomp`;

    const wrong = await RawClient.ws(url);
    wrong.send(connectFrame({ login: 'alice', passcode: 'guess' }));
    expect(getHeader(await wrong.expectErrorAndClose(), 'message')).toBe('STOMP_ERR_AUTH_FAILED');

    const anonymous = await RawClient.ws(url);
    anonymous.send(connectFrame({}));
    expect(getHeader(await anonymous.expectErrorAndClose(), 'message')).toBe(
      'STOMP_ERR_AUTH_FAILED',
    );

    const right = await RawClient.ws(url);
    const connected = await right.connect({ login: 'alice', passcode: 'secret' });
    expect(getHeader(connected, 'user-name')).toBe('alice');
  });

  it('reads logins from --users-file, skipping comments and blank lines', async () => {
    const file = join(tmp, 'users');
    writeFileSync(file, '# stompbus users\n\nbob:hunter2\r\n  carol:pass:with:colons  \n');
    const cli = serve(['--users-file', file]);
    const url = `ws://127.0.0.1:${await cli.ready()}/stomp`;

    for (const [login, passcode] of [
      ['bob', 'hunter2'],
      ['carol', 'pass:with:colons'],
    ] as const) {
      const client = await RawClient.ws(url);
      expect(getHeader(await client.connect({ login, passcode }), 'user-name')).toBe(login);
    }
    const wrong = await RawClient.ws(url);
    wrong.send(connectFrame({ login: 'bob', passcode: 'hunter3' }));
    expect(getHeader(await wrong.expectErrorAndClose(), 'message')).toBe('STOMP_ERR_AUTH_FAILED');
  });

  it('replaces the users of STOMPBUS_USERS with those of --user', async () => {
    const cli = serve(['--user', 'alice:secret'], { STOMPBUS_USERS: 'eve:x,mallory:y' });
    const url = `ws://127.0.0.1:${await cli.ready()}/stomp`;
    const eve = await RawClient.ws(url);
    eve.send(connectFrame({ login: 'eve', passcode: 'x' }));
    expect(getHeader(await eve.expectErrorAndClose(), 'message')).toBe('STOMP_ERR_AUTH_FAILED');
    const alice = await RawClient.ws(url);
    expect(
      getHeader(await alice.connect({ login: 'alice', passcode: 'secret' }), 'user-name'),
    ).toBe('alice');
  });

  it('exits 2 with one line naming a --users-file that does not exist', async () => {
    const missing = join(tmp, 'no-such-users');
    const { code, stderr } = await run(['--users-file', missing]);
    expect(code).toBe(2);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toContain(missing);
  });
});
