/**
 * "Acked means gone" (issue 14) in memory: with a durable log that records
 * consumption asynchronously (as Kafka does), the RECEIPT of an ACK, a NACK
 * that dead-letters, a COMMIT of ACKs and a DISCONNECT after `auto`
 * deliveries waits until the log has the records, in frame order, and a
 * record that fails is an ERROR with the frame's receipt-id. The embedded
 * log records nothing and answers at once (spec/session/session.spec.ts).
 */
import { describe, expect, it } from 'vitest';
import { LocalFanout } from '../../src/broker/local-fanout.js';
import type { Message } from '../../src/broker/message.js';
import type { Fanout } from '../../src/broker/seams.js';
import { StompError } from '../../src/errors.js';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import type { StompBroker } from '../../src/stomp-broker.js';
import { type MemoryClient, memoryClient, testBroker, waitUntil } from '../helpers/duplex-pair.js';

const USERS = new Map([
  ['alice', 'a-secret'],
  ['bob', 'b-secret'],
]);

/** A consumption handed to the log, and what settles its record. */
interface Recording {
  readonly message: Message;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** The embedded fan-out, but with a log whose records are durable only when the spec says so. */
function slowLog(): { fanout: Fanout; records: Recording[] } {
  const local = new LocalFanout();
  const records: Recording[] = [];
  const fanout: Fanout = {
    bus: local.bus,
    registry: local.registry,
    log: {
      consumed: (message) =>
        new Promise<void>((resolve, reject) => records.push({ message, resolve, reject })),
      coveredFrom: (destination, epoch) => local.coveredFrom(destination, epoch),
    },
    ready: true,
    start: (sink) => local.start(sink),
    stop: () => local.stop(),
  };
  return { fanout, records };
}

const receiptIds = (client: MemoryClient) =>
  client.all('RECEIPT').map((r) => getHeader(r, 'receipt-id'));

async function bob(broker: StompBroker): Promise<MemoryClient> {
  const client = memoryClient(broker);
  await client.connect({ login: 'bob', passcode: 'b-secret' });
  return client;
}

/** Subscribes to bob's inbox in `ack` mode and takes the `n` messages waiting there. */
async function inbox(client: MemoryClient, ack: string, n: number): Promise<Frame[]> {
  client.send(`SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nack:${ack}\nreceipt:s\n\n\0`);
  await client.receipt('s');
  return client.messages(n, 'in');
}

let pings = 0;

/**
 * Waits until every frame sent before now was handled: a MESSAGE goes out
 * while it is handled, a RECEIPT may wait behind a pending one.
 */
async function handled(client: MemoryClient): Promise<void> {
  const body = `ping ${++pings}`;
  client.send(`SUBSCRIBE\nid:${body}\ndestination:/topic/${pings}\n\n\0`);
  client.send(`SEND\ndestination:/topic/${pings}\n\n${body}\0`);
  await waitUntil(() => client.all('MESSAGE').some((m) => bodyText(m) === body), 5000, body);
}

describe('the RECEIPT of an ACK means the consumption is durable', () => {
  it('sends the RECEIPTs of ACKs only once the log has their records, in frame order', async () => {
    const { fanout, records } = slowLog();
    const broker = testBroker({ users: USERS, fanout });
    for (let i = 0; i < 2; i++) await broker.sendToUser('bob', '/queue/inbox', `m${i}`);
    const client = await bob(broker);
    const [m0, m1] = await inbox(client, 'client-individual', 2);
    client.send(`ACK\nid:${getHeader(m0 as Frame, 'ack')}\nreceipt:a0\n\n\0`);
    client.send(`ACK\nid:${getHeader(m1 as Frame, 'ack')}\nreceipt:a1\n\n\0`);
    client.send('UNSUBSCRIBE\nid:in\nreceipt:u\n\n\0');
    await handled(client);
    expect(records.map((r) => Buffer.from(r.message.body).toString())).toEqual(['m0', 'm1']);
    // Gone here at once; the RECEIPTs wait for the records.
    expect(broker.waitingFor('bob')).toBe(0);
    expect(receiptIds(client)).toEqual(['s']);
    records[1]?.resolve();
    await handled(client);
    expect(receiptIds(client)).toEqual(['s']);
    records[0]?.resolve();
    await client.receipt('u');
    expect(receiptIds(client)).toEqual(['s', 'a0', 'a1', 'u']);
    expect(client.all('ERROR')).toEqual([]);
  });

  it('answers an ACK whose consumption could not be recorded with ERROR naming its receipt-id, and no later RECEIPT', async () => {
    const { fanout, records } = slowLog();
    const broker = testBroker({ users: USERS, fanout });
    await broker.sendToUser('bob', '/queue/inbox', 'm0');
    const client = await bob(broker);
    const [m0] = await inbox(client, 'client-individual', 1);
    client.send(`ACK\nid:${getHeader(m0 as Frame, 'ack')}\nreceipt:a0\n\n\0`);
    client.send('UNSUBSCRIBE\nid:in\nreceipt:u\n\n\0');
    await waitUntil(() => records.length === 1, 5000, 'the record');
    records[0]?.reject(new StompError('STOMP_ERR_CLUSTER_UNAVAILABLE', { detail: 'not recorded' }));
    const error = await client.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_CLUSTER_UNAVAILABLE');
    expect(getHeader(error, 'receipt-id')).toBe('a0');
    expect(receiptIds(client)).toEqual(['s']);
  });

  it('makes a client-mode ACK wait for the records of every message it acknowledges', async () => {
    const { fanout, records } = slowLog();
    const broker = testBroker({ users: USERS, fanout });
    for (let i = 0; i < 3; i++) await broker.sendToUser('bob', '/queue/inbox', `m${i}`);
    const client = await bob(broker);
    const got = await inbox(client, 'client', 3);
    client.send(`ACK\nid:${getHeader(got[2] as Frame, 'ack')}\nreceipt:a\n\n\0`);
    await handled(client);
    expect(records).toHaveLength(3);
    records[0]?.resolve();
    records[2]?.resolve();
    await handled(client);
    expect(receiptIds(client)).toEqual(['s']);
    records[1]?.resolve();
    await client.receipt('a');
  });

  it('makes a COMMIT wait for the records of the ACKs in its transaction', async () => {
    const { fanout, records } = slowLog();
    const broker = testBroker({ users: USERS, fanout });
    for (let i = 0; i < 2; i++) await broker.sendToUser('bob', '/queue/inbox', `m${i}`);
    const client = await bob(broker);
    const got = await inbox(client, 'client-individual', 2);
    client.send('BEGIN\ntransaction:t\n\n\0');
    for (const m of got) client.send(`ACK\nid:${getHeader(m, 'ack')}\ntransaction:t\n\n\0`);
    await handled(client);
    // Nothing applies before the COMMIT.
    expect(records).toHaveLength(0);
    client.send('COMMIT\ntransaction:t\nreceipt:c\n\n\0');
    await handled(client);
    expect(records).toHaveLength(2);
    records[0]?.resolve();
    await handled(client);
    expect(receiptIds(client)).toEqual(['s']);
    records[1]?.reject(new StompError('STOMP_ERR_CLUSTER_UNAVAILABLE'));
    const error = await client.expectErrorAndClose();
    expect(getHeader(error, 'receipt-id')).toBe('c');
  });

  it('makes the RECEIPT of a NACK that dead-letters wait for the record of its consumption', async () => {
    const { fanout, records } = slowLog();
    const broker = testBroker({ users: USERS, fanout, maxDeliveries: 1 });
    await broker.sendToUser('bob', '/queue/inbox', 'm0');
    const client = await bob(broker);
    const [m0] = await inbox(client, 'client-individual', 1);
    client.send(`NACK\nid:${getHeader(m0 as Frame, 'ack')}\nreceipt:n\n\n\0`);
    await handled(client);
    expect(records.map((r) => r.message.destination)).toEqual(['/user/bob/queue/inbox']);
    expect(receiptIds(client)).toEqual(['s']);
    records[0]?.resolve();
    await client.receipt('n');
  });

  it('sends the DISCONNECT RECEIPT of an auto subscriber only once what it consumed is recorded', async () => {
    const { fanout, records } = slowLog();
    const broker = testBroker({ users: USERS, fanout });
    for (let i = 0; i < 3; i++) await broker.sendToUser('bob', '/queue/inbox', `m${i}`);
    const client = await bob(broker);
    await inbox(client, 'auto', 3);
    expect(records).toHaveLength(3);
    client.send('DISCONNECT\nreceipt:bye\n\n\0');
    records[0]?.resolve();
    records[1]?.resolve();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(receiptIds(client)).toEqual(['s']);
    expect(client.isClosed).toBe(false);
    records[2]?.resolve();
    await client.closed;
    expect(receiptIds(client)).toEqual(['s', 'bye']);
  });

  it('offers a session whose DISCONNECT waits no more queue messages: they wait for the next session', async () => {
    const { fanout, records } = slowLog();
    const broker = testBroker({ users: USERS, fanout });
    await broker.sendToUser('bob', '/queue/inbox', 'm0');
    const client = await bob(broker);
    await inbox(client, 'auto', 1);
    client.send('DISCONNECT\nreceipt:bye\n\n\0');
    // Handled (the frame arrives in a later turn), its RECEIPT waiting for the record.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(client.isClosed).toBe(false);
    await broker.sendToUser('bob', '/queue/inbox', 'later');
    expect(broker.waitingFor('bob')).toBe(1);
    records[0]?.resolve();
    await client.closed;
    expect(client.all('MESSAGE').map(bodyText)).toEqual(['m0']);
    expect(receiptIds(client)).toEqual(['s', 'bye']);
    expect(records).toHaveLength(1);
    const next = await bob(broker);
    expect((await inbox(next, 'client', 1)).map(bodyText)).toEqual(['later']);
  });

  it('answers a DISCONNECT with ERROR naming its receipt-id when a consumption of its auto deliveries was not recorded', async () => {
    const { fanout, records } = slowLog();
    const broker = testBroker({ users: USERS, fanout });
    await broker.sendToUser('bob', '/queue/inbox', 'm0');
    const client = await bob(broker);
    await inbox(client, 'auto', 1);
    records[0]?.reject(new StompError('STOMP_ERR_CLUSTER_UNAVAILABLE'));
    client.send('DISCONNECT\nreceipt:bye\n\n\0');
    const error = await client.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_CLUSTER_UNAVAILABLE');
    expect(getHeader(error, 'receipt-id')).toBe('bye');
  });
});

describe('a user-queue SUBSCRIBE waits for what the bus must read first (read-your-writes)', () => {
  it('holds the SUBSCRIBE, its RECEIPT and a SEND behind it until the bus has read up to it, then delivers once', async () => {
    const local = new LocalFanout();
    let reached!: () => void;
    const asked: string[] = [];
    const published: string[] = [];
    const fanout: Fanout = {
      bus: {
        publish: (message) => {
          published.push(message.destination);
          return local.publish(message);
        },
        reach: (destination) => {
          asked.push(destination);
          return new Promise<void>((resolve) => {
            reached = resolve;
          });
        },
      },
      log: local.log,
      registry: local.registry,
      ready: true,
      start: (sink) => local.start(sink),
      stop: () => local.stop(),
    };
    const broker = testBroker({ users: USERS, fanout });
    await broker.sendToUser('bob', '/queue/inbox', 'before');
    published.length = 0;
    const client = await bob(broker);
    client.send(
      'SUBSCRIBE\nid:in\ndestination:/user/queue/inbox\nreceipt:s\n\n\0' +
        'SEND\ndestination:/user/bob/queue/inbox\nreceipt:p\n\nafter\0',
    );
    await waitUntil(() => asked.length === 1, 5000, 'the reach');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(asked).toEqual(['/user/bob/queue/inbox']);
    expect(client.all('MESSAGE')).toEqual([]);
    expect(published).toEqual([]);
    expect(receiptIds(client)).toEqual([]);
    reached();
    await client.receipt('p');
    expect(receiptIds(client)).toEqual(['s', 'p']);
    expect(client.all('MESSAGE').map(bodyText)).toEqual(['before', 'after']);
  });
});
