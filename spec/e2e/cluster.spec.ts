import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Client, IMessage } from '@stomp/stompjs';
import { describe, expect, it } from 'vitest';
import { javaCommand, kafkaLibsDir } from '../../scripts/kafka.js';
import { bodyText, getHeader } from '../../src/frame/index.js';
import {
  kafkaBrokers,
  plainAdmin,
  plainProducer,
  readTopic,
  skipKafka,
  startCluster,
  uniqueName,
} from '../helpers/cluster.js';
import { LogCapture } from '../helpers/log.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer } from '../helpers/server.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

if (skipKafka) {
  console.warn('!!! cluster.spec.ts SKIPPED: no Kafka broker (see spec/kafka-global-setup.ts)');
}

const MESSAGES = 200;
const DESTINATIONS = ['/topic/orders', '/topic/quotes'];
/** Cross-instance delivery of a few hundred messages takes well under a second; generous for CI. */
const DELIVERY_TIMEOUT_MS = 10_000;

describe.skipIf(skipKafka)('cluster mode: instances fan out through Kafka', () => {
  it('delivers every message exactly once to every subscriber on every instance, in one order per destination', async () => {
    const { instances } = await startCluster(3);
    const inboxes = new Map<string, Inbox[]>(DESTINATIONS.map((d) => [d, []]));
    for (const server of instances) {
      const subscriber = await stompClient(server.url);
      for (const destination of DESTINATIONS) {
        inboxes.get(destination)?.push(await subscribed(subscriber, destination));
      }
    }

    const publishers = await Promise.all(
      [instances[0], instances[1]].map((s) => stompClient(s!.url)),
    );
    const sends: Promise<void>[] = [];
    for (let seq = 0; seq < MESSAGES / 2; seq++) {
      publishers.forEach((publisher, p) => {
        const destination = DESTINATIONS[seq % DESTINATIONS.length] as string;
        const body = `p${p}-${seq}`;
        // Every tenth with a receipt: the rest go out without waiting, as fast as possible.
        if (seq % 10 === 9) sends.push(publishWithReceipt(publisher, { destination, body }));
        else publisher.publish({ destination, body, headers: { 'x-seq': String(seq) } });
      });
    }
    await Promise.all(sends);

    const perDestination = MESSAGES / DESTINATIONS.length;
    for (const [destination, list] of inboxes) {
      const seen = await Promise.all(
        list.map((inbox) => inbox.waitFor(perDestination, DELIVERY_TIMEOUT_MS)),
      );
      // Nothing more arrives later (exactly once).
      await sleep(300);
      const orders = seen.map((messages) => messages.map((m) => m.body));
      for (const order of orders) {
        expect(order).toHaveLength(perDestination);
        expect(new Set(order).size).toBe(perDestination);
        // Each publisher's messages keep the order it sent them in.
        for (const p of [0, 1]) {
          const own = order.filter((b) => b.startsWith(`p${p}-`)).map((b) => Number(b.slice(3)));
          expect(own, `${destination} from publisher ${p}`).toEqual([...own].sort((a, b) => a - b));
        }
      }
      // The same order, and the same message-ids, on every instance.
      expect(orders[1]).toEqual(orders[0]);
      expect(orders[2]).toEqual(orders[0]);
      const ids = seen.map((messages) => messages.map((m) => m.headers['message-id']));
      expect(ids[1]).toEqual(ids[0]);
      expect(ids[2]).toEqual(ids[0]);
      expect(new Set(ids[0]).size).toBe(perDestination);
      // User headers travel with the record.
      for (const m of seen[2] ?? []) {
        if (m.headers['x-seq'] !== undefined) expect(m.headers['x-seq']).toBe(m.body.slice(3));
      }
    }
  });

  it('reads a bridged record with a header without a value as an empty STOMP header, and the records after it', async () => {
    const bridge = uniqueName('stompbus-spec-nulls');
    const { instances } = await startCluster(1, { kafkaBridges: { [bridge]: '/topic/nulls' } });
    const inbox = await subscribed(await stompClient(instances[0]!.url), '/topic/nulls');
    // Kafka allows a header with no value; kafkajs cannot write one, Kafka's Java client can
    // (`headers.add(name, null)`): the Java client of the Kafka the tests run writes it.
    const { stdout } = await run(
      javaCommand(),
      [
        '-cp',
        `${kafkaLibsDir()}/*`,
        'spec/fixtures/NullHeaderProducer.java',
        kafkaBrokers.split(',')[0] as string,
        bridge,
      ],
      { cwd: ROOT, timeout: 60_000 },
    );
    expect(stdout.trim()).toBe('sent 3');
    const got = await inbox.waitFor(3, DELIVERY_TIMEOUT_MS);
    expect(got.map((m) => m.body)).toEqual(['first', 'with a null header', 'after it']);
    expect(got[1]?.headers['x-empty']).toBe('');
    expect(got[1]?.headers['x-set']).toBe('yes');
  });

  it('bridges a Kafka topic both ways: records reach every instance with their headers, SENDs become records', async () => {
    const bridge = uniqueName('stompbus-spec-prices');
    const { instances } = await startCluster(3, { kafkaBridges: { [bridge]: '/topic/prices' } });
    const inboxes: Inbox[] = [];
    for (const server of instances) {
      inboxes.push(await subscribed(await stompClient(server.url), '/topic/prices'));
    }

    const producer = await plainProducer();
    const records = Array.from({ length: 10 }, (_, i) => ({
      key: `sym-${i % 3}`,
      value: `price ${i}`,
      headers: { 'content-type': 'text/plain', 'x-source': 'plain-kafkajs', seq: String(i) },
    }));
    await producer.send({ topic: bridge, acks: -1, messages: records });

    const received = await Promise.all(
      inboxes.map((inbox) => inbox.waitFor(10, DELIVERY_TIMEOUT_MS)),
    );
    for (const messages of received) {
      expect(messages.map((m) => m.body)).toEqual(records.map((r) => r.value));
      messages.forEach((m, i) => {
        expect(m.headers['x-source']).toBe('plain-kafkajs');
        expect(m.headers['content-type']).toBe('text/plain');
        expect(m.headers.seq).toBe(String(i));
        expect(m.headers['kafka-key']).toBe(`sym-${i % 3}`);
        expect(m.headers['kafka-topic']).toBe(bridge);
        expect(m.headers['kafka-partition']).toBe('0');
        expect(m.headers['kafka-offset']).toBe(String(i));
        expect(m.headers['message-id']).toBe(`${bridge}-0-${i}`);
      });
    }

    // And back: a STOMP SEND to the bridged destination is a record in the Kafka topic.
    const sender = await stompClient(instances[2]!.url);
    await publishWithReceipt(sender, {
      destination: '/topic/prices',
      body: 'from stomp',
      headers: { 'x-origin': 'stomp', 'kafka-key': 'sym-9', 'content-type': 'text/plain' },
    });
    const [, , , , , , , , , , record] = await readTopic(bridge, 11);
    expect(record).toMatchObject({
      key: 'sym-9',
      value: 'from stomp',
      partition: 0,
      offset: '10',
      headers: { 'x-origin': 'stomp', 'content-type': 'text/plain' },
    });
    expect(record?.headers['kafka-key']).toBeUndefined();
    // ... and reaches the STOMP subscribers through Kafka too, one id everywhere.
    const echoed = await Promise.all(
      inboxes.map((inbox) => inbox.waitFor(11, DELIVERY_TIMEOUT_MS)),
    );
    const last = echoed.map((messages) => messages[10] as IMessage);
    for (const m of last) {
      expect(m.body).toBe('from stomp');
      expect(m.headers['x-origin']).toBe('stomp');
      expect(m.headers['kafka-key']).toBe('sym-9');
      expect(m.headers['kafka-offset']).toBe('10');
      expect(m.headers['message-id']).toBe(last[0]?.headers['message-id']);
    }
  });

  it('sends the RECEIPT for a SEND only once Kafka has acknowledged the record', async () => {
    const { instances, topic } = await startCluster(1);
    const admin = await plainAdmin();
    const client = await RawClient.ws(instances[0]!.url);
    await client.connect();
    const count = 20;
    for (let i = 0; i < count; i++) {
      client.send(`SEND\ndestination:/topic/receipts\nx-n:${i}\nreceipt:r${i}\n\nbody ${i}\0`);
      await client.receipt(`r${i}`);
      // Right after the RECEIPT the record is in the log (acks from all in-sync replicas).
      const offsets = await admin.fetchTopicOffsets(topic);
      expect(offsets.reduce((sum, o) => sum + Number(o.high), 0)).toBe(i + 1);
    }
    const records = await readTopic(topic, count);
    expect(records.map((r) => r.value)).toEqual(
      Array.from({ length: count }, (_, i) => `body ${i}`),
    );
    for (const r of records) {
      expect(r.key).toBe('/topic/receipts');
      // The packed record format: the message id, then the SEND's headers, in one record header.
      expect(Object.keys(r.headers)).toEqual(['stompbus-headers']);
      const [id, ...lines] = (r.headers['stompbus-headers'] ?? '').split('\n');
      expect(id).toMatch(/.+/);
      expect(lines).toContain(`x-n:${r.value.slice(5)}`);
    }
  });

  it('mixes instances writing --kafka-headers each and packed in one cluster: each reads the other, headers and ids intact', async () => {
    const topic = uniqueName('stompbus-spec-headers');
    const {
      instances: [older],
    } = await startCluster(1, { kafkaTopic: topic, kafkaHeaders: 'each' });
    const {
      instances: [newer],
    } = await startCluster(1, { kafkaTopic: topic });
    const inboxes: Inbox[] = [];
    for (const server of [older, newer]) {
      const subscriber = await stompClient(server!.url);
      inboxes.push(await subscribed(subscriber, '/topic/mixed'));
    }
    // (No backslash before a c or n: stompjs reads \\c back as \: and \\n as \ and a line break.)
    const odd = 'a:b\\x\nd\re ü';
    for (const [i, server] of [older, newer].entries()) {
      const publisher = await stompClient(server!.url);
      await publishWithReceipt(publisher, {
        destination: '/topic/mixed',
        body: `from ${i}`,
        headers: { 'x-odd': odd, 'x-from': String(i), 'content-type': 'text/plain' },
      });
    }
    const seen = await Promise.all(inboxes.map((inbox) => inbox.waitFor(2, DELIVERY_TIMEOUT_MS)));
    for (const messages of seen) {
      expect(messages.map((m) => m.body)).toEqual(['from 0', 'from 1']);
      for (const m of messages) {
        expect(m.headers['x-odd']).toBe(odd);
        expect(m.headers['x-from']).toBe(m.body.slice(5));
        expect(m.headers['content-type']).toBe('text/plain');
        expect(m.headers['stompbus-headers']).toBeUndefined();
        expect(m.headers['stompbus-message-id']).toBeUndefined();
      }
    }
    // One message-id per message, the same on both instances.
    expect(seen[1]?.map((m) => m.headers['message-id'])).toEqual(
      seen[0]?.map((m) => m.headers['message-id']),
    );
    const records = await readTopic(topic, 2);
    const byFrom = (r: (typeof records)[number]) => r.value.slice(5);
    const each = records.find((r) => byFrom(r) === '0');
    const packed = records.find((r) => byFrom(r) === '1');
    expect(each?.headers['x-odd']).toBe(odd);
    expect(each?.headers['stompbus-message-id']).toMatch(/.+/);
    expect(Object.keys(packed?.headers ?? {})).toEqual(['stompbus-headers']);
  });

  it('starts without Kafka, serves local queues (--queues local), and answers a topic SEND that waited past --kafka-send-timeout with an ERROR carrying the receipt-id', async () => {
    const deadPort = await closedPort();
    const started = Date.now();
    const log = new LogCapture();
    const server = await startServer({
      kafkaBrokers: `127.0.0.1:${deadPort}`,
      kafkaTopic: uniqueName('stompbus-spec-unreachable'),
      logger: log,
      kafkaSendTimeoutMs: 1_000,
      queues: 'local',
    });
    expect(Date.now() - started).toBeLessThan(10_000);
    const client = await RawClient.ws(server.url);
    await client.connect();
    client.send('SUBSCRIBE\nid:q\ndestination:/queue/local\n\n\0');
    client.send('SEND\ndestination:/queue/local\nreceipt:q1\n\nlocal work\0');
    await client.receipt('q1');
    const message = await client.next('MESSAGE');
    expect(bodyText(message)).toBe('local work');
    const sentAt = Date.now();
    client.send('SEND\ndestination:/topic/anything\nreceipt:t1\n\nnowhere\0');
    const error = await client.expectErrorAndClose(10_000);
    // It waited for Kafka first (an outage shorter than the timeout only delays the RECEIPT).
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(900);
    expect(getHeader(error, 'receipt-id')).toBe('t1');
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_CLUSTER_UNAVAILABLE');
    expect(bodyText(error)).toMatch(/Kafka did not take the message within 1000 ms/);
    expect(client.all('RECEIPT').map((f) => getHeader(f, 'receipt-id'))).toEqual(['q1']);
    // The operator is told, once per attempt rather than per SEND, and the SEND's refusal is a warning.
    expect(log.lines.find((l) => l.kafka === 'unreachable')).toMatchObject({
      level: 'warn',
      component: 'kafka',
      error: expect.stringContaining('ECONNREFUSED'),
    });
    expect(await log.waitFor((l) => l.event === 'frame.refused')).toMatchObject({
      code: 'STOMP_ERR_CLUSTER_UNAVAILABLE',
      command: 'SEND',
      destination: '/topic/anything',
    });
  });
});

/** Subscribes with a receipt (stompjs does not wait for SUBSCRIBE otherwise). */
async function subscribed(client: Client, destination: string): Promise<Inbox> {
  const inbox = new Inbox();
  const receipt = uniqueName('sub');
  const done = new Promise<void>((resolve) => client.watchForReceipt(receipt, () => resolve()));
  client.subscribe(destination, inbox.take, { receipt });
  await done;
  return inbox;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
