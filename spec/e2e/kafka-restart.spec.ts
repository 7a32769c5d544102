/**
 * A Kafka restart must be invisible to STOMP clients (docs/operations.md "Kafka outages"):
 * Kafka is SIGKILLed under a publisher that sends with receipts every 5 ms and started again
 * on the same port and data a few seconds later. The publisher's SENDs wait for Kafka, so it
 * gets no ERROR, its connection stays open and every SEND gets its RECEIPT, later; a
 * subscriber on another instance gets every message exactly once, in order. Only past
 * `--kafka-send-timeout` does a SEND get ERROR STOMP_ERR_CLUSTER_UNAVAILABLE.
 *
 * This spec runs a Kafka of its own (scripts/kafka.ts), not the run's shared one from
 * spec/kafka-global-setup.ts, because it kills it; it kills only that JVM, by its own child
 * process handle.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type RunningKafka, startKafka } from '../../scripts/kafka.js';
import { bodyText, getHeader } from '../../src/frame/index.js';
import { startCluster, uniqueName } from '../helpers/cluster.js';
import {
  publisherOutcome,
  sleep,
  startPublisher,
  startSubscriber,
  until,
} from '../helpers/kafka-restart.js';
import { ownKafkaSkipReason } from '../helpers/maven.js';
import { RawClient } from '../helpers/raw-client.js';

const skipReason = await ownKafkaSkipReason('kafka-restart.spec.ts');

/** How long Kafka stays dead before it is started again, ms. */
const DOWN_MS = 4_000;
/**
 * The instances' `--kafka-send-timeout` in the restart test: far above the outage (Kafka's
 * start takes 5-20 s on a busy machine, on top of DOWN_MS), so that only a wait that should
 * never happen fails the spec.
 */
const SEND_TIMEOUT_MS = 90_000;

let kafka: RunningKafka | undefined;

afterAll(async () => {
  await kafka?.stop();
});

/** SIGKILLs this spec's Kafka, waits `downMs`, starts it again on the same port and data. */
async function killAndRestart(downMs: number, whileDown: () => Promise<void> = async () => {}) {
  const running = kafka as RunningKafka;
  const { port, controllerPort, dataDir } = running;
  const killedAt = Date.now();
  await running.stop({ keepData: true, signal: 'SIGKILL' });
  kafka = undefined;
  await whileDown();
  await sleep(Math.max(0, killedAt + downMs - Date.now()));
  kafka = await startKafka({ port, controllerPort, dataDir });
  return { killedAt, restartedAt: Date.now() };
}

describe.skipIf(skipReason !== undefined)('cluster mode: Kafka restarted under traffic', () => {
  it('only delays RECEIPTs: no ERROR, no close, every message exactly once and in order', async () => {
    const destination = '/topic/restart';
    kafka = await startKafka();
    const { instances } = await startCluster(2, {
      kafkaBrokers: kafka.brokers,
      kafkaTopic: uniqueName('stompbus-spec-restart'),
      kafkaSendTimeoutMs: SEND_TIMEOUT_MS,
    });
    const [a, b] = instances as [(typeof instances)[0], (typeof instances)[0]];
    const subscriber = await startSubscriber(b.url, destination);
    const publisher = await startPublisher(a.url, destination, { everyMs: 5, maxSends: 30_000 });
    const outcome = () => publisherOutcome(publisher);

    await until(() => outcome().receipted >= 100, 30_000, 'steady traffic before the kill');
    const { killedAt, restartedAt } = await killAndRestart(DOWN_MS);
    // Everything sent up to the restart is answered once Kafka is back…
    const sentBefore = publisher.ids.filter((id) => (publisher.sentAt.get(id) ?? 0) <= restartedAt);
    const receipted = () => new Set(outcome().receiptOrder);
    await until(
      () => {
        const got = receipted();
        return sentBefore.every((id) => got.has(id));
      },
      SEND_TIMEOUT_MS,
      'RECEIPTs of what was sent before the restart',
    );
    const recoveredAt = Date.now();
    // …and traffic goes on as before.
    await sleep(1_000);
    publisher.stop();
    await until(() => outcome().unanswered.length === 0, 30_000, 'the last RECEIPTs');
    const result = outcome();
    await until(
      () => subscriber.bodies().length >= result.sent,
      30_000,
      'every message at the subscriber',
    );
    // Anything late or duplicated would show up by now.
    await sleep(500);

    console.log(
      `[kafka-restart] sent ${result.sent} (${sentBefore.length} up to the restart), receipted ` +
        `${result.receipted}, ERRORs ${result.errors.length}; Kafka down ${restartedAt - killedAt} ms ` +
        `(kill to started again), last outage RECEIPT ${recoveredAt - restartedAt} ms after; ` +
        `largest RECEIPT delay ${result.maxDelayMs} ms`,
    );

    // The publisher saw no outage but late RECEIPTs.
    expect(result.errors.map((f) => getHeader(f, 'message'))).toEqual([]);
    expect(result.closed).toBe(false);
    expect(result.unanswered).toEqual([]);
    expect(result.receiptOrder).toEqual(publisher.ids);
    // The outage happened under its SENDs: some RECEIPTs waited for Kafka to come back.
    expect(result.maxDelayMs).toBeGreaterThan(DOWN_MS / 2);
    // The subscriber on the other instance: every message once, in the order sent.
    expect(subscriber.client.all('ERROR')).toEqual([]);
    expect(subscriber.client.isClosed).toBe(false);
    expect(subscriber.bodies()).toEqual(publisher.ids);
    publisher.client.destroy();
    subscriber.client.destroy();
  }, 240_000);

  it('answers a SEND that waited past --kafka-send-timeout with ERROR STOMP_ERR_CLUSTER_UNAVAILABLE and its receipt-id, loses nothing receipted, and an instance started while Kafka is down waits for it (SENDs, user destinations, COMMIT)', async () => {
    const destination = '/topic/bound';
    const topic = uniqueName('stompbus-spec-bound');
    const sendTimeoutMs = 1_500;
    kafka ??= await startKafka();
    const brokers = kafka.brokers;
    const { instances } = await startCluster(2, {
      kafkaBrokers: brokers,
      kafkaTopic: topic,
      kafkaSendTimeoutMs: sendTimeoutMs,
    });
    const [a, b] = instances as [(typeof instances)[0], (typeof instances)[0]];
    const subscriber = await startSubscriber(b.url, destination);
    // Anonymous access: the login names the user.
    const bob = await RawClient.ws(b.url);
    await bob.connect({ login: 'bob' });
    bob.send('SUBSCRIBE\nid:u\ndestination:/user/queue/inbox\nreceipt:su\n\n\0');
    await bob.receipt('su');
    const publisher = await RawClient.ws(a.url);
    await publisher.connect();
    const before = Array.from({ length: 20 }, (_, i) => `before-${i}`);
    for (const id of before) {
      publisher.send(`SEND\ndestination:${destination}\nreceipt:${id}\n\n${id}\0`);
    }
    for (const id of before) await publisher.receipt(id, 20_000);

    let waiting: RawClient | undefined;
    let errorAfterMs = 0;
    let error: ReturnType<RawClient['all']>[number] | undefined;
    await killAndRestart(0, async () => {
      // Kafka down longer than the send timeout: the SEND gets ERROR with its receipt-id, then the close.
      const sentAt = Date.now();
      publisher.send(`SEND\ndestination:${destination}\nreceipt:lost\n\nlost\0`);
      error = await publisher.expectErrorAndClose(sendTimeoutMs + 15_000);
      errorAfterMs = Date.now() - sentAt;
      // An instance that starts while Kafka is down serves, and its SENDs wait for Kafka.
      const { instances: late } = await startCluster(1, {
        kafkaBrokers: brokers,
        kafkaTopic: topic,
        kafkaSendTimeoutMs: SEND_TIMEOUT_MS,
      });
      waiting = await RawClient.ws((late[0] as (typeof late)[0]).url);
      await waiting.connect();
      waiting.send(`SEND\ndestination:${destination}\nreceipt:waited\n\nwaited\0`);
      waiting.send('SEND\ndestination:/user/bob/queue/inbox\nreceipt:waited-user\n\nfor bob\0');
      waiting.send(
        'BEGIN\ntransaction:t1\n\n\0' +
          `SEND\ndestination:${destination}\ntransaction:t1\n\nin a transaction\0` +
          'COMMIT\ntransaction:t1\nreceipt:committed\n\n\0',
      );
      await sleep(500);
      expect(waiting.all('RECEIPT')).toEqual([]);
      expect(waiting.all('ERROR')).toEqual([]);
    });
    console.log(
      `[kafka-restart] ERROR ${errorAfterMs} ms after the SEND (timeout ${sendTimeoutMs} ms)`,
    );
    expect(getHeader(error!, 'message')).toBe('STOMP_ERR_CLUSTER_UNAVAILABLE');
    expect(getHeader(error!, 'receipt-id')).toBe('lost');
    expect(errorAfterMs).toBeGreaterThanOrEqual(sendTimeoutMs - 100);
    expect(publisher.all('RECEIPT')).toHaveLength(before.length);

    // Kafka back: the SEND that waited on the late instance is receipted, not refused.
    const client = waiting as RawClient;
    await client.receipt('waited', 60_000);
    await client.receipt('waited-user', 30_000);
    await client.receipt('committed', 30_000);
    expect(client.all('ERROR')).toEqual([]);
    const forBob = await bob.next('MESSAGE', 30_000);
    expect(bodyText(forBob)).toBe('for bob');
    // A fresh publisher on A is served again.
    const again = await RawClient.ws(a.url);
    await again.connect();
    again.send(`SEND\ndestination:${destination}\nreceipt:after\n\nafter\0`);
    await again.receipt('after', 30_000);

    // Nothing receipted lost, nothing twice, in order.
    await until(
      () => subscriber.bodies().includes('after'),
      30_000,
      'the messages after the restart',
    );
    await sleep(500);
    const got = subscriber.bodies().filter((body) => body !== 'lost');
    expect(got).toEqual([...before, 'waited', 'in a transaction', 'after']);
    expect(subscriber.client.all('ERROR')).toEqual([]);
    expect(bob.all('MESSAGE')).toHaveLength(1);
    for (const c of [client, again, bob, subscriber.client]) c.destroy();
  }, 240_000);
});
