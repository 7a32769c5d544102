import { Client, type IMessage } from '@stomp/stompjs';
import { TCPWrapper } from '@stomp/tcp-wrapper';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { kafkaBrokers, plainKafka, skipKafka, uniqueName } from '../helpers/cluster.js';
import {
  buildDist,
  type Haproxy,
  haproxyVersion,
  health,
  type Instance,
  killAllChildren,
  killChild,
  sleep,
  startHaproxy,
  startInstance,
} from '../helpers/haproxy.js';

/**
 * HAProxy (Debian's package) in front of two stompbus processes with the
 * settings of examples/haproxy.cfg: clients connect through it, one instance
 * is killed, its clients reconnect through HAProxy to the other one.
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
    instances.push(await startInstance('stompbus-1', { kafkaBrokers, kafkaTopic: topic }));
    instances.push(await startInstance('stompbus-2', { kafkaBrokers, kafkaTopic: topic }));
    proxy = await startHaproxy(instances);
  }, 45_000);

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
