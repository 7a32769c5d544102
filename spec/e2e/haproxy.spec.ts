import { Client, type IMessage } from '@stomp/stompjs';
import { TCPWrapper } from '@stomp/tcp-wrapper';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Frame, getHeader } from '../../src/frame/index.js';
import { kafkaBrokers, plainKafka, skipKafka, uniqueName } from '../helpers/cluster.js';
import {
  buildDist,
  type Haproxy,
  haproxyVersion,
  health,
  type Instance,
  killAllChildren,
  killChild,
  readiness,
  sleep,
  startHaproxy,
  startInstance,
} from '../helpers/haproxy.js';
import { RawClient } from '../helpers/raw-client.js';

/**
 * HAProxy (Debian's package) in front of two stompbus processes with the
 * settings of examples/haproxy.cfg: clients connect through it, one instance
 * is killed, its clients reconnect through HAProxy to the other one; and a
 * rolling restart (SIGTERM, drain, start again) of both, one after the other,
 * under a numbered stream of messages.
 */

const isCi = process.env.CI === 'true' || process.env.CI === '1';
const haproxy = haproxyVersion();
const MISSING_HAPROXY =
  'haproxy is not installed: the HAProxy spec needs it (`apt-get install -y haproxy`; .ci/run installs it)';

if (!haproxy && !isCi) console.warn(`!!! haproxy.spec.ts SKIPPED: ${MISSING_HAPROXY}`);
if (skipKafka) {
  console.warn('!!! haproxy.spec.ts SKIPPED: no Kafka broker (see spec/kafka-global-setup.ts)');
}

const DESTINATION = '/topic/haproxy';
const WS_CLIENTS = 4;
const TCP_CLIENTS = 2;
const MESSAGES = 20;
/** Reconnection: 200 ms client delay + at most one 500 ms health check; generous for CI. */
const RECOVERY_TIMEOUT_MS = 15_000;
const DELIVERY_TIMEOUT_MS = 10_000;

/** A @stomp/stompjs client through HAProxy that re-subscribes on every (re)connect. */
class Subscriber {
  readonly client: Client;
  readonly messages: IMessage[] = [];
  /** Connections that completed CONNECTED and a receipted SUBSCRIBE. */
  sessions = 0;
  /** True while connected and subscribed. */
  ready = false;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly name: string,
    factory: () => WebSocket | TCPWrapper,
  ) {
    this.client = new Client({
      webSocketFactory: factory as () => WebSocket,
      reconnectDelay: 200,
      connectionTimeout: 2_000,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      onConnect: () => {
        const receipt = `sub-${this.name}-${this.sessions}`;
        this.client.watchForReceipt(receipt, () => {
          this.sessions++;
          this.ready = true;
          this.wake();
        });
        this.client.subscribe(
          DESTINATION,
          (m) => {
            this.messages.push(m);
            this.wake();
          },
          { receipt },
        );
      },
      onWebSocketClose: () => {
        this.ready = false;
        this.wake();
      },
    });
    this.client.activate();
  }

  bodies(prefix: string): string[] {
    return this.messages.map((m) => m.body).filter((b) => b.startsWith(prefix));
  }

  /** Waits until `test()` holds, woken by every message or (re)connection. */
  async until(what: string, test: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!test()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 100));
        this.waiters.add(wake);
      });
    }
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** Sends one message through `sender` and waits for its RECEIPT (Kafka acknowledged it). */
function sendWithReceipt(sender: Subscriber, body: string): Promise<void> {
  const receipt = `r-${body}`;
  const done = new Promise<void>((resolve) => sender.client.watchForReceipt(receipt, resolve));
  sender.client.publish({ destination: DESTINATION, body, headers: { receipt } });
  return done;
}

/**
 * Sends `MESSAGES` messages tagged `phase` through a ready subscriber and
 * waits until every subscriber has received all of them, exactly once.
 */
async function everyoneReceives(subscribers: Subscriber[], phase: string): Promise<void> {
  const sender = subscribers.find((s) => s.ready);
  if (!sender) throw new Error('no connected client to send from');
  const expected = Array.from({ length: MESSAGES }, (_, i) => `${phase}#${i}`);
  await Promise.race([
    Promise.all(expected.map((body) => sendWithReceipt(sender, body))),
    sleep(DELIVERY_TIMEOUT_MS).then(() => {
      throw new Error(`${phase}: no RECEIPT for every SEND through ${sender.name}`);
    }),
  ]);
  await Promise.all(
    subscribers.map((s) =>
      s.until(
        `${MESSAGES} ${phase} messages (has ${s.bodies(`${phase}#`).length})`,
        () => s.bodies(`${phase}#`).length >= MESSAGES,
        DELIVERY_TIMEOUT_MS,
      ),
    ),
  );
  await sleep(200);
  for (const s of subscribers) expect(s.bodies(`${phase}#`), s.name).toEqual(expected);
}

/**
 * Waits until every subscriber is connected and subscribed, then until
 * messages sent through the cluster reach all of them (each instance's Kafka
 * consumer starts from the latest offset, so a first probe may come too early).
 */
async function warmUp(subscribers: Subscriber[], phase: string): Promise<void> {
  await Promise.all(
    subscribers.map((s) => s.until('subscribed', () => s.ready, RECOVERY_TIMEOUT_MS)),
  );
  const sender = subscribers[0] as Subscriber;
  const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
  for (let n = 0; ; n++) {
    await sendWithReceipt(sender, `${phase}-probe#${n}`);
    await sleep(200);
    if (subscribers.every((s) => s.bodies(`${phase}-probe#`).length > 0)) return;
    if (Date.now() > deadline) throw new Error(`${phase}: probes did not reach every client`);
  }
}

// CI never skips this spec: a missing haproxy is a failure there, not a skip.
if (!haproxy && isCi) {
  describe('HAProxy in front of stompbus instances', () => {
    it('needs haproxy installed', () => {
      throw new Error(`${MISSING_HAPROXY}. Add to .ci/run: apt-get install -y haproxy`);
    });
  });
}

describe.skipIf(!haproxy || skipKafka)('HAProxy in front of stompbus instances', () => {
  const topic = uniqueName('stompbus-spec-haproxy');
  let instances: Instance[] = [];
  let proxy: Haproxy | undefined;
  const subscribers: Subscriber[] = [];

  beforeAll(async () => {
    await buildDist();
    // One after the other: the first creates the Kafka topic, the second finds it.
    const timeoutMs = 30_000;
    instances.push(
      await startInstance('stompbus-1', { kafkaBrokers, kafkaTopic: topic, timeoutMs }),
    );
    instances.push(
      await startInstance('stompbus-2', { kafkaBrokers, kafkaTopic: topic, timeoutMs }),
    );
    proxy = await startHaproxy(instances);
    // Each instance is waited for until /readyz says ready (Kafka joined): slow on a busy machine.
  }, 90_000);

  afterAll(async () => {
    await Promise.allSettled(subscribers.map((s) => s.client.deactivate({ force: true })));
    await killAllChildren();
    instances = [];
    const admin = plainKafka().admin();
    try {
      await admin.connect();
      await admin.deleteTopics({ topics: [topic], timeout: 5_000 });
    } catch {
      // Keeps the run's Kafka small; never fails the spec.
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }, 20_000);

  it('reconnects the clients of a killed instance through HAProxy to the survivor', async () => {
    const p = proxy as Haproxy;
    try {
      for (let i = 0; i < WS_CLIENTS; i++) {
        subscribers.push(
          new Subscriber(`ws-${i}`, () => new WebSocket(p.wsUrl, ['v12.stomp', 'v11.stomp'])),
        );
        await subscribers[i]?.until(
          'first connection',
          () => subscribers[i]?.ready ?? false,
          5_000,
        );
      }
      for (let i = 0; i < TCP_CLIENTS; i++) {
        const s = new Subscriber(`tcp-${i}`, () => new TCPWrapper('127.0.0.1', p.ports.tcp));
        subscribers.push(s);
        await s.until('first connection', () => s.ready, 5_000);
      }
      await warmUp(subscribers, 'before');
      await everyoneReceives(subscribers, 'before');

      // Least connections spread the clients over both instances.
      const [first, second] = instances as [Instance, Instance];
      const counts = await Promise.all(instances.map((i) => health(i.port)));
      expect(counts.map((c) => c?.connections)).toEqual([
        (WS_CLIENTS + TCP_CLIENTS) / 2,
        (WS_CLIENTS + TCP_CLIENTS) / 2,
      ]);

      await killChild(first);
      const killedAt = Date.now();
      // The clients of the killed instance lose their connection and come back,
      // through HAProxy, to the survivor.
      const deadline = killedAt + RECOVERY_TIMEOUT_MS;
      for (;;) {
        const onSurvivor = (await health(second.port))?.connections;
        if (onSurvivor === WS_CLIENTS + TCP_CLIENTS && subscribers.every((s) => s.ready)) break;
        if (Date.now() > deadline) {
          throw new Error(
            `clients did not come back: ${onSurvivor} on the survivor, ${subscribers
              .map((s) => `${s.name} ready=${s.ready} sessions=${s.sessions}`)
              .join(', ')}`,
          );
        }
        await sleep(100);
      }
      const reconnected = subscribers.filter((s) => s.sessions >= 2);
      expect(reconnected.length).toBe((WS_CLIENTS + TCP_CLIENTS) / 2);
      console.log(
        `haproxy.spec: ${reconnected.length} clients reconnected within ${Date.now() - killedAt} ms`,
      );

      await everyoneReceives(subscribers, 'after');
    } catch (error) {
      const logs = [proxy, ...instances]
        .filter((c) => c !== undefined)
        .map((c) => `--- ${c.name} (pid ${c.pid}):\n${c.output().slice(-3_000)}`)
        .join('\n');
      throw new Error(`${(error as Error).message}\n${logs}`, { cause: error });
    }
  }, 45_000);
});

// ---- rolling restart ------------------------------------------------------------------

const ROLLING_DESTINATION = '/topic/rolling';
/** Small drain settings: HAProxy checks every 500 ms, down after one failure. */
const DRAIN_DELAY_MS = 1_500;
const DRAIN_TIME_MS = 2_500;
const INSTANCE_ARGS = [
  '--drain-delay',
  String(DRAIN_DELAY_MS),
  '--drain-time',
  String(DRAIN_TIME_MS),
  '--shutdown-timeout',
  '1000',
];

/** An ERROR a client got, and when. */
interface Stamped {
  code: string | undefined;
  at: number;
}

/**
 * A @stomp/stompjs application through HAProxy: heart-beats of 1 s both ways,
 * reconnects after 200 ms and subscribes again with `x-resume-after` the last
 * `x-position` it saw (README "Resume after reconnect").
 */
class Resumer {
  readonly client: Client;
  /** The numbers of the messages received, in arrival order. */
  readonly numbers: number[] = [];
  /** `x-resume` of the RECEIPT of each resuming SUBSCRIBE. */
  readonly resumes: string[] = [];
  readonly errors: Stamped[] = [];
  /** What happened, for a failure message: connections, resumes, messages. */
  readonly events: Array<{ at: number; what: string; n?: number }> = [];
  connects = 0;
  ready = false;
  private last: string | undefined;

  constructor(
    readonly name: string,
    factory: () => WebSocket | TCPWrapper,
  ) {
    this.client = new Client({
      webSocketFactory: factory as () => WebSocket,
      reconnectDelay: 200,
      connectionTimeout: 2_000,
      heartbeatIncoming: 1_000,
      heartbeatOutgoing: 1_000,
      onConnect: (connected) => {
        this.connects++;
        const receipt = `sub-${this.name}-${this.connects}`;
        const headers: Record<string, string> = { receipt };
        const resuming = this.last !== undefined;
        if (this.last !== undefined) headers['x-resume-after'] = this.last;
        this.events.push({
          at: Date.now(),
          what: `CONNECTED session ${connected.headers.session}, SUBSCRIBE x-resume-after ${this.last}`,
        });
        this.client.watchForReceipt(receipt, (frame) => {
          if (resuming) this.resumes.push(frame.headers['x-resume'] ?? '(none)');
          this.events.push({
            at: Date.now(),
            what: `RECEIPT x-resume ${frame.headers['x-resume']}`,
          });
          this.ready = true;
        });
        this.client.subscribe(
          ROLLING_DESTINATION,
          (m: IMessage) => {
            const n = Number(m.body);
            this.numbers.push(n);
            this.last = m.headers['x-position'];
            const resume = m.headers['x-resume'] ? ` x-resume ${m.headers['x-resume']}` : '';
            this.events.push({ at: Date.now(), what: `MESSAGE #${n} ${this.last}${resume}`, n });
          },
          headers,
        );
      },
      onStompError: (frame) => {
        this.errors.push({ code: frame.headers.message, at: Date.now() });
        this.events.push({ at: Date.now(), what: `ERROR ${frame.headers.message}` });
      },
      onWebSocketClose: () => {
        this.ready = false;
      },
    });
    this.client.activate();
  }
}

/**
 * Sends 0, 1, 2, … every 20 ms through HAProxy, each with a receipt, while
 * connected; a number whose turn comes while reconnecting is skipped, one
 * whose RECEIPT never comes (its connection was drained) is not receipted.
 */
class Publisher {
  readonly client: Client;
  readonly receipted = new Set<number>();
  readonly sentAt = new Map<number, number>();
  readonly receiptedAt = new Map<number, number>();
  readonly errors: Stamped[] = [];
  private next = 0;
  private running = true;
  private readonly done: Promise<void>;

  constructor(url: string) {
    this.client = new Client({
      webSocketFactory: () => new WebSocket(url, ['v12.stomp']),
      reconnectDelay: 200,
      connectionTimeout: 2_000,
      heartbeatIncoming: 1_000,
      heartbeatOutgoing: 1_000,
      onStompError: (frame) => this.errors.push({ code: frame.headers.message, at: Date.now() }),
    });
    this.client.activate();
    this.done = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const n = this.next++;
      if (this.client.connected) {
        const receipt = `p-${n}`;
        this.client.watchForReceipt(receipt, () => {
          this.receipted.add(n);
          this.receiptedAt.set(n, Date.now());
        });
        this.sentAt.set(n, Date.now());
        try {
          this.client.publish({
            destination: ROLLING_DESTINATION,
            body: String(n),
            headers: { receipt },
          });
        } catch {
          // The connection went between the check and the write: not sent.
        }
      }
      await sleep(20);
    }
  }

  /** The highest number receipted so far. */
  get lastReceipted(): number {
    return Math.max(-1, ...this.receipted);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

/** Polls `test` every 50 ms until it holds, or fails after `timeoutMs` saying `what`. */
async function until(what: string, test: () => boolean | Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Whether HAProxy sends a new client (over TCP and over WebSocket) to `instance`. */
async function routesTo(p: Haproxy, instance: Instance): Promise<boolean> {
  // A session id starts with its process's pid in base 36.
  const mine = (frame: Frame) =>
    (getHeader(frame, 'session') ?? '').startsWith(`${instance.pid.toString(36)}-`);
  const clients: RawClient[] = [];
  try {
    const tcp = await RawClient.tcp(p.ports.tcp);
    clients.push(tcp);
    const ws = await RawClient.ws(p.wsUrl);
    clients.push(ws);
    return mine(await tcp.connect()) && mine(await ws.connect());
  } catch {
    return false;
  } finally {
    for (const c of clients) c.send('DISCONNECT\n\n\0');
  }
}

/** What one instance's drain looked like. */
interface Drain {
  name: string;
  signalled: number;
  /** When /readyz first answered 503 after the signal. */
  unreadyAt: number;
  /** When a client connecting straight to the instance after the signal got CONNECTED. */
  servedAt: number;
  exitedAt: number;
  exitCode: number | null;
  /** The ERRORs the HAProxy clients got meanwhile. */
  errors: Stamped[];
}

describe.skipIf(!haproxy || skipKafka)('HAProxy in front of a rolling restart', () => {
  const topic = uniqueName('stompbus-spec-rolling');
  const resumers: Resumer[] = [];
  let publisher: Publisher | undefined;
  let instances: Instance[] = [];
  let proxy: Haproxy | undefined;

  beforeAll(async () => {
    await buildDist();
    instances.push(
      await startInstance('rolling-a', {
        kafkaBrokers,
        kafkaTopic: topic,
        args: INSTANCE_ARGS,
        timeoutMs: 30_000,
      }),
    );
    instances.push(
      await startInstance('rolling-b', {
        kafkaBrokers,
        kafkaTopic: topic,
        args: INSTANCE_ARGS,
        timeoutMs: 30_000,
      }),
    );
    proxy = await startHaproxy(instances);
  }, 60_000);

  afterAll(async () => {
    await publisher?.stop();
    await Promise.allSettled(
      [...resumers.map((r) => r.client), publisher?.client].map((c) =>
        c?.deactivate({ force: true }),
      ),
    );
    await killAllChildren();
    instances = [];
    const admin = plainKafka().admin();
    try {
      await admin.connect();
      await admin.deleteTopics({
        topics: [topic, `${topic}.users`, `${topic}.presence`, `${topic}.queues`],
        timeout: 5_000,
      });
    } catch {
      // Keeps the run's Kafka small; never fails the spec.
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }, 30_000);

  /** SIGTERM to `instance`, watched until it exits, then started again on the same ports. */
  async function restart(index: number, name: string): Promise<Drain> {
    const p = proxy as Haproxy;
    const instance = instances[index] as Instance;
    const clients = [...resumers, publisher as Publisher];
    const before = clients.map((c) => c.errors.length);
    const signalled = Date.now();
    process.kill(instance.pid, 'SIGTERM');
    let unreadyAt = 0;
    await until(
      `${name}: /readyz 503`,
      async () => {
        const r = await readiness(instance.port);
        if (r?.status !== 503) return false;
        expect(r.body.status).toBe('draining');
        unreadyAt = Date.now();
        return true;
      },
      5_000,
    );
    // Still served within the delay, straight to the instance (HAProxy no longer sends any).
    const late = await RawClient.tcp(instance.tcpPort);
    await late.connect();
    const servedAt = Date.now();
    await Promise.race([
      instance.exit,
      sleep(DRAIN_DELAY_MS + DRAIN_TIME_MS + 15_000).then(() => {
        throw new Error(`${name} did not exit after its drain`);
      }),
    ]);
    const exitedAt = Date.now();
    const errors = clients.flatMap((c, i) => c.errors.slice(before[i]));
    expect(getHeader(await late.next('ERROR', 1_000), 'message')).toBe('STOMP_ERR_SHUTDOWN');
    const drain: Drain = {
      name,
      signalled,
      unreadyAt,
      servedAt,
      exitedAt,
      exitCode: instance.process.exitCode,
      errors,
    };
    const again = await startInstance(name, {
      kafkaBrokers,
      kafkaTopic: topic,
      port: instance.port,
      tcpPort: instance.tcpPort,
      args: INSTANCE_ARGS,
      timeoutMs: 30_000,
    });
    instances[index] = again;
    // HAProxy takes it back once its checks see /readyz 200 (rise 1, every 500 ms).
    await until(`HAProxy to route to ${name}`, () => routesTo(p, again), 15_000);
    return drain;
  }

  it('loses no receipted message across SIGTERM, drain and restart of each instance in turn', async () => {
    const p = proxy as Haproxy;
    try {
      for (let i = 0; i < WS_CLIENTS + TCP_CLIENTS; i++) {
        const r =
          i < WS_CLIENTS
            ? new Resumer(`ws-${i}`, () => new WebSocket(p.wsUrl, ['v12.stomp']))
            : new Resumer(`tcp-${i}`, () => new TCPWrapper('127.0.0.1', p.ports.tcp));
        resumers.push(r);
        await until(`${r.name} subscribed`, () => r.ready, 10_000);
      }
      publisher = new Publisher(p.wsUrl);
      const pub = publisher;
      // Every subscriber was subscribed (receipted) and both instances ready before the
      // first SEND: from the first receipted number on, nothing may be missing.
      await until('a first RECEIPT', () => pub.receipted.size > 0, 10_000);
      const from = Math.min(...pub.receipted);
      const counts = await Promise.all(instances.map((i) => health(i.port)));
      console.log(
        `haproxy.spec rolling: sessions per instance ${counts.map((c) => c?.connections).join('/')}, counting from #${from}`,
      );

      const drains = [await restart(0, 'rolling-a'), await restart(1, 'rolling-b')];
      await sleep(500);
      await pub.stop();
      const last = pub.lastReceipted;
      await until(
        `every subscriber to reach #${last}`,
        () => resumers.every((r) => r.numbers.includes(last)),
        DELIVERY_TIMEOUT_MS,
      );

      for (const d of drains) {
        const times = d.errors.map((e) => e.at);
        const first = Math.min(...times) - d.signalled;
        const span = Math.max(...times) - Math.min(...times);
        console.log(
          `haproxy.spec rolling: ${d.name}: /readyz 503 after ${d.unreadyAt - d.signalled} ms, ` +
            `new connection served after ${d.servedAt - d.signalled} ms, ${d.errors.length} ERRORs ` +
            `from ${first} ms over ${span} ms, exit ${d.exitCode} after ${d.exitedAt - d.signalled} ms`,
        );
        expect(d.exitCode, `${d.name} exit code`).toBe(0);
        expect(d.unreadyAt - d.signalled, `${d.name}: /readyz 503 at once`).toBeLessThan(1_000);
        expect(d.servedAt - d.signalled, `${d.name}: served during the delay`).toBeLessThan(
          DRAIN_DELAY_MS,
        );
        expect(d.errors.map((e) => e.code)).toEqual(d.errors.map(() => 'STOMP_ERR_SHUTDOWN'));
        expect(d.errors.length, `${d.name}: ERRORs`).toBeGreaterThanOrEqual(2);
        // None before the delay was over; spread over about --drain-time, not one instant.
        expect(first, `${d.name}: first ERROR`).toBeGreaterThanOrEqual(DRAIN_DELAY_MS - 100);
        expect(span, `${d.name}: ERROR span`).toBeGreaterThanOrEqual(DRAIN_TIME_MS * 0.5);
        expect(span, `${d.name}: ERROR span`).toBeLessThanOrEqual(DRAIN_TIME_MS + 1_500);
      }
      // The second drain moved everyone: at least two sessions each, every resume complete.
      const receipted = [...pub.receipted].filter((n) => n >= from).sort((a, b) => a - b);
      expect(receipted.length).toBeGreaterThan(100);
      for (const r of resumers) {
        const got = r.numbers.filter((n) => n >= from);
        expect(r.connects, `${r.name} connects`).toBeGreaterThanOrEqual(2);
        expect(r.resumes, `${r.name} resumes`).toEqual(r.resumes.map(() => 'complete'));
        // In order, none twice ("none missing and none twice").
        for (let i = 1; i < got.length; i++) {
          if ((got[i] as number) <= (got[i - 1] as number)) {
            throw new Error(`${r.name}: #${got[i]} after #${got[i - 1]}`);
          }
        }
        const have = new Set(got);
        const missing = receipted.filter((n) => !have.has(n));
        if (missing.length > 0) {
          // Around the first one missing: what this subscriber saw, and when it was sent.
          const m = missing[0] as number;
          const near = r.events.filter((e) => e.n === undefined || (e.n >= m - 3 && e.n <= m + 3));
          console.log(
            `${r.name} misses ${missing.join(',')}; #${m} sent at ${pub.sentAt.get(m)}, ` +
              `receipted at ${pub.receiptedAt.get(m)}; drains ${drains
                .map((d) => `${d.name} ${d.signalled}..${d.exitedAt}`)
                .join(', ')}\n${near.map((e) => `  ${e.at} ${e.what}`).join('\n')}`,
          );
        }
        expect(missing, `${r.name}: receipted messages missing`).toEqual([]);
      }
      // What was sent but not receipted reached all or none: every subscriber has the same list.
      const lists = resumers.map((r) => r.numbers.filter((n) => n >= from && n <= last));
      for (const list of lists) expect(list).toEqual(lists[0]);
      console.log(
        `haproxy.spec rolling: ${receipted.length} receipted messages from #${from} to #${last}, ` +
          `${(lists[0]?.length ?? 0) - receipted.length} more sent but not receipted arrived; ` +
          `connects per subscriber ${resumers.map((r) => r.connects).join('/')}`,
      );
    } catch (error) {
      const logs = [proxy, ...instances]
        .filter((c) => c !== undefined)
        .map((c) => `--- ${c.name} (pid ${c.pid}):\n${c.output().slice(-3_000)}`)
        .join('\n');
      throw new Error(`${(error as Error).message}\n${logs}`, { cause: error });
    }
  }, 150_000);
});
