/**
 * Locality benchmark of cluster interest (docs/cluster-interest.md): 4 instances,
 * 1,000 destinations, each instance's subscribers on a disjoint quarter of them,
 * publishers on every instance. Counts the records of the topics topic each instance
 * fetched (`KafkaFanout.fetched`) with `--kafka-interest all` and `subscribed`, and
 * checks that every subscriber got every message once, in order.
 *
 * ```sh
 * npx tsx bench/interest.bench.ts            # ~1 min, writes bench/results/interest.md
 * KAFKA_BROKERS=127.0.0.1:9092 npx tsx bench/interest.bench.ts   # a Kafka already running
 * ```
 *
 * Two layouts of the quarters: `by partition` (instance i subscribes to the destinations
 * of partitions ≡ i mod 4, as a proxy that routes clients by destination would place
 * them) and `by name` (instance i takes destinations 250·i … 250·i+249, a placement
 * that ignores partitions). Instances run in this process (StompServer), on 127.0.0.1,
 * with a Kafka started by scripts/kafka.ts unless KAFKA_BROKERS is set; everything is
 * stopped at the end. Options: `--partitions <n>` (default 24), `--messages <n>` per
 * destination (default 5), `--out <file>`.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Client, IMessage } from '@stomp/stompjs';
import { type RunningKafka, startKafka } from '../scripts/kafka.js';
import { partitionFor } from '../src/cluster/partitioner.js';
import type { KafkaFanout } from '../src/kafka.js';
import { StompServer } from '../src/server.js';
import { connect } from './stompjs.js';

const { values: args } = parseArgs({
  options: {
    partitions: { type: 'string', default: '24' },
    messages: { type: 'string', default: '5' },
    out: { type: 'string', default: 'bench/results/interest.md' },
  },
});
const INSTANCES = 4;
const DESTINATIONS = 1_000;
const PARTITIONS = Number(args.partitions);
const PER_DESTINATION = Number(args.messages);
const BODY = 'x'.repeat(256);
const TIMEOUT_MS = 120_000;

type Mode = 'all' | 'subscribed';
type Layout = 'by partition' | 'by name';

interface Outcome {
  mode: Mode;
  layout: Layout;
  partitions: number;
  total: number;
  /** Per instance: records fetched, messages its subscribers needed, partitions read. */
  instances: Array<{ fetched: number; needed: number; read: number | undefined }>;
  ms: number;
}

const destinations = Array.from({ length: DESTINATIONS }, (_, i) => `/topic/room-${i}`);

/** The instance whose subscribers take `destination` (index i) in a layout. */
function ownerOf(layout: Layout, destination: string, i: number): number {
  if (layout === 'by name') return Math.floor((i * INSTANCES) / DESTINATIONS);
  return partitionFor(destination, PARTITIONS) % INSTANCES;
}

function receipted(client: Client, send: (receipt: string) => void): Promise<void> {
  const receipt = randomBytes(6).toString('hex');
  const done = new Promise<void>((resolve) => client.watchForReceipt(receipt, () => resolve()));
  send(receipt);
  return done;
}

async function run(brokers: string, mode: Mode, layout: Layout): Promise<Outcome> {
  const topic = `stompbus-bench-interest-${randomBytes(4).toString('hex')}`;
  const servers: StompServer[] = [];
  const clients: Client[] = [];
  try {
    for (let i = 0; i < INSTANCES; i++) {
      const server = new StompServer({
        host: '127.0.0.1',
        port: 0,
        tcpPort: 0,
        shutdownTimeoutMs: 500,
        kafkaBrokers: brokers,
        kafkaTopic: topic,
        kafkaPartitions: PARTITIONS,
        kafkaInterest: mode,
        maxSubscriptions: DESTINATIONS,
      });
      await server.start();
      servers.push(server);
    }
    // Subscribers: one connection per instance, its quarter of the destinations.
    const inboxes = new Map<string, string[]>();
    const needed = Array.from({ length: INSTANCES }, () => 0);
    const subscribing: Promise<void>[] = [];
    for (let s = 0; s < INSTANCES; s++) {
      const client = await connect((servers[s] as StompServer).url);
      clients.push(client);
      destinations.forEach((destination, i) => {
        if (ownerOf(layout, destination, i) !== s) return;
        const inbox: string[] = [];
        inboxes.set(destination, inbox);
        needed[s] = (needed[s] ?? 0) + PER_DESTINATION * INSTANCES;
        subscribing.push(
          receipted(client, (receipt) =>
            client.subscribe(destination, (m: IMessage) => inbox.push(m.headers.seq ?? ''), {
              receipt,
            }),
          ),
        );
      });
    }
    await Promise.all(subscribing);
    // Publishers: one per instance, each sends PER_DESTINATION messages to every destination.
    const started = Date.now();
    const publishers = await Promise.all(servers.map((server) => connect(server.url)));
    clients.push(...publishers);
    await Promise.all(
      publishers.map(async (publisher, p) => {
        for (let n = 0; n < PER_DESTINATION; n++) {
          const last: Promise<void>[] = [];
          for (const destination of destinations) {
            const headers = { seq: `${p}:${n}` };
            if (destination === destinations.at(-1)) {
              last.push(
                receipted(publisher, (receipt) =>
                  publisher.publish({ destination, body: BODY, headers: { ...headers, receipt } }),
                ),
              );
            } else publisher.publish({ destination, body: BODY, headers });
          }
          await Promise.all(last);
        }
      }),
    );
    const total = DESTINATIONS * PER_DESTINATION * INSTANCES;
    const deadline = Date.now() + TIMEOUT_MS;
    const received = () => [...inboxes.values()].reduce((sum, inbox) => sum + inbox.length, 0);
    while (received() < total) {
      if (Date.now() > deadline) throw new Error(`received ${received()} of ${total}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const ms = Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 500));
    // Every message once, each publisher's in the order it sent them.
    for (const [destination, inbox] of inboxes) {
      if (inbox.length !== PER_DESTINATION * INSTANCES) {
        throw new Error(`${destination}: ${inbox.length} messages`);
      }
      for (let p = 0; p < INSTANCES; p++) {
        const own = inbox.filter((seq) => seq.startsWith(`${p}:`)).map((seq) => seq.slice(2));
        const expected = Array.from({ length: PER_DESTINATION }, (_, n) => String(n));
        if (own.join() !== expected.join()) throw new Error(`${destination}: out of order`);
      }
    }
    const instances = servers.map((server, s) => {
      const fanout = server.broker.fanout as KafkaFanout;
      return {
        fetched: fanout.fetched.of(topic),
        needed: needed[s] ?? 0,
        read: fanout.interestPartitions()?.length,
      };
    });
    return { mode, layout, partitions: PARTITIONS, total, instances, ms };
  } finally {
    await Promise.all(clients.map((c) => c.deactivate({ force: true })));
    await Promise.all(servers.map((s) => s.stop()));
  }
}

function percent(part: number, whole: number): string {
  return `${((100 * part) / whole).toFixed(1)}%`;
}

async function main(): Promise<void> {
  let kafka: RunningKafka | undefined;
  const external = process.env.KAFKA_BROKERS?.trim();
  if (!external) kafka = await startKafka();
  const brokers = external ?? (kafka as RunningKafka).brokers;
  const quiet = console.log;
  const quietInfo = console.info;
  const outcomes: Outcome[] = [];
  try {
    for (const layout of ['by partition', 'by name'] as Layout[]) {
      for (const mode of ['all', 'subscribed'] as Mode[]) {
        // The instances log their connects; the bench prints only its figures.
        console.log = () => {};
        console.info = () => {};
        const outcome = await run(brokers, mode, layout).finally(() => {
          console.log = quiet;
          console.info = quietInfo;
        });
        outcomes.push(outcome);
        console.log(
          `${layout}, ${mode}: fetched ${outcome.instances.map((i) => percent(i.fetched, outcome.total)).join(' ')} ` +
            `(needed ${outcome.instances.map((i) => percent(i.needed, outcome.total)).join(' ')}) in ${outcome.ms} ms`,
        );
      }
    }
  } finally {
    await kafka?.stop();
  }
  const rows = outcomes.map((o) => {
    const fetched = o.instances.map((i) => percent(i.fetched, o.total)).join(', ');
    const needed = o.instances.map((i) => percent(i.needed, o.total)).join(', ');
    const read = o.instances.map((i) => i.read ?? o.partitions).join(', ');
    const worst = Math.max(...o.instances.map((i) => i.fetched / o.total));
    return `| ${o.layout} | ${o.mode} | ${fetched} | ${(100 * worst).toFixed(1)}% | ${needed} | ${read} | ${o.ms} |`;
  });
  const text = [
    '# Cluster interest: locality',
    '',
    `\`npx tsx bench/interest.bench.ts\` (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC):`,
    `${INSTANCES} instances in one process, ${DESTINATIONS} destinations, ${PARTITIONS} partitions,`,
    `${PER_DESTINATION} messages of ${BODY.length} bytes per destination from each of ${INSTANCES} publishers`,
    `(one per instance), ${DESTINATIONS * PER_DESTINATION * INSTANCES} records in all. Every subscriber got`,
    'every message once, in each publisher’s order (checked by the bench).',
    '',
    '| quarters | --kafka-interest | fetched per instance (of all records) | worst | needed per instance | partitions read | ms |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
  writeFileSync(args.out as string, text);
  console.log(text);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
