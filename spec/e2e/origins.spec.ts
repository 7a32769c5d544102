import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseArgs } from '../../src/config.js';
import type { StompServer } from '../../src/server.js';
import {
  launchChromium,
  openChat,
  say,
  screenshot,
  startChat,
  waitForLine,
  waitForState,
} from '../helpers/browser.js';
import { rawClient } from '../helpers/flood.js';
import { startServer } from '../helpers/server.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';
import { missingChromium, skipWithout } from '../helpers/tools.js';
import { expectOthersUnaffected } from '../helpers/unaffected.js';
import { stompSocket, upgrade } from '../helpers/upgrade.js';

const APP = 'http://app.example';
const FORBIDDEN = { status: 403, body: 'stompbus: this Origin may not open a WebSocket here\n' };

/** Counts the sessions that ended: a refused upgrade never makes one. */
function countSessions(server: StompServer): () => number {
  let ended = 0;
  server.broker.on('disconnect', () => {
    ended++;
  });
  return () => ended;
}

describe('--allowed-origins', () => {
  it('upgrades a listed Origin or none (101), refuses any other with 403 and no session', async () => {
    const server = await startServer({ allowedOrigins: [APP, 'https://other.example:8443/'] });
    const ended = countSessions(server);

    expect((await upgrade(server.url, { origin: APP })).status).toBe(101);
    // Listed with a trailing slash; scheme and host compare without case.
    expect((await upgrade(server.url, { origin: 'https://other.example:8443' })).status).toBe(101);
    expect((await upgrade(server.url, { origin: 'HTTP://APP.EXAMPLE' })).status).toBe(101);
    // Non-browser clients send no Origin: nothing to hijack.
    expect((await upgrade(server.url)).status).toBe(101);

    expect(await upgrade(server.url, { origin: 'http://evil.example' })).toEqual(FORBIDDEN);
    expect(await upgrade(server.url, { origin: 'http://app.example:8080' })).toEqual(FORBIDDEN);
    expect(await upgrade(server.url, { origin: 'https://app.example' })).toEqual(FORBIDDEN);
    // Sandboxed frames and file:// pages send "null".
    expect(await upgrade(server.url, { origin: 'null' })).toEqual(FORBIDDEN);
    // Four upgrades made sessions (and were closed); the four refusals made none.
    await expect.poll(ended).toBe(4);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(ended()).toBe(4);
    expect(server.sessions.size).toBe(0);
  });

  it('lets stompjs connect from a listed origin and not from another; TCP clients are not concerned', async () => {
    const server = await startServer({ allowedOrigins: [APP] });
    const evil = stompClient(server.url, {
      webSocketFactory: () => stompSocket(server.url, { origin: 'http://evil.example' }),
    });
    await expect(evil).rejects.toThrow(/WebSocket failed/);
    const app = await stompClient(server.url, {
      webSocketFactory: () => stompSocket(server.url, { origin: APP }),
    });
    const inbox = new Inbox();
    app.subscribe('/topic/from-tcp', inbox.take, { receipt: 'sub' });
    await new Promise<void>((resolve) => app.watchForReceipt('sub', () => resolve()));
    const tcp = await stompClient(server.tcpPort as number);
    await publishWithReceipt(tcp, { destination: '/topic/from-tcp', body: 'over TCP' });
    const raw = await rawClient(server, 'tcp');
    raw.send('SEND\ndestination:/topic/from-tcp\n\nraw TCP\0');
    expect((await inbox.waitFor(2)).map((m) => m.body)).toEqual(['over TCP', 'raw TCP']);
    await expectOthersUnaffected(server, 'ws');
    await expectOthersUnaffected(server, 'tcp');
  });

  it('allows any Origin with * and by default', async () => {
    for (const allowedOrigins of [['*'], undefined]) {
      const server = await startServer({ allowedOrigins });
      expect((await upgrade(server.url, { origin: 'http://anywhere.example' })).status).toBe(101);
      expect((await upgrade(server.url)).status).toBe(101);
    }
  });

  it('reads --allowed-origins as a comma-separated list', () => {
    const command = parseArgs(['--allowed-origins', 'https://a.example, http://localhost:8000']);
    expect(command).toMatchObject({
      kind: 'serve',
      options: { allowedOrigins: ['https://a.example', 'http://localhost:8000'] },
    });
  });
});

const skip = skipWithout('origins.spec.ts', missingChromium());

describe.skipIf(skip)('--allowed-origins in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('connects the chat page from its listed origin and not the same page from another origin', async () => {
    const server = await startServer();
    const chat = await startChat(server.url, ['--reconnect-delay', '200']);
    const listed = new URL(chat.url).origin;
    // The same page, by another name: http://localhost:<port> is another origin.
    const elsewhere = { ...chat, url: chat.url.replace('127.0.0.1', 'localhost') };
    // The broker again on the same port, now knowing which origin to allow.
    const port = server.port;
    await server.stop();
    const guarded = await startServer({ port, allowedOrigins: [listed] });

    const alice = await openChat(browser, chat, 'alice');
    const context = await browser.newContext();
    try {
      const mallory = await context.newPage();
      const logged: string[] = [];
      mallory.on('console', (message) => logged.push(message.text()));
      await mallory.goto(`${elsewhere.url}?name=mallory&room=lobby`);
      // The browser tried, was refused (403), and keeps retrying in vain.
      await waitForState(mallory, 'reconnecting');
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(await mallory.getAttribute('#status', 'data-state')).toBe('reconnecting');
      expect(logged.join('\n')).toMatch(/WebSocket.*403/);
      console.log(`[origins.spec] screenshot: ${await screenshot(mallory, 'origin-refused')}`);
      expect([...guarded.sessions].map((s) => s.user)).toEqual(['alice']);

      await say(alice, 'only from the listed origin');
      await waitForLine(alice, 'room|alice: only from the listed origin');
    } finally {
      await context.close();
    }
  });
});
