import { describe, expect, it } from 'vitest';
import { getHeader } from '../../src/frame/index.js';
import { addressOf, clientIp } from '../../src/security/connection-limits.js';
import type { StompServer } from '../../src/server.js';
import {
  describeLatency,
  expectedIds,
  expectPacedUnaffected,
  pacedPair,
  rawClient,
  rawSubscriber,
  rawTcpFrom,
  receiptIds,
  sendFrames,
} from '../helpers/flood.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer } from '../helpers/server.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';
import { expectOthersUnaffected } from '../helpers/unaffected.js';
import { stompSocket, upgrade } from '../helpers/upgrade.js';

const TOO_MANY = 'STOMP_ERR_TOO_MANY_CONNECTIONS';

/** A raw TCP connection is refused: ERROR with the code, then the close. */
async function expectTcpRefused(client: RawClient): Promise<void> {
  const error = await client.expectErrorAndClose();
  expect(getHeader(error, 'message')).toBe(TOO_MANY);
}

/** Waits until the server has given back the slots of closed connections. */
async function untilAdmitted(server: StompServer, address = '127.0.0.1'): Promise<void> {
  await expect.poll(() => server.broker.admits(address), { timeout: 5000 }).toBe(true);
}

describe('--max-connections', () => {
  it('refuses past the total: WebSocket upgrades get 503, TCP gets ERROR then close; open sessions go on; a close frees a slot', async () => {
    const server = await startServer({ maxConnections: 2 });
    const raw = await rawClient(server, 'ws');
    const stomp = await stompClient(server.tcpPort as number);

    const refused = await upgrade(server.url);
    expect(refused).toEqual({ status: 503, body: 'stompbus: too many connections\n' });
    await expect(stompClient(server.url)).rejects.toThrow(/WebSocket failed/);
    await expectTcpRefused(await RawClient.tcp(server.tcpPort as number));
    await expect(stompClient(server.tcpPort as number)).rejects.toThrow(`ERROR ${TOO_MANY}`);
    // No session was made for any of them.
    expect(server.sessions.size).toBe(2);

    // The two admitted clients still talk to each other.
    const inbox = new Inbox();
    stomp.subscribe('/topic/still', inbox.take, { receipt: 'sub' });
    await new Promise<void>((resolve) => stomp.watchForReceipt('sub', () => resolve()));
    raw.send('SEND\ndestination:/topic/still\n\nhello\0');
    expect((await inbox.waitFor(1))[0]?.body).toBe('hello');

    raw.destroy();
    await untilAdmitted(server);
    await expectOthersUnaffected(server, 'ws');
    await untilAdmitted(server);
    await expectOthersUnaffected(server, 'tcp');
  });
});

describe('--max-connections-per-ip', () => {
  it('refuses a third connection from 127.0.0.1 over both transports while 127.0.0.2 still connects', async () => {
    const server = await startServer({ maxConnectionsPerIp: 2 });
    const first = await rawClient(server, 'tcp');
    const second = await stompClient(server.url);

    expect((await upgrade(server.url)).status).toBe(503);
    await expectTcpRefused(await rawTcpFrom(server, '127.0.0.1'));
    await expect(stompClient(server.tcpPort as number)).rejects.toThrow(`ERROR ${TOO_MANY}`);
    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d: the same client.
    expect(server.broker.admits('::ffff:127.0.0.1')).toBe(false);

    // Another address has its own count.
    expect(server.broker.admits('127.0.0.2')).toBe(true);
    const other = await stompClient(server.url, {
      webSocketFactory: () => stompSocket(server.url, { localAddress: '127.0.0.2' }),
    });
    const otherTcp = await rawTcpFrom(server, '127.0.0.2');
    await otherTcp.connect();
    expect((await upgrade(server.url, { localAddress: '127.0.0.2' })).status).toBe(503);
    expect([...server.sessions].map((s) => addressOf(s.connection.remoteAddress)).sort()).toEqual([
      '127.0.0.1',
      '127.0.0.1',
      '127.0.0.2',
      '127.0.0.2',
    ]);

    // Clients of both addresses exchange messages as before.
    const inbox = new Inbox();
    other.subscribe('/topic/mixed', inbox.take, { receipt: 'sub' });
    await new Promise<void>((resolve) => other.watchForReceipt('sub', () => resolve()));
    first.send('SEND\ndestination:/topic/mixed\n\nfrom .1\0');
    await publishWithReceipt(second, { destination: '/topic/mixed', body: 'from .1 too' });
    expect((await inbox.waitFor(2)).map((m) => m.body)).toEqual(['from .1', 'from .1 too']);

    first.destroy();
    await untilAdmitted(server);
    await expectOthersUnaffected(server, 'tcp');
    await untilAdmitted(server);
    await expectOthersUnaffected(server, 'ws');
  });

  it('counts a client address without its port, IPv4-mapped IPv6 as IPv4', () => {
    expect(addressOf('127.0.0.1:50123')).toBe('127.0.0.1');
    expect(addressOf('::1:50123')).toBe('::1');
    expect(addressOf('::ffff:10.0.0.7:443')).toBe('::ffff:10.0.0.7');
    // A stream without a peer address is named by its transport.
    expect(addressOf('tcp')).toBe('tcp');
    expect(clientIp('::ffff:10.0.0.7')).toBe('10.0.0.7');
    expect(clientIp('::FFFF:10.0.0.7')).toBe('10.0.0.7');
    expect(clientIp('2001:DB8::1')).toBe('2001:db8::1');
  });
});

describe('--max-frames-per-second', () => {
  it('slows a raw TCP flooder by backpressure: 2,000 SENDs at 500/s take ~3 s, every RECEIPT comes in order, never disconnected; others keep receiving', async () => {
    const server = await startServer({ maxFramesPerSecond: 500 });
    const watcher = await rawSubscriber(server, 'ws', '/topic/flood');
    const paced = await pacedPair(server, 'ws');
    const flooder = await rawClient(server, 'tcp');

    const started = Date.now();
    flooder.send(sendFrames(2000, '/topic/flood', 'r'));
    const written = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // The bucket's 500 (it starts full) and 500/s since, give or take a slice (~80 frames).
    const seconds = (Date.now() - started) / 1000;
    expect(flooder.all('RECEIPT').length).toBeLessThan(500 + 500 * seconds + 100);
    await flooder.receipt('r1999', 15_000);
    const elapsed = Date.now() - started;
    const others = await paced.stop(written);

    // (2,000 − the 500 of the full bucket) ÷ 500/s = 3 s, less the slack of one slice.
    expect(elapsed).toBeGreaterThan(2700);
    expect(receiptIds(flooder)).toEqual(expectedIds(2000, 'r'));
    expect(flooder.all('ERROR')).toEqual([]);
    expect(flooder.isClosed).toBe(false);
    const flood = await watcher.messages(2000);
    expect(flood.map((m) => m.body.toString())).toEqual(expectedIds(2000, ''));
    console.log(
      `[abuse-limits] TCP flood: ${elapsed} ms; paced`,
      describeLatency(others.latencies),
    );
    expectPacedUnaffected(others);
    await expectOthersUnaffected(server, 'tcp');
  });

  it('slows a raw WebSocket flooder, one frame per message and many frames in one message alike', async () => {
    const server = await startServer({ maxFramesPerSecond: 1000 });
    const paced = await pacedPair(server, 'tcp');
    const flooder = await rawClient(server, 'ws');

    const started = Date.now();
    for (let i = 0; i < 1500; i++) flooder.send(sendFrames(1, '/topic/flood', 'w', i));
    // 1,000 frames in one WebSocket message: parsed a slice at a time.
    flooder.send(sendFrames(1000, '/topic/flood', 'w', 1500));
    const written = Date.now();
    await flooder.receipt('w2499', 15_000);
    const elapsed = Date.now() - started;
    const others = await paced.stop(written);

    expect(elapsed).toBeGreaterThan(1300);
    expect(receiptIds(flooder)).toEqual(expectedIds(2500, 'w'));
    expect(flooder.isClosed).toBe(false);
    console.log(`[abuse-limits] WS flood: ${elapsed} ms; paced`, describeLatency(others.latencies));
    expectPacedUnaffected(others);
    await expectOthersUnaffected(server, 'ws');
  });

  it('slows the real stompjs client over WebSocket and TCP, each connection on its own budget, and drops nothing', async () => {
    const server = await startServer({ maxFramesPerSecond: 500 });
    const watcher = await rawSubscriber(server, 'tcp', '/topic/stompjs-flood');
    const clients = await Promise.all([
      stompClient(server.url),
      stompClient(server.tcpPort as number),
    ]);
    const closes: string[] = [];
    for (const [i, client] of clients.entries()) {
      client.onWebSocketClose = () => closes.push(`client ${i} closed`);
      client.onStompError = (frame) => closes.push(`client ${i}: ${frame.headers.message}`);
    }

    const started = Date.now();
    const flood = async (client: (typeof clients)[0], name: string) => {
      const receipts: Promise<void>[] = [];
      for (let i = 0; i < 1000; i++) {
        const receipt = `${name}-${i}`;
        receipts.push(new Promise((resolve) => client.watchForReceipt(receipt, () => resolve())));
        client.publish({
          destination: '/topic/stompjs-flood',
          body: receipt,
          headers: { receipt },
        });
      }
      await Promise.all(receipts);
      return Date.now() - started;
    };
    const [wsMs, tcpMs] = await Promise.all([flood(clients[0], 'ws'), flood(clients[1], 'tcp')]);

    // Each: (1,000 + CONNECT − the 500 of the full bucket) ÷ 500/s ≈ 1 s, at the same time.
    expect(Math.min(wsMs, tcpMs)).toBeGreaterThan(800);
    // One budget for both would take (2,002 − 500) ÷ 500/s ≈ 3 s.
    expect(Math.max(wsMs, tcpMs)).toBeLessThan(2600);
    expect(closes).toEqual([]);
    const got = (await watcher.messages(2000)).map((m) => m.body.toString());
    expect(got.filter((b) => b.startsWith('ws-'))).toEqual(expectedIds(1000, 'ws-'));
    expect(got.filter((b) => b.startsWith('tcp-'))).toEqual(expectedIds(1000, 'tcp-'));
    await expectOthersUnaffected(server, 'tcp');
  });

  it('delivers frames larger than what is parsed at a time whole and in order', async () => {
    const server = await startServer({ maxFramesPerSecond: 100 });
    const watcher = await rawSubscriber(server, 'ws', '/topic/big');
    const flooder = await rawClient(server, 'tcp');
    // 10 KiB bodies: every frame spans the 4 KiB slices the throttle parses at a time.
    const body = (i: number) => `${i}:`.padEnd(10 * 1024, String.fromCharCode(97 + (i % 26)));
    let wire = '';
    for (let i = 0; i < 150; i++)
      wire += `SEND\ndestination:/topic/big\nreceipt:b${i}\n\n${body(i)}\0`;
    flooder.send(wire);
    await flooder.receipt('b149', 10_000);
    expect(receiptIds(flooder)).toEqual(expectedIds(150, 'b'));
    const got = await watcher.messages(150);
    expect(got.map((m) => m.body.toString())).toEqual(
      Array.from({ length: 150 }, (_, i) => body(i)),
    );
  });

  it('does not take a held-back client for a silent one (heart-beats negotiated)', async () => {
    const server = await startServer({ maxFramesPerSecond: 50, heartbeat: [300, 300] });
    const flooder = await rawClient(server, 'tcp', { 'heart-beat': '300,300' });
    // Heart-beats queue behind the flood like everything the client sends.
    const beats = setInterval(() => flooder.send('\n'), 100);
    try {
      flooder.send(sendFrames(200, '/topic/hb-flood', 'h'));
      // ~3 s in all; a 4 KiB slice holds ~85 of these frames, so a single pause to pay for
      // one lasts up to 1.7 s: well over the 600 ms the server tolerates between heart-beats.
      await flooder.receipt('h199', 10_000);
      expect(receiptIds(flooder)).toEqual(expectedIds(200, 'h'));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(flooder.all('ERROR')).toEqual([]);
      expect(flooder.isClosed).toBe(false);
    } finally {
      clearInterval(beats);
    }
  });
});
