/**
 * `--max-pending-sends` over a real TCP socket: the kernel hands a fast client's frames and
 * its FIN over in the same reads, which an in-memory stream does not. The bus stands in for
 * Kafka by answering each SEND 30 ms later (in cluster mode a SEND waits for Kafka's
 * acknowledgement; the embedded broker answers at once and never reaches the bound).
 */
import { type AddressInfo, connect, createServer } from 'node:net';
import { expect, it } from 'vitest';
import type { Outgoing } from '../../src/broker/message.js';
import { fanoutAnswering, testBroker, waitUntil } from '../helpers/duplex-pair.js';

it('publishes every SEND a client wrote past --max-pending-sends before it half-closed (fire and forget)', async () => {
  const published: Outgoing[] = [];
  const answerLater = () => new Promise<void>((resolve) => setTimeout(resolve, 30));
  const broker = testBroker({
    fanout: fanoutAnswering(answerLater, published),
    maxPendingSends: 4,
  });
  const server = createServer((socket) => broker.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const socket = connect(port, '127.0.0.1');
    socket.resume();
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('CONNECT\naccept-version:1.2\nhost:x\n\n\0');
    await new Promise((resolve) => setTimeout(resolve, 50));
    let wire = '';
    for (let i = 0; i < 20; i++) wire += `SEND\ndestination:/topic/and-gone\n\n${i}\0`;
    // The frames and the end of the client's side in one go, as `… | nc host port` does.
    socket.end(wire);
    await new Promise((resolve) => socket.once('close', resolve));
    await waitUntil(() => published.length === 20, 5000, 'every publish');
    expect(published.map((m) => String(m.body))).toEqual(
      Array.from({ length: 20 }, (_, i) => `${i}`),
    );
  } finally {
    server.close();
  }
});
