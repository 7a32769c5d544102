/**
 * Spring's STOMP clients and Spring's broker relay against a real stompbus: both Maven
 * projects under examples/ are built here (`mvn -q package`, offline when ~/.m2 is warm)
 * and run as real JVMs on 127.0.0.1. Without `java` or `mvn` this spec warns and skips;
 * under `CI=true` it fails instead.
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Client } from '@stomp/stompjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StompServer } from '../../src/server.js';
import {
  type JavaProcess,
  jarCopy,
  javaCommand,
  mavenPackage,
  missingJavaTools,
  QUICK_JVM,
  startJava,
} from '../helpers/maven.js';
import { TEST_SERVER_OPTIONS } from '../helpers/server.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';

const CLIENT_DIR = fileURLToPath(new URL('../../examples/spring-client/', import.meta.url));
const RELAY_DIR = fileURLToPath(new URL('../../examples/spring-relay/', import.meta.url));
const isCi = process.env.CI === 'true' || process.env.CI === '1';
const run = promisify(execFile);

const missing = await missingJavaTools();
if (missing.length > 0) {
  const reason = `${missing.join(' and ')} not found`;
  if (isCi) throw new Error(`Spring specs cannot run (${reason}); CI never skips them.`);
  const line = '!'.repeat(80);
  console.warn(
    `\n${line}\n!!!  ${reason}: the Spring specs are SKIPPED (they need Java 17 and Maven)\n${line}\n`,
  );
}

/** Subscribes and resolves once stompbus (through whatever is in between) sent the RECEIPT. */
function subscribeWithReceipt(client: Client, destination: string, inbox: Inbox): Promise<void> {
  const receipt = `sub-${Math.random().toString(36).slice(2)}`;
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no RECEIPT for SUBSCRIBE ${destination}`)),
      5000,
    );
    client.watchForReceipt(receipt, () => {
      clearTimeout(timer);
      resolve();
    });
  });
  client.subscribe(destination, inbox.take, { receipt });
  return done;
}

/** The binary body examples/spring-client sends (see `binaryBody()` there). */
function expectedBinary(): Buffer {
  const body = Buffer.alloc(300);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
  body[0] = 0;
  return body;
}

describe.skipIf(missing.length > 0)('Spring', () => {
  let server: StompServer;
  let relay: JavaProcess | undefined;
  let relayUrl = '';
  let relayJar = '';

  beforeAll(async () => {
    server = new StompServer({ ...TEST_SERVER_OPTIONS });
    await server.start();
    const builds = await mavenPackage([CLIENT_DIR, RELAY_DIR]);
    const summary = builds.map(
      (b) => `${basename(b.dir)} ${b.ms} ms${b.offline ? ' offline' : ''}`,
    );
    console.log(`[spring] mvn package: ${summary.join(', ')}`);
    relayJar = jarCopy(`${RELAY_DIR}target/spring-relay.jar`);
    relay = startJava([
      ...QUICK_JVM,
      '-jar',
      relayJar,
      '--server.port=0',
      `--stompbus.relay.port=${server.tcpPort}`,
    ]);
    const [, port] = await relay.waitFor(/spring-relay listening on port (\d+)/, 60_000);
    await relay.waitFor(/spring-relay broker available/, 30_000);
    relayUrl = `ws://127.0.0.1:${port}/ws`;
  }, 600_000);

  afterAll(async () => {
    await relay?.stop();
    await server?.stop();
    if (relayJar) rmSync(dirname(relayJar), { recursive: true, force: true });
  });

  it('examples/spring-client sends, receives, acks and gets receipts over WebSocket and TCP', async () => {
    const watcher = await stompClient(server.url);
    const seen = new Inbox();
    await subscribeWithReceipt(watcher, '/topic/spring-client', seen);
    const inbox = `/queue/spring-inbox-${Math.random().toString(36).slice(2)}`;
    await publishWithReceipt(watcher, { destination: inbox, body: 'hello from node' });

    const args = ['--host', '127.0.0.1', '--ws-port', `${server.port}`];
    args.push('--tcp-port', `${server.tcpPort}`, '--inbox', inbox);
    const { stdout } = await run(
      javaCommand(),
      [...QUICK_JVM, '-jar', 'target/spring-client.jar', ...args],
      {
        cwd: CLIENT_DIR,
        timeout: 60_000,
      },
    ).catch((error: { stdout?: string; stderr?: string }) => {
      throw new Error(`spring-client failed:\n${error.stdout}${error.stderr}`);
    });

    expect(stdout).toMatch(
      /^ws connected to ws:\/\/127\.0\.0\.1:\d+\/stomp: sub-protocol=v12\.stomp version=1\.2 server=stompbus\//m,
    );
    expect(stdout).toMatch(/^tcp connected to 127\.0\.0\.1:\d+: version=1\.2 server=stompbus\//m);
    for (const who of ['ws', 'tcp']) {
      expect(stdout).toContain(
        `${who} received text on /topic/spring-client: hello from Spring over WebSocket`,
      );
      expect(stdout).toContain(
        `${who} received binary on /topic/spring-client: 300 bytes, identical`,
      );
    }
    expect(stdout).toContain('ws acked job 2 (client mode: covers job 1), receipt received');
    expect(stdout).toContain('tcp received job 3 with redelivered=true and acked it');
    expect(stdout).toContain(`ws received from ${inbox}: hello from node`);
    expect(stdout).toMatch(/^OK all checks passed$/m);

    // What the Spring clients sent, as a stompjs client on stompbus saw it.
    const [text, binary] = await seen.waitFor(2);
    expect(text?.body).toBe('hello from Spring over WebSocket');
    expect(text?.headers['content-type']).toMatch(/^text\/plain/);
    expect(binary?.headers['content-type']).toBe('application/octet-stream');
    expect(Buffer.from(binary!.binaryBody).equals(expectedBinary())).toBe(true);
  }, 90_000);

  it('relays /topic frames between Spring WebSocket clients and stompbus clients both ways', async () => {
    const direct = await stompClient(server.url);
    const alice = await stompClient(relayUrl, {
      connectHeaders: { login: 'alice', passcode: 'x' },
    });
    const directIn = new Inbox();
    const aliceIn = new Inbox();
    await subscribeWithReceipt(direct, '/topic/relay-demo', directIn);
    await subscribeWithReceipt(alice, '/topic/relay-demo', aliceIn);

    await publishWithReceipt(alice, {
      destination: '/topic/relay-demo',
      body: 'from the Spring side',
    });
    await publishWithReceipt(direct, {
      destination: '/topic/relay-demo',
      body: 'from the stompbus side',
    });
    const bodies = (inbox: Inbox) => inbox.waitFor(2).then((ms) => ms.map((m) => m.body));
    expect(await bodies(directIn)).toEqual(['from the Spring side', 'from the stompbus side']);
    expect(await bodies(aliceIn)).toEqual(['from the Spring side', 'from the stompbus side']);
    expect(aliceIn.messages[1]?.headers.destination).toBe('/topic/relay-demo');
  });

  it('shares a relayed /queue among Spring clients: each message reaches one of them', async () => {
    // Spring's simple broker would broadcast /queue/...; through the relay stompbus's
    // queue semantics hold: one consumer per message, round robin.
    const alice = await stompClient(relayUrl, {
      connectHeaders: { login: 'alice', passcode: 'x' },
    });
    const bob = await stompClient(relayUrl, { connectHeaders: { login: 'bob', passcode: 'x' } });
    const aliceIn = new Inbox();
    const bobIn = new Inbox();
    await subscribeWithReceipt(alice, '/queue/relay-jobs', aliceIn);
    await subscribeWithReceipt(bob, '/queue/relay-jobs', bobIn);
    const direct = await stompClient(server.url);
    const jobs = ['job 1', 'job 2', 'job 3', 'job 4'];
    for (const body of jobs)
      await publishWithReceipt(direct, { destination: '/queue/relay-jobs', body });

    await aliceIn.waitFor(2);
    await bobIn.waitFor(2);
    await new Promise((resolve) => setTimeout(resolve, 300)); // room for a wrong extra copy
    const got = [...aliceIn.messages, ...bobIn.messages].map((m) => m.body);
    expect(got.sort()).toEqual(jobs);
  });

  it('an @MessageMapping broadcasts through stompbus and convertAndSendToUser reaches only that user', async () => {
    const direct = await stompClient(server.url);
    const greetings = new Inbox();
    await subscribeWithReceipt(direct, '/topic/greetings', greetings);
    const alice = await stompClient(relayUrl, {
      connectHeaders: { login: 'alice', passcode: 'x' },
    });
    const bob = await stompClient(relayUrl, { connectHeaders: { login: 'bob', passcode: 'x' } });
    const aliceIn = new Inbox();
    const bobIn = new Inbox();
    await subscribeWithReceipt(alice, '/user/queue/replies', aliceIn);
    await subscribeWithReceipt(bob, '/user/queue/replies', bobIn);

    alice.publish({ destination: '/app/greet', body: 'hi all' });
    const [reply] = await aliceIn.waitFor(1);
    expect(reply?.body).toBe('hello alice, you said: hi all');
    expect(reply?.headers.destination).toBe('/user/queue/replies');
    const [broadcast] = await greetings.waitFor(1);
    expect(broadcast?.body).toBe('alice says: hi all');

    // Bob's first reply is the answer to his own greeting, not alice's.
    bob.publish({ destination: '/app/greet', body: 'hello' });
    const [bobReply] = await bobIn.waitFor(1);
    expect(bobReply?.body).toBe('hello bob, you said: hello');
    expect((await greetings.waitFor(2))[1]?.body).toBe('bob says: hello');
    expect(aliceIn.messages).toHaveLength(1);
  });

  it('a stompbus client reaches a Spring user on its /queue/<name>-user<session> queue', async () => {
    const alice = await stompClient(relayUrl, {
      connectHeaders: { login: 'alice', passcode: 'x' },
    });
    const aliceIn = new Inbox();
    await subscribeWithReceipt(alice, '/user/queue/replies', aliceIn);
    alice.publish({ destination: '/app/whoami', body: '' });
    const [whoami] = await aliceIn.waitFor(1);
    const session = whoami?.body.match(/^session (\S+)$/)?.[1];
    expect(session).toBeDefined();

    const direct = await stompClient(server.url);
    await publishWithReceipt(direct, {
      destination: `/queue/replies-user${session}`,
      body: 'straight from stompbus',
    });
    const [, fromStompbus] = await aliceIn.waitFor(2);
    expect(fromStompbus?.body).toBe('straight from stompbus');
    expect(fromStompbus?.headers.destination).toBe(`/queue/replies-user${session}`);
  });
});
