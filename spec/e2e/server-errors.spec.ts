import { describe, expect, it } from 'vitest';
import { LocalFanout } from '../../src/broker/local-fanout.js';
import type { Outgoing } from '../../src/broker/message.js';
import { getHeader } from '../../src/frame/index.js';
import { LogCapture } from '../helpers/log.js';
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
  it('answers a SEND whose publish fails with ERROR carrying the receipt-id, and logs the stack', async () => {
    const log = new LogCapture();
    const server = await startServer({ fanout: new FailingFanout(), logger: log });
    const client = await RawClient.ws(server.url);
    await client.connect();
    client.send('SEND\ndestination:/topic/t\nreceipt:lost-1\n\nx\0');
    const error = await client.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_INTERNAL');
    expect(getHeader(error, 'receipt-id')).toBe('lost-1');
    expect(client.all('RECEIPT')).toHaveLength(0);
    // The bug's stack goes to the log (at error level), not to the console.
    await log.waitFor((l) => l.event === 'connection.close');
    const [internal, ...others] = log.lines.filter((l) => l.level === 'error');
    expect(others).toEqual([]);
    expect(internal).toMatchObject({
      msg: 'internal error',
      event: 'frame.refused',
      code: 'STOMP_ERR_INTERNAL',
      command: 'SEND',
      destination: '/topic/t',
    });
    const err = internal?.err as Error;
    expect(err.message).toBe('link down');
    expect(err.stack).toContain('FailingFanout.publish');
    expect(log.events('connection.close')[0]).toMatchObject({
      reason: 'error',
      code: 'STOMP_ERR_INTERNAL',
    });
  });

  it('disconnects a topic subscriber holding too many unacknowledged messages', async () => {
    const log = new LogCapture();
    const server = await startServer({ maxPendingAcks: 2, logger: log });
    const client = await RawClient.ws(server.url);
    await client.connect();
    client.send('SUBSCRIBE\nid:1\ndestination:/topic/p\nack:client\n\n\0');
    for (let i = 0; i < 3; i++) client.send(`SEND\ndestination:/topic/p\n\n${i}\0`);
    const error = await client.expectErrorAndClose();
    expect(getHeader(error, 'message')).toBe('STOMP_ERR_SLOW_CONSUMER');
    expect(client.all('MESSAGE')).toHaveLength(2);
    // Found while handling the client's own SEND, but no refusal of it: the connection failed.
    expect(log.lines.filter((l) => l.level === 'warn')).toEqual([
      expect.objectContaining({ msg: 'connection failed', code: 'STOMP_ERR_SLOW_CONSUMER' }),
    ]);
    expect(log.lines.find((l) => l.level === 'warn')?.command).toBeUndefined();
    await expectOthersUnaffected(server);
  });

  it('tells every client with an ERROR when the server stops', async () => {
    const log = new LogCapture();
    const server = await startServer({ logger: log });
    const a = await RawClient.ws(server.url);
    await a.connect();
    const b = await RawClient.tcp(server.tcpPort as number);
    await b.connect();
    const stopped = server.stop();
    for (const client of [a, b]) {
      expect(getHeader(await client.expectErrorAndClose(), 'message')).toBe('STOMP_ERR_SHUTDOWN');
    }
    await stopped;
    // Closed by the shutdown: no warning, one close line each.
    expect(log.lines.filter((l) => l.level !== 'info')).toEqual([]);
    expect(log.events('connection.close').map((l) => [l.reason, l.code])).toEqual([
      ['shutdown', 'STOMP_ERR_SHUTDOWN'],
      ['shutdown', 'STOMP_ERR_SHUTDOWN'],
    ]);
  });
});
