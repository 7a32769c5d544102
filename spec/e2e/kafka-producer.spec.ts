import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, openChat, screenshot, startChat } from '../helpers/browser.js';
import { kafkaBrokers, skipKafka, startCluster, uniqueName } from '../helpers/cluster.js';
import { untilBridged } from '../helpers/cluster-ready.js';
import { Inbox, stompClient } from '../helpers/stomp-client.js';
import { missingChromium, skipWithout } from '../helpers/tools.js';

if (skipKafka) {
  console.warn(
    '!!! kafka-producer.spec.ts SKIPPED: no Kafka broker (see spec/kafka-global-setup.ts)',
  );
}
const skip = skipKafka || skipWithout('kafka-producer.spec.ts', missingChromium());
const run = promisify(execFile);
const RECORDS = 12;

/** What examples/kafka-producer/producer.mjs prints per record Kafka acknowledged. */
interface Sent {
  symbol: string;
  price: number;
  partition: number;
  offset: string;
}

let browser: Browser;
beforeAll(async () => {
  if (!skip) browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

describe.skipIf(skip)(
  'examples/kafka-producer: a plain kafkajs producer on a bridged topic',
  () => {
    it('its prices reach a stompjs subscriber on one instance and the chat page on another', async () => {
      const topic = uniqueName('prices');
      const { instances } = await startCluster(2, { kafkaBridges: { [topic]: '/topic/prices' } });
      const [one, two] = instances as [(typeof instances)[0], (typeof instances)[0]];
      await untilBridged(instances, topic, '/topic/prices');
      const subscriber = await stompClient(one.url);
      const inbox = new Inbox();
      const receipt = 'subscribed';
      const subscribed = new Promise<void>((resolve) =>
        subscriber.watchForReceipt(receipt, resolve),
      );
      subscriber.subscribe('/topic/prices', inbox.take, { receipt });
      await subscribed;
      const page = await openChat(browser, await startChat(two.url), 'trader');

      const argv = ['examples/kafka-producer/producer.mjs', '--brokers', kafkaBrokers];
      const options = ['--topic', topic, '--count', String(RECORDS), '--interval', '20'];
      const { stdout } = await run(process.execPath, [...argv, ...options, '--seed', '42'], {
        timeout: 20_000,
      });
      const sent = stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Sent);
      expect(sent).toHaveLength(RECORDS);

      // The stompjs subscriber gets every record once, each symbol's in the order sent.
      const got = await inbox.waitFor(RECORDS, 10_000);
      const bySymbol = (list: Array<{ symbol: string; price: number }>, symbol: string) =>
        list.filter((p) => p.symbol === symbol).map((p) => p.price);
      const arrived = got.map((m) => JSON.parse(m.body) as { symbol: string; price: number });
      for (const symbol of new Set(sent.map((s) => s.symbol))) {
        expect(bySymbol(arrived, symbol), symbol).toEqual(bySymbol(sent, symbol));
      }
      for (const m of got) {
        const { symbol } = JSON.parse(m.body) as { symbol: string };
        const record = sent.find(
          (s) =>
            String(s.partition) === m.headers['kafka-partition'] &&
            s.offset === m.headers['kafka-offset'],
        );
        expect(record?.symbol, `kafka-partition and kafka-offset of ${m.body}`).toBe(symbol);
        expect(m.headers).toMatchObject({
          destination: '/topic/prices',
          'kafka-topic': topic,
          'kafka-key': symbol,
          'content-type': 'application/json',
        });
      }

      // The page on the other instance shows each symbol's last price and its count of updates.
      for (const symbol of new Set(sent.map((s) => s.symbol))) {
        const prices = bySymbol(sent, symbol);
        const row = page.locator(`#prices tr[data-symbol="${symbol}"]`);
        await expect
          .poll(() => row.locator('td.updates').textContent(), { timeout: 10_000 })
          .toBe(String(prices.length));
        expect(await row.locator('td.price').textContent()).toBe(prices.at(-1)?.toFixed(2));
      }
      console.log(`[kafka-producer.spec] screenshot: ${await screenshot(page, 'prices')}`);
    });
  },
);
