/**
 * examples/spring-relay (Spring's `enableStompBrokerRelay`) in front of two stompbus
 * instances in cluster mode, HAProxy between them (examples/spring-relay/haproxy.cfg, the
 * TCP half of examples/haproxy.cfg, as its README runs it): the
 * Spring app's "system" relay connection, on which it sends what `convertAndSendToUser`
 * produces, and the relay connection it opens for the browser's session land on different
 * instances. With cluster-wide queues (`--queues cluster`, the default) the reply reaches
 * the browser; with `--queues local` it waits on the system connection's instance, where
 * nobody consumes it (docs/clustering.md "Spring's broker relay behind a load balancer").
 *
 * Needs Java 17 and Maven (the app is built with `mvn -q package`), haproxy and the run's
 * Kafka: without them it warns and skips; under `CI=true` it fails instead.
 */
import { readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@stomp/stompjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { kafkaBrokers, plainKafka, skipKafka, uniqueName } from '../helpers/cluster.js';
import {
  type Haproxy,
  type HaproxyPorts,
  haproxyVersion,
  type Instance,
  killAllChildren,
  sleep,
  startHaproxy,
  startInstance,
} from '../helpers/haproxy.js';
import {
  type JavaProcess,
  jarCopy,
  mavenPackage,
  missingJavaTools,
  QUICK_JVM,
  startJava,
} from '../helpers/maven.js';
import { Inbox, stompClient } from '../helpers/stomp-client.js';

const RELAY_DIR = fileURLToPath(new URL('../../examples/spring-relay/', import.meta.url));
const isCi = process.env.CI === 'true' || process.env.CI === '1';

const missingJava = await missingJavaTools();
const haproxy = haproxyVersion();
const missing = [...missingJava, ...(haproxy ? [] : ['haproxy'])];
if (missing.length > 0) {
  const reason = `${missing.join(' and ')} not found`;
  if (isCi) throw new Error(`spring-cluster.spec.ts cannot run (${reason}); CI never skips it.`);
  const line = '!'.repeat(80);
  console.warn(
    `\n${line}\n!!!  ${reason}: spring-cluster.spec.ts is SKIPPED (it needs Java 17, Maven and haproxy)\n${line}\n`,
  );
}
if (skipKafka) {
  console.warn(
    '!!! spring-cluster.spec.ts SKIPPED: no Kafka broker (see spec/kafka-global-setup.ts)',
  );
}

/**
 * examples/spring-relay/haproxy.cfg as the README runs it, its frontend moved to
 * `ports.tcp` and its two servers to `instances`' ports. Throws when the file no longer
 * has the lines this replaces.
 */
function springHaproxyConfig(ports: HaproxyPorts, instances: Instance[]): string {
  const file = join(RELAY_DIR, 'haproxy.cfg');
  const replacements: Array<[RegExp, string]> = [
    [/^ {4}bind 127\.0\.0\.1:61613$/m, `    bind 127.0.0.1:${ports.tcp}`],
    ...instances.map((instance, n): [RegExp, string] => [
      new RegExp(`^ {4}server stompbus${n + 1} 127\\.0\\.0\\.1:\\d+ check port \\d+$`, 'm'),
      `    server stompbus${n + 1} 127.0.0.1:${instance.tcpPort} check port ${instance.port}`,
    ]),
  ];
  let config = readFileSync(file, 'utf8');
  for (const [line, replacement] of replacements) {
    if (!line.test(config)) throw new Error(`${file}: no line ${line} to put ports in`);
    config = config.replace(line, replacement);
  }
  return config;
}

/** The open STOMP-over-TCP connections of an instance, from its /metrics gauge. */
async function tcpConnections(instance: Instance): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${instance.adminPort}/metrics`)).text();
  const value = /^stompbus_connections\{transport="tcp"\} (\d+)$/m.exec(text)?.[1];
  if (value === undefined) throw new Error(`${instance.name}: no TCP connection gauge`);
  return Number(value);
}

/** The `stompbus_queue_depth` lines of an instance: queue name to waiting messages. */
async function queueDepths(instance: Instance): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${instance.adminPort}/metrics`)).text();
  return new Map(
    [...text.matchAll(/^stompbus_queue_depth\{queue="([^"]+)"\} (\d+)$/gm)].map((m) => [
      m[1] as string,
      Number(m[2]),
    ]),
  );
}

/** Polls until each instance's TCP connection gauge reads as `expected` (in order). */
async function connectionsAre(
  instances: Instance[],
  expected: number[],
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await Promise.all(instances.map(tcpConnections));
    if (counts.every((c, i) => c === expected[i])) return;
    if (Date.now() > deadline) {
      throw new Error(`TCP connections ${counts.join('/')}, expected ${expected.join('/')}`);
    }
    await sleep(100);
  }
}

/** Subscribes through the Spring app and waits for stompbus's RECEIPT, relayed back. */
function subscribeWithReceipt(client: Client, destination: string, inbox: Inbox): Promise<void> {
  const receipt = `sub-${Math.random().toString(36).slice(2)}`;
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no RECEIPT for SUBSCRIBE ${destination}`)),
      5_000,
    );
    client.watchForReceipt(receipt, () => {
      clearTimeout(timer);
      resolve();
    });
  });
  client.subscribe(destination, inbox.take, { receipt });
  return done;
}

/** Two instances, HAProxy, the Spring app: what a test needs of them. */
interface Deployment {
  /** The instance holding the Spring app's system relay connection. */
  system: Instance;
  /** The other one, which holds the browser session's relay connection. */
  browser: Instance;
  /** Connected to the Spring app's `/ws` as alice. */
  alice: Client;
}

/** The app's jar, copied out of target/ (see `jarCopy`). */
let jar = '';
let spring: JavaProcess | undefined;
let proxy: Haproxy | undefined;
let instances: Instance[] = [];
let topics: string[] = [];

/** What the processes printed, for a failure message. */
function logs(): string {
  const children = [proxy, ...instances].filter((c) => c !== undefined);
  return [
    ...children.map((c) => `--- ${c.name} (pid ${c.pid}):\n${c.output().slice(-3_000)}`),
    `--- spring-relay:\n${spring?.output().slice(-3_000) ?? '(not started)'}`,
  ].join('\n');
}

/**
 * Starts two instances with `--queues <queues>`, HAProxy in front of them and the Spring
 * app with its relay on HAProxy's TCP frontend, then connects alice to the app.
 *
 * Where the two relay connections land is made certain, not left to chance: HAProxy's
 * TCP backend balances by least connections (examples/spring-relay/haproxy.cfg), so
 * with no connection through HAProxy when the app starts, the app's system connection
 * takes one instance and the next connection, the one Spring opens for alice's CONNECT,
 * goes to the instance with fewer, the other one. What makes the first half true is
 * waited for (both instances at zero TCP connections: HAProxy's own start-up probes of
 * its frontend are gone), and the outcome is read back from the instances' connection
 * gauges rather than assumed. A roundrobin backend would depend on how many of those
 * probes HAProxy had already passed on; a backend per connection would need a second
 * relay address, which Spring's relay does not have (system and client connections
 * share `relayHost`/`relayPort`).
 */
async function deploy(queues: 'cluster' | 'local'): Promise<Deployment> {
  const topic = uniqueName('stompbus-spring');
  topics = [topic, `${topic}.users`, `${topic}.presence`, `${topic}.queues`];
  // One after the other: the first creates the Kafka topics, the second finds them.
  for (const name of ['spring-a', 'spring-b']) {
    instances.push(
      await startInstance(name, {
        kafkaBrokers,
        kafkaTopic: topic,
        args: ['--queues', queues],
        timeoutMs: 30_000,
      }),
    );
  }
  proxy = await startHaproxy(instances, 10_000, springHaproxyConfig);
  await connectionsAre(instances, [0, 0]);

  spring = startJava([
    ...QUICK_JVM,
    '-jar',
    jar,
    '--server.port=0',
    `--stompbus.relay.port=${proxy.ports.tcp}`,
  ]);
  const [, port] = await spring.waitFor(/spring-relay listening on port (\d+)/, 90_000);
  await spring.waitFor(/spring-relay broker available/, 30_000);
  const [a, b] = instances as [Instance, Instance];
  // The system connection, on one instance: which one is up to HAProxy.
  const onA = await Promise.any([
    connectionsAre([a, b], [1, 0]).then(() => true),
    connectionsAre([a, b], [0, 1]).then(() => false),
  ]).catch(async () => {
    const counts = await Promise.all(instances.map(tcpConnections));
    throw new Error(
      `the system connection: TCP connections ${counts.join('/')}, expected 1/0 or 0/1`,
    );
  });
  const system = onA ? a : b;
  const browser = onA ? b : a;

  const alice = await stompClient(`ws://127.0.0.1:${port}/ws`, {
    connectHeaders: { login: 'alice', passcode: 'x' },
  });
  // Spring opened alice's relay connection for her CONNECT: on the other instance.
  await connectionsAre([system, browser], [1, 1]);
  console.log(
    `[spring-cluster] --queues ${queues}: system relay connection on ${system.name}, alice's on ${browser.name}`,
  );
  return { system, browser, alice };
}

const skip = missing.length > 0 || skipKafka;

describe.skipIf(skip)("Spring's broker relay behind HAProxy, two instances", () => {
  // dist/ is compiled by spec/build-global-setup.ts: the instances run bin/stompbus.js.
  beforeAll(async () => {
    const builds = await mavenPackage([RELAY_DIR]);
    const summary = builds.map(
      (b) => `${basename(b.dir)} ${b.ms} ms${b.offline ? ' offline' : ''}`,
    );
    console.log(`[spring-cluster] mvn package: ${summary.join(', ')}`);
    jar = jarCopy(`${RELAY_DIR}target/spring-relay.jar`);
  }, 600_000);

  afterAll(() => {
    if (jar) rmSync(dirname(jar), { recursive: true, force: true });
  });

  afterEach(async () => {
    await spring?.stop();
    spring = undefined;
    await killAllChildren();
    proxy = undefined;
    instances = [];
    const admin = plainKafka().admin();
    try {
      await admin.connect();
      await admin.deleteTopics({ topics, timeout: 5_000 });
    } catch {
      // Keeps the run's Kafka small; never fails the spec.
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }, 60_000);

  it('convertAndSendToUser reaches alice though her relay connection is on the other instance', async () => {
    try {
      const { alice } = await deploy('cluster');
      const replies = new Inbox();
      const greetings = new Inbox();
      await subscribeWithReceipt(alice, '/user/queue/replies', replies);
      await subscribeWithReceipt(alice, '/topic/greetings', greetings);

      alice.publish({ destination: '/app/greet', body: 'hi from the other instance' });
      const [reply] = await replies.waitFor(1, 10_000);
      expect(reply?.body).toBe('hello alice, you said: hi from the other instance');
      expect(reply?.headers.destination).toBe('/user/queue/replies');
      const [broadcast] = await greetings.waitFor(1, 10_000);
      expect(broadcast?.body).toBe('alice says: hi from the other instance');

      // A second round: her session's queue keeps working, once per message.
      alice.publish({ destination: '/app/greet', body: 'again' });
      expect((await replies.waitFor(2, 10_000))[1]?.body).toBe('hello alice, you said: again');
      await sleep(300); // room for a wrong extra copy
      expect(replies.messages).toHaveLength(2);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${logs()}`, { cause: error });
    }
  }, 180_000);

  it('with --queues local the reply waits on the system connection’s instance and never arrives', async () => {
    try {
      const { alice, system, browser } = await deploy('local');
      const replies = new Inbox();
      const greetings = new Inbox();
      await subscribeWithReceipt(alice, '/user/queue/replies', replies);
      await subscribeWithReceipt(alice, '/topic/greetings', greetings);

      alice.publish({ destination: '/app/greet', body: 'anyone there?' });
      // The app did answer: its /topic broadcast crosses instances (topics are cluster-wide)...
      const [broadcast] = await greetings.waitFor(1, 10_000);
      expect(broadcast?.body).toBe('alice says: anyone there?');
      // ...but the reply went into the system instance's own /queue/replies-user<session>.
      await expect(replies.waitFor(1, 4_000)).rejects.toThrow('got 0 of 1 messages');
      const deadline = Date.now() + 5_000;
      let waiting = [...(await queueDepths(system))];
      while (waiting.length === 0 && Date.now() < deadline) {
        await sleep(200); // the gauge is a census taken at most once a second or so
        waiting = [...(await queueDepths(system))];
      }
      expect(waiting).toEqual([[expect.stringMatching(/^\/queue\/replies-user\S+$/), 1]]);
      expect([...(await queueDepths(browser))]).toEqual([]);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${logs()}`, { cause: error });
    }
  }, 180_000);
});
