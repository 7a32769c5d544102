import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startServer } from '../helpers/server.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';
import { missingPython, PYTHON, skipWithout } from '../helpers/tools.js';

const skip = skipWithout('python.spec.ts', missingPython());
const run = promisify(execFile);
const USERS = new Map([
  ['py', 'secret'],
  ['observer', 'watch'],
]);
const OBSERVER = { connectHeaders: { login: 'observer', passcode: 'watch' } };

interface Event {
  event: string;
  [field: string]: unknown;
}

/** Runs examples/python/demo.py to the end and returns its JSON lines. */
async function demo(args: string[]): Promise<Event[]> {
  const argv = ['examples/python/demo.py', '--login', 'py', '--passcode', 'secret', ...args];
  const result = await run(PYTHON, argv, { timeout: 30_000 }).catch(
    (error: { stdout?: string }) => {
      throw new Error(`demo.py failed: ${String(error)}\n${error.stdout ?? ''}`);
    },
  );
  return result.stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Event);
}

/** What demo.py received on one subscription, as `body` or `body (redelivered)`. */
function received(events: Event[], subscription: string): string[] {
  return events
    .filter((e) => e.event === 'received' && e.subscription === subscription)
    .map((e) => `${String(e.body)}${e.redelivered ? ' (redelivered)' : ''}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(skip)('stomp.py (Debian python3-stomp) against stompbus', () => {
  for (const transport of ['tcp', 'ws'] as const) {
    it(`connects, subscribes, sends, acks and uses transactions over ${transport === 'tcp' ? 'TCP' : 'WebSocket'}`, async () => {
      const server = await startServer({ users: USERS });
      const prefix = `py-${transport}`;
      // A stompjs client on the side sees the chat topic, and fills the inbox queue first.
      const observer = await stompClient(server.url, OBSERVER);
      const chat = new Inbox();
      observer.subscribe(`/topic/${prefix}.chat`, chat.take);
      for (const n of [1, 2, 3]) {
        await publishWithReceipt(observer, {
          destination: `/queue/${prefix}.inbox`,
          body: `in-${n}`,
        });
      }

      const where =
        transport === 'tcp' ? ['--tcp', `127.0.0.1:${server.tcpPort}`] : ['--ws', server.url];
      const events = await demo([...where, '--prefix', prefix, '--inbox', '3']);

      expect(events.at(-1)?.event, JSON.stringify(events.at(-1))).toBe('done');
      expect(events.find((e) => e.event === 'connected')).toMatchObject({
        version: '1.2',
        user: 'py',
      });
      expect(received(events, 'jobs')).toEqual([
        'job-1',
        'job-2',
        'job-3',
        'job-2 (redelivered)',
        'job-4',
        'job-5',
      ]);
      expect(received(events, 'chat')).toEqual(['committed-1', 'committed-2', 'after-abort']);
      expect(received(events, 'inbox')).toEqual(['in-1', 'in-2', 'in-3']);

      // Another client saw the same: the committed SENDs, never the aborted one.
      await chat.waitFor(3);
      await sleep(200);
      expect(chat.messages.map((m) => m.body)).toEqual([
        'committed-1',
        'committed-2',
        'after-abort',
      ]);

      // After demo.py left: only job-5 (never acknowledged) is back in the queue; job-4's
      // committed ACK and the inbox's one cumulative ACK stuck.
      const consumer = await stompClient(server.url, OBSERVER);
      const jobs = new Inbox();
      const inbox = new Inbox();
      consumer.subscribe(`/queue/${prefix}.jobs`, jobs.take, { ack: 'client-individual' });
      consumer.subscribe(`/queue/${prefix}.inbox`, inbox.take, { ack: 'client-individual' });
      await jobs.waitFor(1);
      await sleep(300);
      expect(jobs.messages.map((m) => [m.body, m.headers.redelivered])).toEqual([
        ['job-5', 'true'],
      ]);
      expect(inbox.messages).toEqual([]);
    });
  }

  it('fails loudly when the broker refuses the login', async () => {
    const server = await startServer({ users: USERS });
    const argv = [
      'examples/python/demo.py',
      '--tcp',
      `127.0.0.1:${server.tcpPort}`,
      '--login',
      'py',
    ];
    const failure = await run(PYTHON, [...argv, '--passcode', 'wrong'], { timeout: 30_000 }).then(
      () => undefined,
      (error: { code?: number; stdout?: string }) => error,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stdout).toMatch(/"event": "failed"/);
  });
});
