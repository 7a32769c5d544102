import { describe, expect, it } from 'vitest';
import type { ConsoleSnapshot } from '../../src/ops/console-feed.js';
import type { StompServer } from '../../src/server.js';
import { skipKafka, startCluster } from '../helpers/cluster.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';

/**
 * The Kafka metrics of cluster mode, with the real Kafka: produce latency,
 * each record's wait for Kafka and each delivered record's age,
 * records consumed by topic, consumer lag per partition, instances seen; and
 * the console's instances table.
 */

if (skipKafka) console.warn('!!! metrics-cluster.spec.ts SKIPPED: no Kafka broker');

const TIMEOUT_MS = 20_000;

async function scrape(server: StompServer): Promise<Map<string, number>> {
  const response = await fetch(`${server.admin?.url}/metrics`);
  expect(response.status).toBe(200);
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** Scrapes until `check` holds; returns that scrape. */
async function scrapeUntil(
  server: StompServer,
  check: (m: Map<string, number>) => boolean,
  what: string,
): Promise<Map<string, number>> {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const m = await scrape(server);
    if (check(m)) return m;
    if (Date.now() > deadline) {
      const kafka = [...m].filter(([k]) => k.startsWith('stompbus_kafka') || k.includes('inst'));
      throw new Error(`timed out waiting until ${what}: ${JSON.stringify(kafka)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe.skipIf(skipKafka)('metrics in cluster mode', () => {
  it('reports produce latency and waits, record delays, records consumed by topic, lag per partition and the instances', async () => {
    const { instances, topic } = await startCluster(2, { presenceIntervalMs: 300 });
    const [a, b] = instances as [StompServer, StompServer];
    const subscriber = await stompClient(b.url);
    const inbox = new Inbox();
    const subscribed = new Promise<void>((resolve) => subscriber.watchForReceipt('s', resolve));
    subscriber.subscribe('/topic/k', inbox.take, { receipt: 's' });
    await subscribed;
    const publisher = await stompClient(a.url);
    for (let i = 0; i < 5; i++) {
      await publishWithReceipt(publisher, { destination: '/topic/k', body: `k${i}` });
    }
    await inbox.waitFor(5, TIMEOUT_MS);

    const consumed = `stompbus_kafka_records_consumed_total{topic="${topic}"}`;
    // The subscriber's instance reads the five records; the publisher's, with no subscriber
    // of its own, fetches nothing of the topics topic (cluster interest, the default).
    const m = await scrapeUntil(b, (s) => s.get(consumed) === 5, `${consumed} is 5`);
    expect(m.get(consumed)).toBe(5);
    expect(m.get('stompbus_frames_received_total{command="SEND"}')).toBe(0);
    const ofA = await scrape(a);
    expect(ofA.get(consumed) ?? 0).toBe(0);
    expect(ofA.get('stompbus_frames_received_total{command="SEND"}')).toBe(5);

    const produced = await scrape(a);
    // Five SENDs with receipts, one after the other (and the registry's announcements).
    const count = produced.get('stompbus_kafka_produce_duration_seconds_count') as number;
    expect(count).toBeGreaterThanOrEqual(5);
    expect(produced.get('stompbus_kafka_produce_duration_seconds_sum')).toBeGreaterThan(0);
    expect(produced.get('stompbus_kafka_produce_duration_seconds_bucket{le="+Inf"}')).toBe(count);

    // Every record produced waited for Kafka's ack once: the five SENDs at least, each
    // counted in a bucket whose bound is past its wait, cumulatively.
    const waits = produced.get('stompbus_kafka_produce_wait_seconds_count') as number;
    expect(waits).toBeGreaterThanOrEqual(5);
    expect(produced.get('stompbus_kafka_produce_wait_seconds_bucket{le="+Inf"}')).toBe(waits);
    expect(produced.get('stompbus_kafka_produce_wait_seconds_sum')).toBeGreaterThan(0);
    const waitBuckets = [...produced]
      .filter(([k]) => k.startsWith('stompbus_kafka_produce_wait_seconds_bucket'))
      .map(([, v]) => v);
    expect(waitBuckets.length).toBe(15);
    expect(waitBuckets).toEqual([...waitBuckets].sort((x, y) => x - y));

    // The subscriber's instance handed the five live messages to delivery, each timed from
    // its record's timestamp; the publisher's, reading none, has no series for the topic,
    // and no topic without messages (the registry's) has one.
    const delay = `stompbus_kafka_record_delay_seconds_count{topic="${topic}"}`;
    expect(m.get(delay)).toBe(5);
    expect(m.get(`stompbus_kafka_record_delay_seconds_bucket{topic="${topic}",le="+Inf"}`)).toBe(5);
    // On one machine the age is within a few seconds, and more than nothing.
    expect(m.get(`stompbus_kafka_record_delay_seconds_bucket{topic="${topic}",le="5"}`)).toBe(5);
    expect(m.get(`stompbus_kafka_record_delay_seconds_sum{topic="${topic}"}`)).toBeGreaterThan(0);
    expect(ofA.get(delay)).toBeUndefined();
    expect(
      [...m.keys()].filter((k) => k.startsWith('stompbus_kafka_record_delay_seconds_count')),
    ).toEqual([delay]);

    // Lag per partition of the topic (3 partitions in the specs), back to 0 once read.
    const lagOf = (m: Map<string, number>) =>
      [0, 1, 2].map((p) => m.get(`stompbus_kafka_consumer_lag{topic="${topic}",partition="${p}"}`));
    const caughtUp = await scrapeUntil(
      b,
      (m) => lagOf(m).some((lag) => lag !== undefined) && lagOf(m).every((lag) => (lag ?? 0) === 0),
      'the lag is known and 0',
    );
    expect(lagOf(caughtUp).filter((lag) => lag === 0).length).toBeGreaterThan(0);

    for (const server of [a, b]) {
      await scrapeUntil(server, (m) => m.get('stompbus_cluster_instances') === 2, '2 instances');
    }

    // The console lists both instances, with what the other one announced.
    const deadline = Date.now() + TIMEOUT_MS;
    let snapshot: ConsoleSnapshot;
    for (;;) {
      snapshot = (await (
        await fetch(`${a.admin?.url}/console/snapshot`)
      ).json()) as ConsoleSnapshot;
      const other = snapshot.cluster?.instances.find((i) => !i.self);
      if (other?.connections === 1 && other.lag === 0) break;
      if (Date.now() > deadline) throw new Error(`console: ${JSON.stringify(snapshot.cluster)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(snapshot.mode).toBe('cluster');
    expect(snapshot.cluster?.instances).toHaveLength(2);
    const self = snapshot.cluster?.instances.find((i) => i.self);
    expect(self?.connections).toBe(1);
    expect(snapshot.cluster?.lag.length).toBeGreaterThan(0);
  }, 60_000);
});
