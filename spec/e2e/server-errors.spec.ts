import { describe, expect, it } from 'vitest';
import { LocalFanout } from '../../src/broker/local-fanout.js';
import type { Outgoing } from '../../src/broker/message.js';
import { getHeader } from '../../src/frame/index.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer } from '../helpers/server.js';
import { expectOthersUnaffected } from '../helpers/unaffected.js';

/** A fan-out that fails every publish, as a broken cluster link would. */
class FailingFanout extends LocalFanout {
  override publish(_message: Outgoing): Promise<void> {
    return Promise.reject(new Error('link down'));
  }
}

describe('server-side failures', () => {
  it('answers a SEND whose publish fails with ERROR carrying the receipt-id', async () => {
    const server = await startServer({ fanout: new FailingFanout() });
    const client = await RawClient.ws(server.url);
    await client.connect();
    client.send('SEND\ndestination:/topic/t\nreceipt:lost-1\n\nx\0');
    const error = await client.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_INTERNAL');
    expect(getHeader(error, 'receipt-id')).toBe('lost-1');
    expect(client.all('RECEIPT')).toHaveLength(0);
  });

  it('disconnects a topic subscriber holding too many unacknowledged messages', async () => {
    const server = await startServer({ maxPendingAcks: 2 });
    const client = await RawClient.ws(server.url);
    await client.connect();
    client.send('SUBSCRIBE\nid:1\ndestination:/topic/p\nack:client\n\n\0');
    for (let i = 0; i < 3; i++) client.send(`SEND\ndestination:/topic/p\n\n${i}\0`);
    const error = await client.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_SLOW_CONSUMER');
    expect(client.all('MESSAGE')).toHaveLength(2);
    await expectOthersUnaffected(server);
  });

  it('tells every client with an ERROR when the server stops', async () => {
    const server = await startServer();
    const a = await RawClient.ws(server.url);
    await a.connect();
    const b = await RawClient.tcp(server.tcpPort as number);
    await b.connect();
    const stopped = server.stop();
    for (const client of [a, b]) {
      expect(getHeader(await client.expectErrorAndClose(), 'message')).toBe('STOMP_ERR_SHUTDOWN');
    }
    await stopped;
  });
});
