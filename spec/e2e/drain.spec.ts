/**
 * Readiness (`/readyz`) and graceful drain (`StompServer.drain()`, the
 * broker's `close({ spreadMs })`) over real sockets; the command's signals
 * are in cli.spec.ts, a rolling restart behind HAProxy in haproxy.spec.ts.
 */
import { connect as netConnect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { getHeader } from '../../src/frame/index.js';
import type { StompServer } from '../../src/server.js';
import { kafkaBrokers, skipKafka, uniqueName } from '../helpers/cluster.js';
import { memoryClient, testBroker } from '../helpers/duplex-pair.js';
import { freePort } from '../helpers/haproxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer } from '../helpers/server.js';

interface Probe {
  status: number;
  body: { ready?: boolean; status: string; reason?: string; connections: number };
}

async function probe(server: StompServer, path: '/readyz' | '/healthz'): Promise<Probe> {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, {
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, body: (await res.json()) as Probe['body'] };
}

/** Connected raw clients, each recording when its ERROR arrived. */
async function clients(server: StompServer, n: number) {
  const list: Array<{ client: RawClient; errorAt: Promise<number> }> = [];
  for (let i = 0; i < n; i++) {
    const client =
      i % 2 === 0 ? await RawClient.ws(server.url) : await RawClient.tcp(server.tcpPort as number);
    await client.connect();
    const errorAt = client.next('ERROR', 30_000).then((error) => {
      expect(getHeader(error, 'message')).toBe('STOMP_ERR_SHUTDOWN');
      return Date.now();
    });
    errorAt.catch(() => {});
    list.push({ client, errorAt });
  }
  return list;
}

/** Whether a TCP connection to the port is accepted. */
function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('/readyz and /healthz', () => {
  it('answers 200 ready once listening (embedded), with the connection count', async () => {
    const server = await startServer();
    const client = await RawClient.tcp(server.tcpPort as number);
    await client.connect();
    const ready = await probe(server, '/readyz');
    expect(ready).toEqual({
      status: 200,
      body: { ready: true, status: 'ready', connections: 1 },
    });
    expect(await probe(server, '/healthz')).toEqual({
      status: 200,
      body: { status: 'ok', connections: 1 },
    });
  });

  it('answers 503 with the reason while Kafka cannot be reached (cluster mode)', async () => {
    // A port nobody listens on: the fan-out keeps retrying in the background.
    const server = await startServer({
      kafkaBrokers: `127.0.0.1:${await freePort()}`,
      kafkaTopic: uniqueName('stompbus-spec-readyz-down'),
    });
    const ready = await probe(server, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ ready: false, status: 'not ready' });
    expect(ready.body.reason).toMatch(/Kafka/);
    // Alive all the same: liveness is not readiness.
    expect((await probe(server, '/healthz')).status).toBe(200);
  });

  it.skipIf(skipKafka)(
    'answers 200 once Kafka is joined and the history read back',
    async () => {
      const server = await startServer({
        kafkaBrokers,
        kafkaTopic: uniqueName('stompbus-spec-readyz'),
      });
      // start() may return before the group is joined; readiness follows it.
      const deadline = Date.now() + 20_000;
      let ready = await probe(server, '/readyz');
      while (ready.status !== 200 && Date.now() < deadline) {
        expect(ready.body.status).toBe('not ready');
        await new Promise((resolve) => setTimeout(resolve, 100));
        ready = await probe(server, '/readyz');
      }
      expect(ready.body).toEqual({ ready: true, status: 'ready', connections: 0 });
    },
    30_000,
  );
});

describe('StompServer.drain()', () => {
  it('turns unready at once, serves new connections for the delay, then spreads the ERRORs over the drain time', async () => {
    const server = await startServer({ drainDelayMs: 600, drainTimeMs: 1500 });
    const open = await clients(server, 6);
    const started = Date.now();
    const drained = server.drain();

    // At once: 503 draining; alive; the sessions untouched.
    const ready = await probe(server, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ ready: false, status: 'draining' });
    expect((await probe(server, '/healthz')).body.status).toBe('draining');
    // Within the delay a new client is still served, over TCP and WebSocket.
    const late = await clients(server, 2);
    expect(Date.now() - started).toBeLessThan(600);
    expect(open.every((o) => !o.client.isClosed)).toBe(true);

    const times = await Promise.all([...open, ...late].map((o) => o.errorAt));
    await drained;
    const first = Math.min(...times) - started;
    const span = Math.max(...times) - Math.min(...times);
    console.log(`drain.spec: first ERROR after ${first} ms, ERRORs spread over ${span} ms`);
    expect(first).toBeGreaterThanOrEqual(550);
    // Eight sessions evenly over 1.5 s: about 214 ms apart, not one instant.
    expect(span).toBeGreaterThanOrEqual(1200);
    expect(span).toBeLessThan(3000);
    const sorted = [...times].sort((a, b) => a - b);
    const gaps = sorted.slice(1).map((t, i) => t - (sorted[i] as number));
    expect(Math.max(...gaps)).toBeLessThan(1000);
    for (const o of [...open, ...late]) await o.client.closed;
  });

  it('refuses new connections once the delay is over, answering /readyz 503 stopping meanwhile', async () => {
    const server = await startServer({ drainDelayMs: 100, drainTimeMs: 2000 });
    const open = await clients(server, 3);
    const drained = server.drain();
    await open[0]?.errorAt;
    expect(await tcpAccepts(server.tcpPort as number)).toBe(false);
    const upgrade = await fetch(`http://127.0.0.1:${server.port}/stomp`, {
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13' },
      signal: AbortSignal.timeout(5000),
    }).catch((error: unknown) => error);
    // Either refused outright or with 503: never a session.
    if (upgrade instanceof Response) expect(upgrade.status).toBe(503);
    const ready = await probe(server, '/readyz');
    expect(ready).toMatchObject({ status: 503, body: { status: 'stopping' } });
    await drained;
  });

  it('hurries on stop(): the sessions left get their ERROR at once', async () => {
    const server = await startServer({ drainDelayMs: 10_000, drainTimeMs: 10_000 });
    const open = await clients(server, 4);
    const drained = server.drain();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(open.every((o) => !o.client.isClosed)).toBe(true);
    const stopAt = Date.now();
    await server.stop();
    await drained;
    const times = await Promise.all(open.map((o) => o.errorAt));
    expect(Math.max(...times) - stopAt).toBeLessThan(1000);
  });
});

describe('StompBroker.close({ spreadMs }) (embedded)', () => {
  it('spreads the shutdown ERRORs of in-memory sessions over spreadMs', async () => {
    const broker = testBroker();
    const sessions = Array.from({ length: 5 }, () => memoryClient(broker));
    for (const client of sessions) await client.connect();
    expect(broker.readiness()).toEqual({ ready: true });
    const started = Date.now();
    const closed = broker.close({ spreadMs: 800, graceMs: 500 });
    expect(broker.readiness()).toEqual({ ready: false, reason: 'closing' });
    const times = await Promise.all(
      sessions.map(async (client) => {
        const error = await client.next('ERROR', 5000);
        expect(getHeader(error, 'message')).toBe('STOMP_ERR_SHUTDOWN');
        return Date.now() - started;
      }),
    );
    await closed;
    expect(Math.min(...times)).toBeLessThan(300);
    expect(Math.max(...times)).toBeGreaterThanOrEqual(700);
  });
});
