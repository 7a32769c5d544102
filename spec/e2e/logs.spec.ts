/**
 * The command's log lines (docs/operations.md "Logs"): `bin/stompbus.js` as a
 * child process with its stdout piped (so JSON lines unless asked otherwise),
 * real clients over TCP and WebSocket, and in cluster mode a Kafka that is
 * not there and then the run's real one.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { getHeader } from '../../src/frame/index.js';
import { deleteTopicsAfterTest, kafkaBrokers, skipKafka, uniqueName } from '../helpers/cluster.js';
import { RawClient } from '../helpers/raw-client.js';
import { stompClient } from '../helpers/stomp-client.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/stompbus.js');
/** Longest a child may take to start, to write a line, or to exit after SIGTERM. */
const TIMEOUT_MS = 15_000;

/** A parsed JSON log line. */
type Line = Record<string, unknown>;

/** `stompbus` as a child process; its stdout and stderr kept. */
class Broker {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(args: string[], env: Record<string, string> = {}) {
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) => !k.startsWith('STOMPBUS_') && k !== 'KAFKA_BROKERS',
      ),
    );
    this.child = spawn(process.execPath, [BIN, '--host', '127.0.0.1', ...args], {
      cwd: ROOT,
      // A free admin port: its default (61615) may be another spec's broker's.
      env: { ...clean, STOMPBUS_ADMIN_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
    });
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) => this.child.on('close', (code) => resolve(code)));
    brokers.add(this);
  }

  /** The complete lines of stdout so far. */
  get rawLines(): string[] {
    return this.stdout.split('\n').slice(0, -1);
  }

  /** Every stdout line, parsed: each must be one JSON object. */
  get lines(): Line[] {
    return this.rawLines.map((line) => JSON.parse(line) as Line);
  }

  /** Waits for a line `match` accepts (polling); resolves with it. */
  async line(match: (line: Line) => boolean, timeoutMs = TIMEOUT_MS): Promise<Line> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(match);
      if (found) return found;
      if (Date.now() > deadline) {
        throw new Error(
          `no such line in ${timeoutMs} ms\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
        );
      }
      await sleep(20);
    }
  }

  /** Waits until stdout matches `pattern`. */
  async text(pattern: RegExp, timeoutMs = TIMEOUT_MS): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.stdout);
      if (match) return match;
      if (Date.now() > deadline) {
        throw new Error(
          `no ${pattern} in ${timeoutMs} ms\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
        );
      }
      await sleep(20);
    }
  }

  /** SIGTERM (by PID), then the exit code. */
  async stop(): Promise<number | null> {
    this.child.kill('SIGTERM');
    return this.exited;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

const brokers = new Set<Broker>();

afterEach(async () => {
  const all = [...brokers];
  brokers.clear();
  for (const broker of all) broker.kill();
  await Promise.all(all.map((b) => b.exited));
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A port that was free a moment ago (`--tcp-port 0` turns TCP off). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Waits until /healthz answers: the broker serves, whatever its log level. */
async function healthy(port: number): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  while (Date.now() < deadline) {
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`no /healthz on ${port}`);
}

/**
 * The traffic each test logs: alice connects with stompjs over WebSocket and
 * disconnects (DISCONNECT); a raw TCP client SUBSCRIBEs to a destination that
 * does not exist and is refused. Returns the refused client's session id (the
 * CONNECTED frame's `session` header).
 */
async function traffic(wsPort: number, tcpPort: number): Promise<string> {
  const alice = await stompClient(`ws://127.0.0.1:${wsPort}/stomp`, {
    connectHeaders: { login: 'alice', passcode: 'x' },
  });
  await alice.deactivate();
  const refused = await RawClient.tcp(tcpPort);
  const session = getHeader(await refused.connect(), 'session') as string;
  refused.send('SUBSCRIBE\nid:1\ndestination:/nowhere\n\n\0');
  expect(getHeader(await refused.expectErrorAndClose(), 'message')).toBe(
    'STOMP_ERR_INVALID_DESTINATION',
  );
  return session;
}

/** Starts the command on free ports with `args`; resolves once it serves. */
async function serve(args: string[], env: Record<string, string> = {}) {
  const [wsPort, tcpPort] = [await freePort(), await freePort()];
  const broker = new Broker(
    ['--port', String(wsPort), '--tcp-port', String(tcpPort), ...args],
    env,
  );
  await healthy(wsPort);
  return { broker, wsPort, tcpPort };
}

describe('stompbus --log-level info (JSON lines on a pipe)', () => {
  it('writes one line per connection open and close, and a warn line per refused frame', async () => {
    const { broker, wsPort, tcpPort } = await serve(['--log-level', 'info']);
    const ready = await broker.line((l) => l.event === 'ready');
    expect(ready).toMatchObject({
      level: 'info',
      mode: 'embedded',
      ws: `ws://127.0.0.1:${wsPort}/stomp`,
      tcp: `stomp://127.0.0.1:${tcpPort}`,
      pid: expect.any(Number),
      hostname: expect.any(String),
    });
    expect(new Date(ready.time as string).toISOString()).toBe(ready.time);

    const session = await traffic(wsPort, tcpPort);

    // alice: open, then closed by her DISCONNECT.
    const open = await broker.line((l) => l.event === 'connection.open' && l.user === 'alice');
    expect(open).toMatchObject({
      level: 'info',
      msg: 'connection open',
      transport: 'ws',
      sessionId: expect.any(String),
      remoteAddress: expect.stringContaining('127.0.0.1'),
    });
    const closed = await broker.line(
      (l) => l.event === 'connection.close' && l.sessionId === open.sessionId,
    );
    expect(closed).toMatchObject({
      level: 'info',
      msg: 'connection closed',
      user: 'alice',
      transport: 'ws',
      reason: 'disconnect',
      durationMs: expect.any(Number),
    });
    expect(closed.code).toBeUndefined();

    // The refused client: a warn line with the code, the command and the destination,
    // then its close line with the same code.
    const refused = await broker.line((l) => l.event === 'frame.refused');
    expect(refused).toMatchObject({
      level: 'warn',
      msg: 'frame refused',
      sessionId: session,
      transport: 'tcp',
      code: 'STOMP_ERR_INVALID_DESTINATION',
      command: 'SUBSCRIBE',
      destination: '/nowhere',
    });
    expect(
      await broker.line((l) => l.event === 'connection.close' && l.sessionId === session),
    ).toMatchObject({ reason: 'error', code: 'STOMP_ERR_INVALID_DESTINATION' });

    // Shutdown and its end, then nothing but JSON was written.
    expect(await broker.stop()).toBe(0);
    expect(broker.lines.map((l) => l.event)).toEqual([
      'ready',
      'connection.open',
      'connection.close',
      'connection.open',
      'frame.refused',
      'connection.close',
      'shutdown',
      'stopped',
    ]);
    expect(broker.stderr).toBe('');
  });
});

describe('stompbus --log-level warn', () => {
  it('hides the info lines (STOMPBUS_LOG_LEVEL), and the flag beats the variable', async () => {
    const quiet = await serve([], { STOMPBUS_LOG_LEVEL: 'warn' });
    await traffic(quiet.wsPort, quiet.tcpPort);
    await quiet.broker.line((l) => l.event === 'frame.refused');
    expect(await quiet.broker.stop()).toBe(0);
    expect(quiet.broker.lines.map((l) => [l.level, l.event])).toEqual([['warn', 'frame.refused']]);

    const loud = await serve(['--log-level', 'info'], { STOMPBUS_LOG_LEVEL: 'warn' });
    await loud.broker.line((l) => l.event === 'ready');
  });

  it('refuses a level it does not know, naming the flag', async () => {
    const broker = new Broker(['--log-level', 'verbose']);
    expect(await broker.exited).toBe(2);
    expect(broker.stderr).toContain(
      '--log-level needs one of trace, debug, info, warn, error, fatal, silent',
    );
  });
});

describe('stompbus --log-format pretty', () => {
  it('writes readable lines, even on a pipe, without colours', async () => {
    const [wsPort, tcpPort] = [await freePort(), await freePort()];
    const broker = new Broker([
      '--port',
      String(wsPort),
      '--tcp-port',
      String(tcpPort),
      '--log-format',
      'pretty',
    ]);
    await broker.text(/ready/);
    await traffic(wsPort, tcpPort);
    await broker.text(/WARN {2}frame refused/);
    expect(await broker.stop()).toBe(0);
    const time = '\\d{2}:\\d{2}:\\d{2}\\.\\d{3}';
    // The ready line, with the URLs below it as the command always printed them.
    expect(broker.rawLines.slice(0, 4)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^${time} INFO {2}stompbus \\S+ ready \\(embedded broker\\) version=\\S+ mode=embedded$`,
        ),
      ),
      `  ws://127.0.0.1:${wsPort}/stomp   STOMP over WebSocket`,
      `  stomp://127.0.0.1:${tcpPort}   STOMP over TCP`,
      expect.stringMatching(
        /^ {2}http:\/\/127\.0\.0\.1:\d+\/console {3}admin: the console, \/metrics$/,
      ),
    ]);
    expect(broker.stdout).toMatch(
      new RegExp(
        `^${time} INFO {2}connection open sessionId=\\S+ remoteAddress=\\S+ transport=ws user=alice$`,
        'm',
      ),
    );
    expect(broker.stdout).toMatch(
      new RegExp(
        `^${time} WARN {2}frame refused .*code=STOMP_ERR_INVALID_DESTINATION command=SUBSCRIBE destination=/nowhere detail="`,
        'm',
      ),
    );
    expect(broker.stdout).toMatch(/ reason=disconnect$/m);
    expect(broker.rawLines.at(-1)).toMatch(/ INFO {2}stopped durationMs=\d+$/);
    for (const line of broker.rawLines.slice(4)) {
      expect(line).toMatch(new RegExp(`^${time} (INFO|WARN) `));
    }
    expect(broker.stdout).not.toContain('\u001b[');
  });
});

describe.skipIf(skipKafka)('stompbus in cluster mode', () => {
  it('logs Kafka unreachable at start, with kafkajs lines through the same logger at debug', async () => {
    const closed = await freePort();
    const { broker } = await serve([
      '--kafka-brokers',
      `127.0.0.1:${closed}`,
      '--log-level',
      'debug',
    ]);
    const unreachable = await broker.line(
      (l) => l.component === 'kafka' && l.kafka === 'unreachable',
    );
    expect(unreachable).toMatchObject({
      level: 'warn',
      error: expect.stringContaining('ECONNREFUSED'),
    });
    // kafkajs' own errors are the detail behind it: debug lines of their own component.
    expect(
      await broker.line((l) => l.component === 'kafkajs' && l.kafkajsLevel === 'error'),
    ).toMatchObject({ level: 'debug', namespace: expect.any(String) });
    expect(await broker.stop()).toBe(0);
    expect(broker.lines.at(-1)).toMatchObject({ event: 'stopped' });
  });

  it('logs the connection to the real Kafka once made', async () => {
    const topic = uniqueName('stompbus-spec-logs');
    deleteTopicsAfterTest([topic, `${topic}.users`, `${topic}.presence`, `${topic}.queues`]);
    const { broker } = await serve(['--kafka-brokers', kafkaBrokers, '--kafka-topic', topic]);
    const connected = await broker.line((l) => l.kafka === 'connected', 30_000);
    expect(connected).toMatchObject({
      level: 'info',
      component: 'kafka',
      brokers: kafkaBrokers,
      durationMs: expect.any(Number),
      topics: [topic, `${topic}.users`, `${topic}.presence`, `${topic}.queues`],
    });
    expect(await broker.line((l) => l.event === 'ready')).toMatchObject({ mode: 'cluster' });
    expect(await broker.stop()).toBe(0);
    expect(broker.lines.some((l) => l.kafka === 'stopped')).toBe(true);
    // At info, kafkajs' own lines (routine retries on a fresh topic, group joins) stay out.
    expect(broker.lines.filter((l) => l.component === 'kafkajs')).toEqual([]);
  });
});
