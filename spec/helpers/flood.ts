import { connect as netConnect } from 'node:net';
import { expect } from 'vitest';
import { getHeader } from '../../src/frame/index.js';
import type { StompServer } from '../../src/server.js';
import { RawClient } from './raw-client.js';
import { Inbox, stompClient } from './stomp-client.js';

/** `count` SEND frames to `destination`, bodies `0`, `1`…, receipts `<prefix>0`, `<prefix>1`…. */
export function sendFrames(count: number, destination: string, prefix: string, from = 0): Buffer {
  let wire = '';
  for (let i = from; i < from + count; i++) {
    wire += `SEND\ndestination:${destination}\nreceipt:${prefix}${i}\n\n${i}\0`;
  }
  return Buffer.from(wire);
}

/** The receipt-ids a client got, in the order it got them. */
export function receiptIds(client: RawClient): string[] {
  return client.all('RECEIPT').map((f) => getHeader(f, 'receipt-id') as string);
}

/** `<prefix>0` … `<prefix>{count-1}`: what {@link sendFrames} asks for, in order. */
export function expectedIds(count: number, prefix: string): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

/** A raw client that has CONNECTed over `over`, optionally from another local address. */
export async function rawClient(
  server: StompServer,
  over: 'ws' | 'tcp',
  headers: Record<string, string> = {},
): Promise<RawClient> {
  const client =
    over === 'ws' ? await RawClient.ws(server.url) : await RawClient.tcp(server.tcpPort as number);
  await client.connect(headers);
  return client;
}

/** A raw TCP connection from `localAddress` (Linux: 127.0.0.2 is loopback too), not CONNECTed yet. */
export async function rawTcpFrom(server: StompServer, localAddress: string): Promise<RawClient> {
  const socket = netConnect({ port: server.tcpPort as number, host: '127.0.0.1', localAddress });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return RawClient.over(socket);
}

/** A raw subscriber to `destination` (SUBSCRIBE receipted, so it is in place). */
export async function rawSubscriber(
  server: StompServer,
  over: 'ws' | 'tcp',
  destination: string,
): Promise<RawClient> {
  const client = await rawClient(server, over);
  client.send(`SUBSCRIBE\nid:s\ndestination:${destination}\nreceipt:subscribed\n\n\0`);
  await client.receipt('subscribed');
  return client;
}

/** What a {@link pacedPair} saw. */
export interface Paced {
  sent: number;
  received: number;
  /** Send to receipt by the subscriber, ms, in arrival order (those sent since `since`). */
  latencies: number[];
  /** Whether the subscriber got the messages in the order they were sent. */
  inOrder: boolean;
}

/**
 * Another client's traffic beside a flood: a raw TCP publisher sending one
 * message every `everyMs` to a stompjs subscriber over `over`, each message
 * stamped with its send time.
 */
export async function pacedPair(server: StompServer, over: 'ws' | 'tcp', everyMs = 20) {
  const destination = `/topic/paced-${over}`;
  const subscriber = await stompClient(over === 'ws' ? server.url : (server.tcpPort as number));
  const inbox = new Inbox();
  const latencies: Array<[sentAt: number, ms: number]> = [];
  const order: number[] = [];
  await new Promise<void>((resolve) => {
    subscriber.watchForReceipt('paced-sub', () => resolve());
    subscriber.subscribe(
      destination,
      (message) => {
        const sentAt = Number(message.headers['x-sent']);
        latencies.push([sentAt, Date.now() - sentAt]);
        order.push(Number(message.body));
        inbox.take(message);
      },
      { receipt: 'paced-sub' },
    );
  });
  const publisher = await rawClient(server, 'tcp');
  let sent = 0;
  const timer = setInterval(() => {
    publisher.send(`SEND\ndestination:${destination}\nx-sent:${Date.now()}\n\n${sent++}\0`);
  }, everyMs);
  return {
    /**
     * Stops publishing, waits for the last message, and tells what was seen;
     * latencies of the messages sent from `since` on (a test that wrote its
     * flood in one go held up its own timers meanwhile, not the server).
     */
    async stop(since = 0): Promise<Paced> {
      clearInterval(timer);
      await inbox.waitFor(sent, 5000);
      publisher.destroy();
      const inOrder = order.every((n, i) => n === i);
      const kept = latencies.filter(([at]) => at >= since).map(([, ms]) => ms);
      return { sent, received: inbox.messages.length, latencies: kept, inOrder };
    },
  };
}

/** The largest of the latencies and their 99th percentile, for the log. */
export function describeLatency(latencies: number[]): { max: number; p99: number; p50: number } {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { max: sorted[sorted.length - 1] ?? 0, p99: at(0.99), p50: at(0.5) };
}

/**
 * Checks that the paced pair kept going beside the flood: everything, in
 * order, typically at once. Bounds are loose: server and clients share this
 * process and a busy machine (bench/load's `flood` scenario measures it).
 */
export function expectPacedUnaffected(paced: Paced): void {
  expect(paced.sent).toBeGreaterThan(20);
  expect(paced.received).toBe(paced.sent);
  expect(paced.inOrder).toBe(true);
  const { p50, max } = describeLatency(paced.latencies);
  expect(p50).toBeLessThan(25);
  expect(max).toBeLessThan(1000);
}
