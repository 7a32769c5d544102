import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  launchChromium,
  logLines,
  openChat,
  say,
  screenshot,
  startChat,
  waitForLine,
  waitForState,
} from '../helpers/browser.js';
import { skipKafka, startCluster, uniqueName } from '../helpers/cluster.js';
import { untilBridged } from '../helpers/cluster-ready.js';
import { startServer } from '../helpers/server.js';
import { missingChromium, skipWithout } from '../helpers/tools.js';

const skip = skipWithout('browser.spec.ts', missingChromium());
// Fast reconnects keep the restart test short; users get 1000 ms.
const CHAT_ARGS = ['--reconnect-delay', '200'];

let browser: Browser;
beforeAll(async () => {
  if (!skip) browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

const roomLines = async (page: Parameters<typeof logLines>[0]) =>
  (await logLines(page)).filter((line) => !line.startsWith('system|'));

describe.skipIf(skip)('the chat example in Chromium', () => {
  it('two pages chat in a room through stompbus; a page in another room hears nothing until it joins', async () => {
    const server = await startServer();
    const chat = await startChat(server.url, CHAT_ARGS);
    const alice = await openChat(browser, chat, 'alice', 'lobby');
    const bob = await openChat(browser, chat, 'bob', 'lobby');
    const carol = await openChat(browser, chat, 'carol', 'random');

    await say(alice, 'hello bob');
    await waitForLine(bob, 'room|alice: hello bob');
    await say(bob, 'hi alice');
    await waitForLine(alice, 'room|bob: hi alice');
    await waitForLine(alice, 'room|alice: hello bob');

    // Carol switches rooms: from then on she hears the lobby.
    await carol.click('#rooms a[data-room="lobby"]');
    await waitForLine(carol, 'system|you are in #lobby');
    await say(alice, 'welcome carol');
    await waitForLine(carol, 'room|alice: welcome carol');
    expect(await roomLines(carol)).toEqual(['room|alice: welcome carol']);
    expect(await roomLines(bob)).toEqual([
      'room|alice: hello bob',
      'room|bob: hi alice',
      'room|alice: welcome carol',
    ]);
  });

  it('sends private messages to every page of their addressee and to nobody else', async () => {
    const server = await startServer();
    const chat = await startChat(server.url, CHAT_ARGS);
    const alice = await openChat(browser, chat, 'alice');
    // Bob has two tabs open; Carol is in the same room.
    const bob = await openChat(browser, chat, 'bob');
    const bobAgain = await openChat(browser, chat, 'bob', 'random');
    const carol = await openChat(browser, chat, 'carol');

    await say(alice, 'psst, bob', 'bob');
    await waitForLine(alice, 'private-out|alice → bob: psst, bob');
    await waitForLine(bob, 'private-in|alice (private): psst, bob');
    await waitForLine(bobAgain, 'private-in|alice (private): psst, bob');
    // Bob answers by clicking Alice's name, which fills in the "to" field.
    await bob.click('#log li[data-kind="private-in"] .from');
    expect(await bob.inputValue('#to')).toBe('alice');
    await bob.fill('#text', 'got it');
    await bob.press('#text', 'Enter');
    await waitForLine(alice, 'private-in|bob (private): got it');

    // A room message after them: when Carol has it, she would have had the private ones.
    await say(alice, 'now for everyone');
    await waitForLine(carol, 'room|alice: now for everyone');
    expect(await roomLines(carol)).toEqual(['room|alice: now for everyone']);
    expect(await roomLines(bobAgain)).toEqual(['private-in|alice (private): psst, bob']);
  });

  it('hides private messages with --no-private (for brokers without user destinations) and still chats', async () => {
    const server = await startServer();
    const chat = await startChat(server.url, [...CHAT_ARGS, '--no-private']);
    const alice = await openChat(browser, chat, 'alice');
    const bob = await openChat(browser, chat, 'bob');
    expect(await alice.isVisible('#to')).toBe(false);
    await say(alice, 'rooms only');
    await waitForLine(bob, 'room|alice: rooms only');
    // Nobody subscribed to a user destination.
    const subscriptions = [...server.sessions].flatMap((s) => [...s.subscriptions.values()]);
    expect(subscriptions.map((sub) => sub.destination).sort()).toEqual([
      '/topic/chat.lobby',
      '/topic/chat.lobby',
      '/topic/prices',
      '/topic/prices',
    ]);
  });

  it('reconnects by itself when the broker restarts, and chats again', async () => {
    const first = await startServer();
    const port = first.port;
    const chat = await startChat(first.url, CHAT_ARGS);
    const alice = await openChat(browser, chat, 'alice');
    const bob = await openChat(browser, chat, 'bob');

    await first.stop();
    await waitForState(alice, 'reconnecting');
    await waitForState(bob, 'reconnecting');
    // A new broker process on the same port, as after a restart.
    await startServer({ port });
    await waitForState(alice, 'connected');
    await waitForState(bob, 'connected');

    await say(bob, 'back again');
    await waitForLine(alice, 'room|bob: back again');
  });

  describe.skipIf(skipKafka)('two stompbus instances clustered over Kafka', () => {
    it('two pages on different instances chat', async () => {
      const probe = uniqueName('chat-probe');
      const { instances } = await startCluster(2, { kafkaBridges: { [probe]: '/topic/probe' } });
      const [one, two] = instances as [(typeof instances)[0], (typeof instances)[0]];
      await untilBridged(instances, probe, '/topic/probe');
      const alice = await openChat(browser, await startChat(one.url, CHAT_ARGS), 'alice');
      const bob = await openChat(browser, await startChat(two.url, CHAT_ARGS), 'bob');

      await say(alice, 'hello from instance 1');
      await waitForLine(bob, 'room|alice: hello from instance 1');
      await say(bob, 'hello from instance 2');
      await waitForLine(alice, 'room|bob: hello from instance 2');
      await say(bob, 'a private one across instances', 'alice');
      await waitForLine(alice, 'private-in|bob (private): a private one across instances');
      expect(await roomLines(alice)).toEqual([
        'room|alice: hello from instance 1',
        'room|bob: hello from instance 2',
        'private-in|bob (private): a private one across instances',
      ]);
      console.log(`[browser.spec] screenshot: ${await screenshot(alice, 'chat-cluster')}`);
    });
  });
});
