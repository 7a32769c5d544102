/**
 * What cluster interest costs a subscriber (docs/cluster-interest.md): the SUBSCRIBE that
 * picks a partition up, the first live message after it, a resume served cold (read back
 * from Kafka) next to one served warm (from the history in memory) and one on an instance
 * that reads the partition only since after the position (read back by offset), and a
 * user's mailbox of 1,000 letters served where the user's partition is read next to where
 * it is read back from Kafka at CONNECT.
 *
 * ```sh
 * npx tsx bench/interest-pickup.bench.ts      # ~1 min; KAFKA_BROKERS to use a running Kafka
 * ```
 *
 * Three instances in this process (StompServer, 127.0.0.1) with `--kafka-interest
 * subscribed`, 24 partitions, a short linger so that partitions are let go between samples.
 * Prints a markdown table; the figures go to bench/results/interest.md by hand.
 */
import { randomBytes } from 'node:crypto';
import type { Client, IMessage } from '@stomp/stompjs';
import { type RunningKafka, startKafka } from '../scripts/kafka.js';
import { partitionFor } from '../src/cluster/partitioner.js';
import type { KafkaFanout } from '../src/kafka.js';
import { StompServer } from '../src/server.js';
import { connect } from './stompjs.js';

const PARTITIONS = 24;
const LINGER_MS = 300;
const SAMPLES = 15;
const MISSED = 1_000;
/** Every client logs in (user destinations need a login): as `bench`, or a mailbox user. */
const BENCH_USER = 'bench';
const MAILBOX_USERS = 5;
/** `u-<i>` users, each in a partition of its own, none in `bench`'s. */
function mailboxUsers(): string[] {
  const taken = new Set([partitionFor(`/user/${BENCH_USER}`, PARTITIONS)]);
  const users: string[] = [];
  for (let i = 0; users.length < MAILBOX_USERS; i++) {
    const partition = partitionFor(`/user/u-${i}`, PARTITIONS);
    if (taken.has(partition)) continue;
    taken.add(partition);
    users.push(`u-${i}`);
  }
  return users;
}
const BODY = 'x'.repeat(256);

const now = () => performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function receipted(
  client: Client,
  send: (receipt: string) => void,
): Promise<Record<string, string>> {
  const receipt = randomBytes(6).toString('hex');
  const done = new Promise<Record<string, string>>((resolve) =>
    client.watchForReceipt(receipt, (frame) => resolve(frame.headers)),
  );
  send(receipt);
  return done;
}

/** Destinations `/topic/<prefix>-<i>`, one per partition, in partition order. */
function onePerPartition(prefix: string): string[] {
  const found: string[] = [];
  for (let i = 0; found.filter(Boolean).length < PARTITIONS; i++) {
    const destination = `/topic/${prefix}-${i}`;
    found[partitionFor(destination, PARTITIONS)] ??= destination;
  }
  return found;
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function row(name: string, values: number[]): string {
  const f = (ms: number) => ms.toFixed(1);
  return `| ${name} | ${values.length} | ${f(quantile(values, 0.5))} | ${f(quantile(values, 0.99))} | ${f(Math.max(...values))} |`;
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
}

async function main(): Promise<void> {
  const external = process.env.KAFKA_BROKERS?.trim();
  let kafka: RunningKafka | undefined;
  if (!external) kafka = await startKafka();
  const brokers = external ?? (kafka as RunningKafka).brokers;
  const topic = `stompbus-bench-pickup-${randomBytes(4).toString('hex')}`;
  const servers: StompServer[] = [];
  const clients: Client[] = [];
  const quiet = [console.log, console.info] as const;
  console.log = () => {};
  console.info = () => {};
  const mailboxes = mailboxUsers();
  const users = new Map([BENCH_USER, ...mailboxes].map((u) => [u, 'pw'] as const));
  try {
    for (let i = 0; i < 3; i++) {
      const server = new StompServer({
        host: '127.0.0.1',
        port: 0,
        tcpPort: 0,
        adminPort: 0,
        shutdownTimeoutMs: 500,
        kafkaBrokers: brokers,
        kafkaTopic: topic,
        kafkaPartitions: PARTITIONS,
        kafkaInterest: 'subscribed',
        kafkaInterestLingerMs: LINGER_MS,
        users,
      });
      await server.start();
      servers.push(server);
    }
    const [a, b, c] = servers as [StompServer, StompServer, StompServer];
    const reads = (server: StompServer) =>
      (server.broker.fanout as KafkaFanout).interestPartitions() ?? [];
    const publisher = await connect(a.url, BENCH_USER);
    const subscriber = await connect(b.url, BENCH_USER);
    clients.push(publisher, subscriber);

    // Warm: a partition B reads all along.
    const [warm, ...cold] = onePerPartition('p');
    const live: Array<(m: IMessage) => void> = [];
    const steady = new Map<string, number>();
    await receipted(subscriber, (receipt) =>
      subscriber.subscribe(
        warm as string,
        (m) => {
          steady.set(m.body, now());
          for (const f of live) f(m);
        },
        { receipt },
      ),
    );
    // Cross-instance latency with the partition read: the reference.
    const crossMs: number[] = [];
    for (let i = 0; i < 100; i++) {
      const body = `w${i}`;
      const sent = now();
      publisher.publish({ destination: warm as string, body });
      await until(() => steady.has(body), 'a warm message');
      crossMs.push((steady.get(body) as number) - sent);
      await sleep(10);
    }

    // SUBSCRIBE → RECEIPT: warm (another destination of a partition read) and cold (pick-up).
    const warmSubscribeMs: number[] = [];
    const coldSubscribeMs: number[] = [];
    const firstLiveMs: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const warmOther = `/topic/p-warm-${i}`;
      if (partitionFor(warmOther, PARTITIONS) === partitionFor(warm as string, PARTITIONS)) {
        const started = now();
        const sub = await receipted(subscriber, (receipt) =>
          subscriber.subscribe(warmOther, () => {}, { receipt, id: `w-${i}` }),
        ).then(() => now() - started);
        warmSubscribeMs.push(sub);
        subscriber.unsubscribe(`w-${i}`);
      }
      const destination = cold[i % cold.length] as string;
      const partition = partitionFor(destination, PARTITIONS);
      await until(() => !reads(b).includes(partition), 'the partition let go');
      let deliveredAt = 0;
      const started = now();
      await receipted(subscriber, (receipt) =>
        subscriber.subscribe(
          destination,
          () => {
            deliveredAt = now();
          },
          { receipt, id: `c-${i}` },
        ),
      );
      coldSubscribeMs.push(now() - started);
      const sent = now();
      publisher.publish({ destination, body: BODY });
      await until(() => deliveredAt > 0, 'the first live message');
      firstLiveMs.push(deliveredAt - sent);
      subscriber.unsubscribe(`c-${i}`);
    }
    // More warm samples: any destination of the warm partition.
    for (let i = 0; warmSubscribeMs.length < SAMPLES; i++) {
      const destination = `/topic/q-${i}`;
      if (partitionFor(destination, PARTITIONS) !== partitionFor(warm as string, PARTITIONS)) {
        continue;
      }
      const started = now();
      await receipted(subscriber, (receipt) =>
        subscriber.subscribe(destination, () => {}, { receipt, id: `q-${i}` }),
      );
      warmSubscribeMs.push(now() - started);
      subscriber.unsubscribe(`q-${i}`);
    }

    // Resume after MISSED messages: warm on B (it reads the partition), cold on C, and on A
    // once A reads the partition for another destination, picked up after the position.
    const warmResumeMs: number[] = [];
    const coldResumeMs: number[] = [];
    const uncoveredResumeMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const destination = cold[(i * 5) % cold.length] as string;
      const partition = partitionFor(destination, PARTITIONS);
      await until(() => !reads(c).includes(partition), 'C lets the partition go');
      const holder = await connect(b.url, BENCH_USER);
      clients.push(holder);
      let position = '';
      await receipted(holder, (receipt) =>
        holder.subscribe(
          destination,
          (m) => {
            position ||= m.headers['x-position'] ?? '';
          },
          { receipt },
        ),
      );
      await receipted(publisher, (receipt) =>
        publisher.publish({ destination, body: 'first', headers: { receipt } }),
      );
      await until(() => position !== '', 'the first position');
      for (let n = 0; n < MISSED - 1; n++) publisher.publish({ destination, body: BODY });
      await receipted(publisher, (receipt) =>
        publisher.publish({ destination, body: 'last', headers: { receipt } }),
      );
      const otherOf = (i: number) => `/topic/other-${i}`;
      let k = 0;
      while (partitionFor(otherOf(k), PARTITIONS) !== partition) k++;
      const other = await connect(a.url, BENCH_USER);
      clients.push(other);
      await receipted(other, (receipt) => other.subscribe(otherOf(k), () => {}, { receipt }));
      for (const [server, into] of [
        [b, warmResumeMs],
        [c, coldResumeMs],
        [a, uncoveredResumeMs],
      ] as const) {
        const back = await connect(server.url, BENCH_USER);
        clients.push(back);
        let got = 0;
        let last = 0;
        const started = now();
        const headers = await receipted(back, (receipt) =>
          back.subscribe(
            destination,
            () => {
              got++;
              last = now();
            },
            { receipt, 'x-resume-after': position },
          ),
        );
        if (headers['x-resume'] !== 'complete') throw new Error('resume not complete');
        await until(() => got >= MISSED, 'the replay');
        into.push(last - started);
        await back.deactivate({ force: true });
      }
      await holder.deactivate({ force: true });
      await other.deactivate({ force: true });
    }

    // A mailbox of MISSED letters: on B, where the user has a session all along (the
    // partition read), and on C, which never read it (read back from Kafka at CONNECT);
    // from CONNECT to the last letter, nothing acknowledged (both get every letter).
    const warmMailboxMs: number[] = [];
    const coldMailboxMs: number[] = [];
    for (const user of mailboxes) {
      const present = await connect(b.url, user);
      clients.push(present);
      for (let n = 0; n < MISSED - 1; n++) {
        publisher.publish({ destination: `/user/${user}/queue/inbox`, body: BODY });
      }
      await receipted(publisher, (receipt) =>
        publisher.publish({
          destination: `/user/${user}/queue/inbox`,
          body: 'last',
          headers: { receipt },
        }),
      );
      // B has read them all by then: the warm side serves from memory only.
      await sleep(1_000);
      for (const [server, into] of [
        [b, warmMailboxMs],
        [c, coldMailboxMs],
      ] as const) {
        let got = 0;
        const started = now();
        const back = await connect(server.url, user);
        clients.push(back);
        await receipted(back, (receipt) =>
          back.subscribe('/user/queue/inbox', () => got++, { receipt, ack: 'client-individual' }),
        );
        await until(() => got >= MISSED, 'the mailbox');
        into.push(now() - started);
        await back.deactivate({ force: true });
      }
      await present.deactivate({ force: true });
    }

    console.log = quiet[0];
    console.info = quiet[1];
    console.log(
      [
        `Cluster interest, what a subscriber pays (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC,`,
        `3 instances in one process, ${PARTITIONS} partitions, linger ${LINGER_MS} ms):`,
        '',
        '| ms | samples | p50 | p99 | max |',
        '|---|---|---|---|---|',
        row('cross-instance delivery, partition read (reference)', crossMs),
        row('SUBSCRIBE → RECEIPT, partition read (warm)', warmSubscribeMs),
        row('SUBSCRIBE → RECEIPT, partition picked up (cold)', coldSubscribeMs),
        row('first live message after a pick-up (SEND → MESSAGE)', firstLiveMs),
        row(`resume of ${MISSED} missed, warm (from memory)`, warmResumeMs),
        row(`resume of ${MISSED} missed, cold (read back from Kafka)`, coldResumeMs),
        row(
          `resume of ${MISSED} missed, partition read since after the position (read back by offset)`,
          uncoveredResumeMs,
        ),
        row(`mailbox of ${MISSED}, CONNECT → last letter, user's partition read`, warmMailboxMs),
        row(`mailbox of ${MISSED}, CONNECT → last letter, read back from Kafka`, coldMailboxMs),
      ].join('\n'),
    );
  } finally {
    console.log = quiet[0];
    console.info = quiet[1];
    await Promise.all(clients.map((client) => client.deactivate({ force: true })));
    await Promise.all(servers.map((server) => server.stop()));
    await kafka?.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
