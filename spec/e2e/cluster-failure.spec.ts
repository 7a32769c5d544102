/**
 * Kafka stopped cleanly in the middle of traffic and started again (issue 4, "Tests"):
 * instances stay up, and since SENDs wait for Kafka (docs/operations.md "Kafka outages")
 * local clients see no ERROR and stay connected, every SEND is receipted late and
 * delivered after recovery (exactly once), and no instance needs a restart. The SIGKILL
 * variant, and what passes `--kafka-send-timeout`, is spec/e2e/kafka-restart.spec.ts.
 *
 * This spec runs a Kafka of its own (scripts/kafka.ts), not the run's shared one from
 * spec/kafka-global-setup.ts, because it stops it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type RunningKafka, startKafka } from '../../scripts/kafka.js';
import { bodyText, getHeader } from '../../src/frame/index.js';
import type { StompServer } from '../../src/server.js';
import { startCluster, uniqueName } from '../helpers/cluster.js';
import { LogCapture } from '../helpers/log.js';
import { ownKafkaSkipReason } from '../helpers/maven.js';
import { RawClient } from '../helpers/raw-client.js';

const skipReason = await ownKafkaSkipReason('cluster-failure.spec.ts');

const DESTINATION = '/topic/failover';
/** One SEND per lane every PACE_MS. */
const PACE_MS = 20;
/** How long Kafka stays down once stopped, while the publishers keep sending. */
const OUTAGE_MS = 2_000;
/**
 * The instances' `--kafka-send-timeout`: a SEND waits for Kafka this long, far more than
 * the outage (a clean stop, OUTAGE_MS, a start of 5-20 s on a busy machine).
 */
const SEND_TIMEOUT_MS = 90_000;
/** Longest wait of a lane for the answer to one SEND: past the send timeout. */
const SEND_OUTCOME_TIMEOUT_MS = SEND_TIMEOUT_MS + 15_000;

let kafka: RunningKafka | undefined;

afterAll(async () => {
  // After the helper's afterEach has stopped the instances.
  await kafka?.stop();
});

/** What happened to each SEND of a publisher lane, by its body (also its receipt id). */
interface Outcomes {
  receipted: string[];
  errored: string[];
  /** ERRORs that were not STOMP_ERR_CLUSTER_UNAVAILABLE for the SEND they answer. */
  wrongErrors: string[];
  /** SENDs whose connection closed with neither RECEIPT nor ERROR. */
  lost: string[];
  reconnects: number;
  /** The longest wait for one SEND's answer, ms. */
  longestWaitMs: number;
}

/**
 * A publisher on one instance: one SEND (with a receipt) every PACE_MS, each waiting for
 * its RECEIPT or ERROR before the next, so that every SEND has a known outcome. An ERROR
 * closes the connection: the lane connects again and goes on.
 */
function publisherLane(server: StompServer, lane: string, shouldRun: () => boolean) {
  const outcomes: Outcomes = {
    receipted: [],
    errored: [],
    wrongErrors: [],
    lost: [],
    reconnects: 0,
    longestWaitMs: 0,
  };
  const done = (async () => {
    let client: RawClient | undefined;
    let seq = 0;
    let next = Date.now();
    try {
      while (shouldRun()) {
        if (!client || client.isClosed) {
          if (client) outcomes.reconnects++;
          client = await RawClient.ws(server.url);
          await client.connect();
        }
        const id = `${lane}-${seq++}`;
        const sentAt = Date.now();
        client.send(`SEND\ndestination:${DESTINATION}\nreceipt:${id}\n\n${id}\0`);
        const c = client;
        const answer = await c
          .waitFor(
            () =>
              c.frames.find(
                (f) =>
                  (f.command === 'RECEIPT' || f.command === 'ERROR') &&
                  getHeader(f, 'receipt-id') === id,
              ),
            SEND_OUTCOME_TIMEOUT_MS,
            `RECEIPT or ERROR for ${id}`,
          )
          .catch(() => undefined);
        outcomes.longestWaitMs = Math.max(outcomes.longestWaitMs, Date.now() - sentAt);
        if (answer?.command === 'RECEIPT') {
          outcomes.receipted.push(id);
        } else if (answer?.command === 'ERROR') {
          outcomes.errored.push(id);
          if (getHeader(answer, 'message') !== 'STOMP_ERR_CLUSTER_UNAVAILABLE') {
            outcomes.wrongErrors.push(`${id}: ${getHeader(answer, 'message')}`);
          }
          await c.closed;
        } else {
          outcomes.lost.push(id);
          c.destroy();
        }
        next += PACE_MS;
        const wait = next - Date.now();
        if (wait > 0) await sleep(wait);
        else next = Date.now();
      }
    } finally {
      client?.destroy();
    }
  })();
  return { outcomes, done };
}

/** A raw subscriber to DESTINATION; its MESSAGE bodies in arrival order. */
async function subscriber(server: StompServer) {
  const client = await RawClient.ws(server.url);
  await client.connect();
  client.send(`SUBSCRIBE\nid:s\ndestination:${DESTINATION}\nreceipt:sub\n\n\0`);
  await client.receipt('sub');
  const bodies = () => client.all('MESSAGE').map((f) => bodyText(f));
  return { client, bodies };
}

describe.skipIf(skipReason !== undefined)('cluster mode: Kafka stopped mid-traffic', () => {
  it('keeps instances and connections up, delays RECEIPTs instead of ERRORs, delivers every SEND exactly once, and recovers by itself', async () => {
    const testStarted = Date.now();
    kafka = await startKafka();
    const { port, controllerPort, dataDir } = kafka;
    // The outage is provoked: its log lines are kept and checked, not printed.
    const log = new LogCapture();
    const { instances } = await startCluster(2, {
      kafkaBrokers: kafka.brokers,
      kafkaTopic: uniqueName('stompbus-spec-failover'),
      logger: log,
      kafkaSendTimeoutMs: SEND_TIMEOUT_MS,
    });
    const subscribers = await Promise.all(instances.map((s) => subscriber(s)));

    let running = true;
    const lanes = instances.map((s, i) => publisherLane(s, `p${i}`, () => running));
    const receiptedCount = () => lanes.reduce((n, l) => n + l.outcomes.receipted.length, 0);

    // Steady traffic first.
    await waitUntil(() => lanes.every((l) => l.outcomes.receipted.length >= 10), 10_000);

    // Kafka goes away in the middle of it; the publishers keep sending.
    const stopStarted = Date.now();
    await kafka.stop({ keepData: true });
    const stoppedAt = Date.now();
    const receiptedAtStop = receiptedCount();
    await sleep(OUTAGE_MS);
    const erroredDuringOutage = lanes.reduce((n, l) => n + l.outcomes.errored.length, 0);

    // Back on the same ports and data; the instances are not touched.
    const restartStarted = Date.now();
    kafka = await startKafka({ port, controllerPort, dataDir });
    const restartedAt = Date.now();
    const receiptedAtRestart = lanes.map((l) => l.outcomes.receipted.length);

    // Recovery without restarting anything: every lane gets receipts again.
    await waitUntil(
      () => lanes.every((l, i) => l.outcomes.receipted.length >= (receiptedAtRestart[i] ?? 0) + 20),
      30_000,
    );
    const recoveredAt = Date.now();
    running = false;
    await Promise.all(lanes.map((l) => l.done));

    // After recovery, a fresh client per instance: SENDs are receipted and delivered.
    const after: string[] = [];
    for (const [i, server] of instances.entries()) {
      const client = await RawClient.ws(server.url);
      await client.connect();
      for (let n = 0; n < 5; n++) {
        const id = `after${i}-${n}`;
        client.send(`SEND\ndestination:${DESTINATION}\nreceipt:${id}\n\n${id}\0`);
        await client.receipt(id, 10_000);
        after.push(id);
      }
      expect(client.all('ERROR')).toEqual([]);
      client.destroy();
    }

    const receipted = [...lanes.flatMap((l) => l.outcomes.receipted), ...after];
    const errored = lanes.flatMap((l) => l.outcomes.errored);
    for (const { bodies } of subscribers) {
      await waitUntil(() => receipted.every((b) => bodies().includes(b)), 15_000).catch(() => {});
    }
    // Anything late or duplicated would show up by now.
    await sleep(500);

    console.log(
      `[cluster-failure] Kafka stop ${stoppedAt - stopStarted} ms, restart ${restartedAt - restartStarted} ms, ` +
        `recovery ${recoveredAt - restartedAt} ms; receipted ${receipted.length} ` +
        `(${receiptedAtStop} before the stop), ERROR ${errored.length} ` +
        `(${erroredDuringOutage} within the first ${OUTAGE_MS} ms), reconnects ` +
        `${lanes.map((l) => l.outcomes.reconnects).join('/')}, longest wait for a RECEIPT ` +
        `${lanes.map((l) => l.outcomes.longestWaitMs).join('/')} ms; test ${Date.now() - testStarted} ms`,
    );

    // Traffic flowed on both sides of the outage, and the outage only delayed RECEIPTs.
    expect(receiptedAtStop).toBeGreaterThanOrEqual(20);
    expect(erroredDuringOutage).toBe(0);
    for (const lane of lanes) {
      // Every SEND got its RECEIPT, on the connection it was sent on.
      expect(lane.outcomes.lost).toEqual([]);
      expect(lane.outcomes.errored).toEqual([]);
      expect(lane.outcomes.wrongErrors).toEqual([]);
      expect(lane.outcomes.reconnects).toBe(0);
      // The SEND in flight when Kafka stopped waited for it to come back.
      expect(lane.outcomes.longestWaitMs).toBeGreaterThan(OUTAGE_MS);
    }

    // The log told the story by state changes: both connected, then lost Kafka (produce
    // failed; a consumer may also have crashed and been restarted) and got it back.
    const states = log.lines.filter((l) => l.component === 'kafka').map((l) => l.kafka);
    expect(states.filter((k) => k === 'connected')).toHaveLength(2);
    expect(states.indexOf('back')).toBeGreaterThan(states.indexOf('lost'));
    expect(states.indexOf('lost')).toBeGreaterThanOrEqual(0);
    if (states.includes('crashed')) {
      expect(states.lastIndexOf('restarted')).toBeGreaterThan(states.indexOf('crashed'));
    }
    expect(log.lines.filter((l) => l.code === 'STOMP_ERR_INTERNAL')).toEqual([]);
    // Each SEND answered with ERROR is one warn line naming the SEND and its destination.
    const refused = log.lines.filter((l) => l.event === 'frame.refused');
    expect(refused).toHaveLength(errored.length);
    for (const line of refused) {
      expect(line).toMatchObject({
        level: 'warn',
        code: 'STOMP_ERR_CLUSTER_UNAVAILABLE',
        command: 'SEND',
        destination: DESTINATION,
      });
    }

    // Instances stayed up and still serve.
    for (const server of instances) {
      const health = await fetch(`http://127.0.0.1:${server.port}/healthz`);
      expect(health.status).toBe(200);
    }

    const sent = new Set([...receipted, ...errored]);
    for (const { client, bodies } of subscribers) {
      // Subscribers were never disconnected nor sent an ERROR.
      expect(client.isClosed).toBe(false);
      expect(client.all('ERROR')).toEqual([]);
      const got = bodies();
      // Every receipted SEND, exactly once.
      const missing = receipted.filter((b) => !got.includes(b));
      expect(missing, 'receipted but not delivered').toEqual([]);
      expect(got.length, 'duplicates').toBe(new Set(got).size);
      // Nothing that was never sent.
      expect(got.filter((b) => !sent.has(b))).toEqual([]);
      // Each lane's messages in the order it sent them (one destination, one partition).
      for (const lane of ['p0', 'p1']) {
        const own = got.filter((b) => b.startsWith(`${lane}-`)).map((b) => Number(b.slice(3)));
        expect(own).toEqual([...own].sort((a, b) => a - b));
      }
      client.destroy();
    }
  }, 90_000);
});

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(50);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
