import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { getHeader } from '../../src/frame/index.js';
import type { StompServer } from '../../src/server.js';
import { createBroker } from '../../src/stomp-broker.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer } from '../helpers/server.js';

/**
 * The admin port (docs/operations.md): Prometheus metrics scraped over HTTP
 * after known traffic, the bearer token, the loopback default, and the
 * connection registry that moved there.
 */

/** The admin URL of a started server. */
function adminUrl(server: StompServer): string {
  const url = server.admin?.url;
  if (!url) throw new Error('no admin port');
  return url;
}

/** Scrapes /metrics and parses the sample lines: `name{labels}` to value. */
async function scrape(server: StompServer, token?: string): Promise<Map<string, number>> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const response = await fetch(`${adminUrl(server)}/metrics`, { headers });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** Polls until `check` holds (the server counts a close a moment after the client sees it). */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('GET /metrics on the admin port', () => {
  it('counts frames by command, deliveries, errors by code, bytes and connections by transport', async () => {
    const server = await startServer();
    const subscriber = await RawClient.ws(server.url);
    await subscriber.connect();
    subscriber.send('SUBSCRIBE\nid:s\ndestination:/topic/m\nreceipt:sub\n\n\0');
    await subscriber.receipt('sub');
    const publisher = await RawClient.tcp(server.tcpPort as number);
    await publisher.connect();
    for (let i = 0; i < 3; i++) {
      const receipt = i === 2 ? 'receipt:sent\n' : '';
      publisher.send(`SEND\ndestination:/topic/m\n${receipt}\nm${i}\0`);
    }
    await publisher.receipt('sent');
    await subscriber.messages(3);
    const wrong = await RawClient.ws(server.url);
    await wrong.connect();
    wrong.send('SUBSCRIBE\nid:x\ndestination:/nowhere\n\n\0');
    const error = await wrong.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_INVALID_DESTINATION');
    await until(async () => server.sessions.size === 2, 'the failed session is gone');

    const m = await scrape(server);
    expect(m.get('stompbus_frames_received_total{command="CONNECT"}')).toBe(3);
    expect(m.get('stompbus_frames_received_total{command="SUBSCRIBE"}')).toBe(2);
    expect(m.get('stompbus_frames_received_total{command="SEND"}')).toBe(3);
    expect(m.get('stompbus_frames_received_total{command="ACK"}')).toBe(0);
    expect(m.get('stompbus_frames_sent_total{command="CONNECTED"}')).toBe(3);
    expect(m.get('stompbus_frames_sent_total{command="MESSAGE"}')).toBe(3);
    expect(m.get('stompbus_frames_sent_total{command="RECEIPT"}')).toBe(2);
    expect(m.get('stompbus_frames_sent_total{command="ERROR"}')).toBe(1);
    expect(m.get('stompbus_messages_delivered_total')).toBe(3);
    expect(m.get('stompbus_errors_total{code="STOMP_ERR_INVALID_DESTINATION"}')).toBe(1);
    expect(m.get('stompbus_slow_consumer_disconnects_total')).toBe(0);
    expect(m.get('stompbus_received_bytes_total')).toBeGreaterThan(0);
    expect(m.get('stompbus_sent_bytes_total')).toBeGreaterThan(0);
    expect(m.get('stompbus_connections{transport="websocket"}')).toBe(1);
    expect(m.get('stompbus_connections{transport="tcp"}')).toBe(1);
    expect(m.get('stompbus_connections_accepted_total{transport="websocket"}')).toBe(2);
    expect(m.get('stompbus_connections_accepted_total{transport="tcp"}')).toBe(1);
    expect(m.get('stompbus_sessions')).toBe(2);
    expect(m.get('stompbus_subscriptions')).toBe(1);
    expect(m.get('stompbus_destinations')).toBe(1);
    // Kept for resumes: the three messages of /topic/m.
    expect(m.get('stompbus_history_messages')).toBe(3);
    // prom-client's default process metrics come along.
    expect(m.get('nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(m.has('nodejs_heap_size_used_bytes')).toBe(true);
    // No Kafka metric without Kafka.
    expect([...m.keys()].some((k) => k.startsWith('stompbus_kafka_'))).toBe(false);
    subscriber.end();
    publisher.end();
  });

  it('shows queue depth (in total, and for the deepest queues by name), dead letters and mailboxes', async () => {
    const server = await startServer({ maxDeliveries: 1, users: new Map([['ann', 'pw']]) });
    const client = await RawClient.ws(server.url);
    await client.connect({ login: 'ann', passcode: 'pw' });
    for (let i = 0; i < 4; i++) client.send(`SEND\ndestination:/queue/deep\n\nd${i}\0`);
    client.send('SEND\ndestination:/queue/shallow\n\ns\0');
    client.send('SEND\ndestination:/user/ann/queue/inbox\nreceipt:r\n\nfor ann\0');
    await client.receipt('r');
    // One NACK past maxDeliveries moves the message to /queue/DLQ.
    client.send('SUBSCRIBE\nid:q\ndestination:/queue/shallow\nack:client-individual\n\n\0');
    const [message] = await client.messages(1, 'q');
    client.send(`NACK\nid:${getHeader(message as never, 'ack')}\nreceipt:n\n\n\0`);
    await client.receipt('n');

    const m = await scrape(server);
    expect(m.get('stompbus_queue_depth{queue="/queue/deep"}')).toBe(4);
    expect(m.get('stompbus_queue_depth{queue="/queue/DLQ"}')).toBe(1);
    expect(m.has('stompbus_queue_depth{queue="/queue/shallow"}')).toBe(false);
    expect(m.get('stompbus_queued_messages')).toBe(5);
    expect(m.get('stompbus_dead_letters_total')).toBe(1);
    expect(m.get('stompbus_mailbox_messages')).toBe(1);
    expect(m.get('stompbus_frames_received_total{command="NACK"}')).toBe(1);
    client.end();
  });

  it('counts slow-consumer disconnects, which the console lists', async () => {
    const server = await startServer({ maxPendingAcks: 2 });
    const client = await RawClient.tcp(server.tcpPort as number);
    await client.connect({ login: 'slowpoke' });
    client.send('SUBSCRIBE\nid:1\ndestination:/topic/p\nack:client\n\n\0');
    for (let i = 0; i < 3; i++) client.send(`SEND\ndestination:/topic/p\n\n${i}\0`);
    const error = await client.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_SLOW_CONSUMER');
    const m = await scrape(server);
    expect(m.get('stompbus_slow_consumer_disconnects_total')).toBe(1);
    expect(m.get('stompbus_errors_total{code="STOMP_ERR_SLOW_CONSUMER"}')).toBe(1);
    const snapshot = (await (await fetch(`${adminUrl(server)}/console/snapshot`)).json()) as {
      totals: { slowConsumers: number };
      slowConsumers: Array<{ user: string; transport: string }>;
    };
    expect(snapshot.totals.slowConsumers).toBe(1);
    expect(snapshot.slowConsumers).toEqual([
      expect.objectContaining({ user: 'slowpoke', transport: 'tcp' }),
    ]);
  });

  it('gives each broker a registry of its own (two in one process do not collide)', async () => {
    const a = createBroker();
    const b = createBroker();
    try {
      await a.publish('/queue/a', 'x');
      expect(a.metrics).not.toBe(b.metrics);
      const textA = await a.metrics.metrics();
      const textB = await b.metrics.metrics();
      expect(textA).toMatch(/^stompbus_queued_messages 1$/m);
      expect(textB).toMatch(/^stompbus_queued_messages 0$/m);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('the admin port', () => {
  it('listens on loopback by default, apart from the main port', async () => {
    const server = await startServer({ host: '0.0.0.0' });
    expect(server.options.adminHost).toBe('127.0.0.1');
    expect(server.admin?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.admin?.port).not.toBe(server.port);
    // The main port no longer answers the registry: it is an admin endpoint.
    const main = await fetch(`http://127.0.0.1:${server.port}/users/bob`);
    expect(main.status).toBe(426);
    const admin = await fetch(`${adminUrl(server)}/users/bob`);
    expect(admin.status).toBe(200);
  });

  it('answers 401 without the token, 200 with it', async () => {
    const server = await startServer({ adminToken: 's3cret' });
    const base = adminUrl(server);
    for (const path of ['/metrics', '/users/bob', '/console/events', '/console/snapshot']) {
      const none = await fetch(`${base}${path}`);
      expect(none.status, path).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const wrong = await fetch(`${base}${path}`, { headers: { authorization: 'Bearer s3cre' } });
      expect(wrong.status, path).toBe(401);
    }
    expect((await scrape(server, 's3cret')).get('stompbus_sessions')).toBe(0);
    const user = await fetch(`${base}/users/bob`, { headers: { authorization: 'Bearer s3cret' } });
    expect(await user.json()).toEqual({ user: 'bob', online: false, instances: [], waiting: 0 });
    // The console's page holds no data and loads without it; its data needs the cookie.
    expect((await fetch(`${base}/console`)).status).toBe(200);
    const refused = await fetch(`${base}/console/login`, {
      method: 'POST',
      headers: { authorization: 'Bearer nope' },
    });
    expect(refused.status).toBe(401);
    const login = await fetch(`${base}/console/login`, {
      method: 'POST',
      headers: { authorization: 'Bearer s3cret' },
    });
    expect(login.status).toBe(204);
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] as string;
    expect(cookie).toMatch(/^stompbus_admin=/);
    expect(login.headers.get('set-cookie')).toMatch(/HttpOnly/);
    expect(cookie).not.toContain('s3cret');
    const snapshot = await fetch(`${base}/console/snapshot`, { headers: { cookie } });
    expect(snapshot.status).toBe(200);
    expect(((await snapshot.json()) as { mode: string }).mode).toBe('embedded');
  });

  it('can be turned off', async () => {
    const server = await startServer({ adminPort: null });
    expect(server.admin?.listening).toBe(false);
    expect(server.admin?.url).toBeUndefined();
  });
});

const BIN = fileURLToPath(new URL('../../bin/stompbus.js', import.meta.url));

/** Runs the command until its ready lines are out, then stops it; returns what it printed. */
async function readyLines(
  args: string[],
  env: Record<string, string>,
  then: (ready: Record<string, unknown>) => Promise<void>,
) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith('STOMPBUS_') && k !== 'KAFKA_BROKERS',
    ),
  );
  const child = spawn(
    process.execPath,
    [BIN, '--host', '127.0.0.1', '--port', '0', '--tcp-port', '0', ...args],
    {
      env: { ...clean, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const deadline = Date.now() + 20_000;
    // On a pipe the command writes JSON lines; the ready line names the URLs.
    let ready: Record<string, unknown> | undefined;
    while (!ready) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`not ready: ${out}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
      if (line) ready = JSON.parse(line) as Record<string, unknown>;
    }
    await then(ready);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

describe('the admin flags of the stompbus command', () => {
  it('--admin-port 0 and --admin-token: the ready line names the admin URL, which wants the token', async () => {
    await readyLines(['--admin-port', '0', '--admin-token', 'flag-token'], {}, async (ready) => {
      const url = /^(http:\/\/127\.0\.0\.1:\d+)\/console$/.exec(String(ready.admin))?.[1];
      expect(url, JSON.stringify(ready)).toBeDefined();
      expect((await fetch(`${url}/metrics`)).status).toBe(401);
      const ok = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer flag-token' } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toMatch(/^stompbus_sessions 0$/m);
    });
  }, 40_000);

  it('STOMPBUS_ADMIN_PORT=off turns the admin port off', async () => {
    await readyLines([], { STOMPBUS_ADMIN_PORT: 'off' }, async (ready) => {
      expect(ready.ws).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/stomp$/);
      expect(ready).not.toHaveProperty('admin');
    });
  }, 40_000);
});
