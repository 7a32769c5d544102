/**
 * Resume after a position (`x-position` on topic MESSAGEs, `x-resume-after`
 * on SUBSCRIBE, `x-resume` on the RECEIPT and first MESSAGE), driven in
 * memory with `broker.publish`.
 */
import { describe, expect, it } from 'vitest';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import type { StompBroker } from '../../src/stomp-broker.js';
import { type MemoryClient, memoryClient, testBroker } from '../helpers/duplex-pair.js';

const bodies = (frames: Frame[]) => frames.map(bodyText);
const position = (frame: Frame | undefined) => getHeader(frame as Frame, 'x-position') as string;

/** A new session subscribed to `/topic/feed`; returns it and the SUBSCRIBE's RECEIPT. */
async function reader(
  broker: StompBroker,
  headers = '',
): Promise<{ client: MemoryClient; receipt: Frame }> {
  const client = memoryClient(broker);
  await client.connect();
  client.send(`SUBSCRIBE\nid:feed\ndestination:/topic/feed\n${headers}receipt:s\n\n\0`);
  return { client, receipt: await client.receipt('s') };
}

async function publishAll(broker: StompBroker, list: string[]) {
  for (const body of list) await broker.publish('/topic/feed', body);
}

describe('resume after a position (x-resume-after)', () => {
  it('replays the retained messages after the position, marking the RECEIPT and the first MESSAGE x-resume:complete', async () => {
    const broker = testBroker();
    const { client: first } = await reader(broker);
    await publishAll(broker, ['m0', 'm1', 'm2', 'm3', 'm4']);
    const seen = await first.messages(5);
    const { client: back, receipt } = await reader(broker, `x-resume-after:${position(seen[1])}\n`);
    expect(getHeader(receipt, 'x-resume')).toBe('complete');
    await broker.publish('/topic/feed', 'live');
    const got = await back.messages(4);
    expect(bodies(got)).toEqual(['m2', 'm3', 'm4', 'live']);
    expect(got.map((m) => getHeader(m, 'x-resume'))).toEqual([
      'complete',
      undefined,
      undefined,
      undefined,
    ]);
    expect(got.map(position)).toEqual([...seen.slice(2).map(position), position(got[3])]);
    // The replay goes out before the RECEIPT, the live message after it.
    expect(back.frames.map((f) => f.command)).toEqual([
      'CONNECTED',
      'MESSAGE',
      'MESSAGE',
      'MESSAGE',
      'RECEIPT',
      'MESSAGE',
    ]);
  });

  it('carries x-resume:complete on the first live MESSAGE when the resume missed nothing', async () => {
    const broker = testBroker();
    const { client: first } = await reader(broker);
    await publishAll(broker, ['m0', 'm1']);
    const seen = await first.messages(2);
    const { client: back, receipt } = await reader(broker, `x-resume-after:${position(seen[1])}\n`);
    expect(getHeader(receipt, 'x-resume')).toBe('complete');
    await publishAll(broker, ['live0', 'live1']);
    const got = await back.messages(2);
    expect(bodies(got)).toEqual(['live0', 'live1']);
    expect(got.map((m) => getHeader(m, 'x-resume'))).toEqual(['complete', undefined]);
  });

  it('says x-resume:incomplete when messages after the position were no longer retained', async () => {
    const broker = testBroker({ historyMaxMessages: 3 });
    const { client: first } = await reader(broker);
    await publishAll(broker, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    const seen = await first.messages(6);
    const { client: back, receipt } = await reader(broker, `x-resume-after:${position(seen[0])}\n`);
    expect(getHeader(receipt, 'x-resume')).toBe('incomplete');
    const got = await back.messages(3);
    expect(bodies(got)).toEqual(['m3', 'm4', 'm5']);
    expect(getHeader(got[0] as Frame, 'x-resume')).toBe('incomplete');
  });

  it('says x-resume:incomplete for a position from an earlier broker process', async () => {
    const broker = testBroker();
    await publishAll(broker, ['kept']);
    const { receipt } = await reader(broker, 'x-resume-after:0badc0de-41\n');
    expect(getHeader(receipt, 'x-resume')).toBe('incomplete');
  });

  it('replays a topic nobody subscribed to while the messages were published', async () => {
    const broker = testBroker();
    const { client: first } = await reader(broker);
    await publishAll(broker, ['seen']);
    const [seen] = await first.messages(1);
    first.send('DISCONNECT\n\n\0');
    await first.closed;
    await publishAll(broker, ['missed0', 'missed1']);
    const { client: back, receipt } = await reader(broker, `x-resume-after:${position(seen)}\n`);
    expect(getHeader(receipt, 'x-resume')).toBe('complete');
    expect(bodies(await back.messages(2))).toEqual(['missed0', 'missed1']);
  });

  it('delivers no message twice when live messages follow a replay', async () => {
    const broker = testBroker();
    const { client: first } = await reader(broker);
    await publishAll(broker, ['m0', 'm1', 'm2']);
    const seen = await first.messages(3);
    const { client: back } = await reader(broker, `x-resume-after:${position(seen[0])}\n`);
    await publishAll(broker, ['m3', 'm4']);
    const got = await back.messages(4);
    expect(bodies(got)).toEqual(['m1', 'm2', 'm3', 'm4']);
    back.send('SEND\ndestination:/topic/other\nreceipt:sync\n\n\0');
    await back.receipt('sync');
    expect(back.all('MESSAGE')).toHaveLength(4);
  });

  it.each([
    ['a queue', '/queue/jobs', 'x-resume-after:e-1'],
    ['a malformed position', '/topic/feed', 'x-resume-after:yesterday'],
  ])(
    'refuses x-resume-after on %s with STOMP_ERR_INVALID_HEADER',
    async (_, destination, header) => {
      const broker = testBroker();
      const client = memoryClient(broker);
      await client.connect();
      client.send(`SUBSCRIBE\nid:s\ndestination:${destination}\n${header}\nreceipt:r\n\n\0`);
      const error = await client.expectErrorAndClose();
      expect(getHeader(error, 'message')).toBe('STOMP_ERR_INVALID_HEADER');
      expect(getHeader(error, 'receipt-id')).toBe('r');
    },
  );

  it('refuses x-resume-after on a user queue with STOMP_ERR_INVALID_HEADER', async () => {
    const broker = testBroker();
    const client = memoryClient(broker);
    await client.connect({ login: 'bob' });
    client.send('SUBSCRIBE\nid:s\ndestination:/user/queue/inbox\nx-resume-after:e-1\n\n\0');
    expect(getHeader(await client.expectErrorAndClose(), 'message')).toBe(
      'STOMP_ERR_INVALID_HEADER',
    );
  });

  it("resumes a user's own topic after a position", async () => {
    const broker = testBroker();
    const first = memoryClient(broker);
    await first.connect({ login: 'bob' });
    first.send('SUBSCRIBE\nid:t\ndestination:/user/topic/alerts\nreceipt:s\n\n\0');
    await first.receipt('s');
    for (const body of ['a0', 'a1', 'a2']) await broker.sendToUser('bob', '/topic/alerts', body);
    const seen = await first.messages(3);
    const back = memoryClient(broker);
    await back.connect({ login: 'bob' });
    back.send(
      `SUBSCRIBE\nid:t\ndestination:/user/topic/alerts\nx-resume-after:${position(seen[0])}\nreceipt:s\n\n\0`,
    );
    expect(getHeader(await back.receipt('s'), 'x-resume')).toBe('complete');
    const got = await back.messages(2);
    expect(bodies(got)).toEqual(['a1', 'a2']);
    expect(getHeader(got[0] as Frame, 'destination')).toBe('/user/topic/alerts');
  });
});
