import type { Client } from '@stomp/stompjs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../helpers/browser.js';
import { startServer } from '../helpers/server.js';
import { stompClient } from '../helpers/stomp-client.js';
import { missingChromium, skipWithout } from '../helpers/tools.js';

/**
 * The live console (`/console` on the admin port) in Chromium, behind an
 * admin token, while stompjs clients publish at known rates to destinations
 * with known subscriber counts: the page must show those numbers.
 * `CONSOLE_SCREENSHOT=1` also writes docs/console.png (the README shows it).
 */

const skip = skipWithout('console.spec.ts', missingChromium());
const TOKEN = 'console-spec-token';

/** Messages per second each publisher sends, and subscribers per destination. */
const TRAFFIC = [
  { destination: '/topic/prices', rate: 20, subscribers: 3 },
  { destination: '/topic/news', rate: 10, subscribers: 2 },
  { destination: '/queue/jobs', rate: 5, subscribers: 1 },
] as const;
const RATE_IN = TRAFFIC.reduce((sum, t) => sum + t.rate, 0);
const RATE_OUT = TRAFFIC.reduce((sum, t) => sum + t.rate * t.subscribers, 0);
/** Per-second figures on a busy machine wander: the median of several must be this close. */
const TOLERANCE = 0.3;

let browser: Browser;
beforeAll(async () => {
  if (!skip) browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

/** Subscribes and waits for the broker's receipt. */
function subscribe(client: Client, destination: string): Promise<void> {
  const receipt = `sub-${Math.random().toString(36).slice(2)}`;
  const done = new Promise<void>((resolve) => client.watchForReceipt(receipt, () => resolve()));
  client.subscribe(destination, () => {}, { receipt });
  return done;
}

/**
 * Publishes `rate` messages per second until stopped, counting from the start
 * so that a late timer catches up instead of lowering the rate.
 */
function publishAt(client: Client, destination: string, rate: number): () => void {
  const started = Date.now();
  let sent = 0;
  const timer = setInterval(() => {
    const due = Math.floor(((Date.now() - started) / 1000) * rate);
    while (sent < due) {
      client.publish({ destination, body: `tick ${sent++}` });
    }
  }, 20);
  return () => clearInterval(timer);
}

async function text(page: Page, selector: string): Promise<string> {
  return ((await page.textContent(selector)) ?? '').trim();
}

const numberIn = (s: string) => Number(s.replace(/,/g, ''));

/** Waits until `selector` on the page shows `expected`. */
async function shows(page: Page, selector: string, expected: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await text(page, selector).catch(() => '');
    if (last === expected) return;
    await page.waitForTimeout(100);
  }
  throw new Error(`${selector} shows "${last}", not "${expected}"`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

describe.skipIf(skip)('the live console in Chromium', () => {
  it('shows the connections, subscribers per destination and message rates of the traffic', async () => {
    const server = await startServer({ adminToken: TOKEN });
    const stops: Array<() => void> = [];
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    try {
      // Subscribers: one stompjs client per subscription, over WebSocket.
      for (const t of TRAFFIC) {
        for (let i = 0; i < t.subscribers; i++) {
          await subscribe(await stompClient(server.url), t.destination);
        }
      }
      // One publisher per destination, one of them over TCP.
      const publishers = [
        await stompClient(server.url),
        await stompClient(server.url),
        await stompClient(server.tcpPort as number),
      ];
      TRAFFIC.forEach((t, i) => {
        stops.push(publishAt(publishers[i] as Client, t.destination, t.rate));
      });
      const subscriberCount = TRAFFIC.reduce((sum, t) => sum + t.subscribers, 0);
      const websocket = subscriberCount + 2;

      // Without the token the page asks for it; a wrong one is refused.
      await page.goto(`${server.admin?.url}/console`);
      await page.waitForSelector('#login:not([hidden])');
      await page.fill('#token', 'not-it');
      await page.click('#login button');
      await page.waitForSelector('#login-error:not([hidden])');
      await page.fill('#token', TOKEN);
      await page.click('#login button');
      await page.waitForSelector('#console:not([hidden])');
      await page.waitForSelector('#status[data-state="live"]');

      await shows(page, '[data-metric="connections"]', String(websocket + 1));
      await shows(page, '[data-metric="connections-websocket"]', String(websocket));
      await shows(page, '[data-metric="connections-tcp"]', '1');
      await shows(page, '[data-metric="sessions"]', String(websocket + 1));
      await shows(page, '[data-metric="subscriptions"]', String(subscriberCount));
      await shows(page, '#mode', 'embedded');
      for (const t of TRAFFIC) {
        const row = `tr[data-destination="${t.destination}"]`;
        await shows(page, `${row} [data-field="subscribers"]`, String(t.subscribers));
      }

      // Rates: one figure per second; the median of eight against what was sent.
      const samples: Array<{ in: number; out: number; each: number[] }> = [];
      await page.waitForTimeout(2000);
      for (let i = 0; i < 8; i++) {
        await page.waitForTimeout(1000);
        samples.push({
          in: numberIn(await text(page, '[data-metric="rate-in"]')),
          out: numberIn(await text(page, '[data-metric="rate-out"]')),
          each: await Promise.all(
            TRAFFIC.map(async (t) =>
              numberIn(
                await text(page, `tr[data-destination="${t.destination}"] [data-field="in"]`),
              ),
            ),
          ),
        });
      }
      const within = (measured: number, expected: number, what: string) => {
        expect(measured, `${what}: ${JSON.stringify(samples)}`).toBeGreaterThanOrEqual(
          expected * (1 - TOLERANCE),
        );
        expect(measured, `${what}: ${JSON.stringify(samples)}`).toBeLessThanOrEqual(
          expected * (1 + TOLERANCE),
        );
      };
      within(median(samples.map((s) => s.in)), RATE_IN, 'messages in /s');
      within(median(samples.map((s) => s.out)), RATE_OUT, 'messages out /s');
      TRAFFIC.forEach((t, i) => {
        within(median(samples.map((s) => s.each[i] as number)), t.rate, `${t.destination} in /s`);
      });
      // The chart is uPlot's canvas, drawn from the same figures.
      expect(await page.locator('#chart canvas').count()).toBeGreaterThan(0);

      if (process.env.CONSOLE_SCREENSHOT) {
        await page.screenshot({ path: 'docs/console.png', fullPage: true });
      }
    } finally {
      for (const stop of stops) stop();
      await page.close();
    }
  }, 90_000);
});
