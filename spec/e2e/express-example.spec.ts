import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client, IMessage } from '@stomp/stompjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Inbox, stompClient } from '../helpers/stomp-client.js';

/**
 * examples/express/server.mjs is documentation that runs: an Express 5 app
 * embedding the broker on one port (page, REST API, STOMP over WebSocket).
 * Each test starts it as a child process, as a reader would, and talks to it
 * over real sockets on 127.0.0.1.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVER = join(ROOT, 'examples/express/server.mjs');
/** Longest the example may take to print its line, or to exit after a signal. */
const PROCESS_TIMEOUT_MS = 10_000;

/** How the example ended. */
interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The example running as a child process, on a free port. */
class Example {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  private readonly child: ChildProcess;

  constructor() {
    const env = { ...process.env };
    delete env.PORT; // --port 0 decides, whatever the shell has
    this.child = spawn(process.execPath, [SERVER, '--port', '0'], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
    });
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) =>
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr }),
      );
    });
    running.add(this);
  }

  /** Waits for the line the example prints once listening; returns its base URL. */
  async listening(): Promise<string> {
    const pattern = /express example listening on (http:\/\/127\.0\.0\.1:\d+)\n/;
    const deadline = Date.now() + PROCESS_TIMEOUT_MS;
    let exited = false;
    void this.exited.then(() => {
      exited = true;
    });
    for (;;) {
      const match = pattern.exec(this.stdout);
      if (match) return match[1] as string;
      if (exited || Date.now() > deadline) {
        throw new Error(
          `the example did not start\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Sends `signal` to the child by its PID (a no-op once it has exited). */
  kill(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

const running = new Set<Example>();

/** Starts the example and waits until it listens. */
async function startExample(): Promise<{ example: Example; base: string; stomp: string }> {
  const example = new Example();
  const base = await example.listening();
  return { example, base, stomp: `${base.replace(/^http/, 'ws')}/stomp` };
}

/** POSTs JSON (or a raw string, sent as is) to the example. */
function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
}

/** Subscribes and waits for the RECEIPT: only then can a publish be expected to reach it. */
function subscribed(client: Client, destination: string, inbox: Inbox): Promise<void> {
  const receipt = `sub-${Math.random().toString(36).slice(2)}`;
  const done = new Promise<void>((resolve) => client.watchForReceipt(receipt, () => resolve()));
  client.subscribe(destination, inbox.take, { receipt });
  return done;
}

const bodies = (messages: IMessage[]) => messages.map((m) => m.body);

beforeAll(() => {
  // The example imports 'stompbus', i.e. dist/: the global setup builds it,
  // but a run without that setup (another config, an IDE) must not test a stale or missing one.
  if (!existsSync(join(ROOT, 'dist/index.js'))) {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'pipe' });
  }
});

afterEach(async () => {
  const examples = [...running];
  running.clear();
  for (const example of examples) example.kill('SIGKILL');
  await Promise.all(examples.map((example) => example.exited));
});

describe('the Express example (examples/express/server.mjs)', () => {
  it('delivers a POST to /api/announcements to a stompjs client subscribed over /stomp on the same port', async () => {
    const { base, stomp } = await startExample();
    const client = await stompClient(stomp);
    const inbox = new Inbox();
    await subscribed(client, '/topic/announcements', inbox);

    const response = await post(`${base}/api/announcements`, { text: 'deploy at 5pm' });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ published: true });

    const [message] = await inbox.waitFor(1);
    expect(message?.body).toBe('deploy at 5pm');
    expect(message?.headers.destination).toBe('/topic/announcements');
    expect(message?.headers['content-type']).toBe('text/plain');
  });

  it('answers 400 to a missing, blank or malformed text and publishes nothing', async () => {
    const { base, stomp } = await startExample();
    const client = await stompClient(stomp);
    const inbox = new Inbox();
    await subscribed(client, '/topic/announcements', inbox);

    for (const body of [{}, { text: '' }, { text: '   \n' }, { text: 42 }, '{"text":']) {
      const response = await post(`${base}/api/announcements`, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
    }
    // One publisher, one topic: had any of those been published, it would arrive before this.
    expect((await post(`${base}/api/announcements`, { text: 'marker' })).status).toBe(202);
    await inbox.waitFor(1);
    expect(bodies(inbox.messages)).toEqual(['marker']);
  });

  it('sends POST /api/users/:name/notify to that user only', async () => {
    const { base, stomp } = await startExample();
    const [alice, bob] = [
      await stompClient(stomp, { connectHeaders: { login: 'alice' } }),
      await stompClient(stomp, { connectHeaders: { login: 'bob' } }),
    ];
    const [aliceInbox, bobInbox] = [new Inbox(), new Inbox()];
    await subscribed(alice, '/user/queue/notifications', aliceInbox);
    await subscribed(bob, '/user/queue/notifications', bobInbox);

    const response = await post(`${base}/api/users/alice/notify`, { text: 'for alice' });
    expect(response.status).toBe(202);
    expect(bodies(await aliceInbox.waitFor(1))).toEqual(['for alice']);
    // Bob's own notification comes after anything sent before it.
    await post(`${base}/api/users/bob/notify`, { text: 'for bob' });
    expect(bodies(await bobInbox.waitFor(1))).toEqual(['for bob']);
    expect(bodies(aliceInbox.messages)).toEqual(['for alice']);

    // A name that would make another destination is the client's error, not the server's.
    const bad = await post(`${base}/api/users/a%2Fb/notify`, { text: 'x' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'STOMP_ERR_INVALID_DESTINATION' });
  });

  it('serves the page and the stompjs browser bundle from the same port', async () => {
    const { base } = await startExample();
    const page = await fetch(`${base}/`, { signal: AbortSignal.timeout(5000) });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('<script src="vendor/stomp.umd.min.js"');
    expect(html).toContain('<script src="app.js"');

    for (const [path, text] of [
      ['/app.js', "'/topic/announcements'"],
      ['/vendor/stomp.umd.min.js', 'StompJs'],
    ] as const) {
      const response = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(5000) });
      expect(response.status, path).toBe(200);
      expect(response.headers.get('content-type'), path).toMatch(/javascript/);
      expect(await response.text(), path).toContain(text);
    }
  });

  it("leaves the app's other routes to Express: an unknown path gets Express's own 404", async () => {
    const { base } = await startExample();
    for (const method of ['GET', 'POST']) {
      const response = await fetch(`${base}/api/unknown`, {
        method,
        signal: AbortSignal.timeout(5000),
      });
      expect(response.status, method).toBe(404);
      expect(await response.text(), method).toContain(`Cannot ${method} /api/unknown`);
    }
    // A plain GET of the endpoint's path is no upgrade either: Express answers it.
    const stompPath = await fetch(`${base}/stomp`, { signal: AbortSignal.timeout(5000) });
    expect(stompPath.status).toBe(404);
  });

  it('leaves a WebSocket upgrade to another path to the app, which refuses it with 404', async () => {
    const { stomp } = await startExample();
    // Offering STOMP's own sub-protocol: only the path tells the broker off.
    const status = (url: string) =>
      new Promise<number | string>((resolve) => {
        const ws = new WebSocket(url, ['v12.stomp'], { handshakeTimeout: 5000 });
        ws.on('open', () => {
          resolve(`open (${ws.protocol})`);
          ws.terminate();
        });
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          res.destroy();
        });
        ws.on('error', (error) => resolve(error.message));
      });
    // 404 is the example's own answer: the broker neither took the upgrade nor refused it.
    expect(await status(stomp.replace(/\/stomp$/, '/other'))).toBe(404);
    expect(await status(stomp.replace(/\/stomp$/, '/stomp/other'))).toBe(404);
    expect(await status(stomp)).toBe('open (v12.stomp)');
    expect(await status(`${stomp}?token=abc`)).toBe('open (v12.stomp)');
  });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'on %s sends every STOMP client STOMP_ERR_SHUTDOWN, then exits 0',
    async (signal) => {
      const { example, stomp } = await startExample();
      const client = await stompClient(stomp);
      const error = new Promise<string | undefined>((resolve) => {
        client.onStompError = (frame) => resolve(frame.headers.message);
      });
      example.kill(signal);
      expect(await error).toBe('STOMP_ERR_SHUTDOWN');
      let timer: NodeJS.Timeout | undefined;
      const exit = await Promise.race([
        example.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('did not exit')), PROCESS_TIMEOUT_MS);
        }),
      ]).finally(() => clearTimeout(timer));
      expect({ code: exit.code, signal: exit.signal, stderr: exit.stderr }).toEqual({
        code: 0,
        signal: null,
        stderr: '',
      });
    },
  );
});
