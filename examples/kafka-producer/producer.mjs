// A plain Kafka producer (kafkajs, nothing of stompbus) that publishes stock
// prices to a Kafka topic. A stompbus started with --bridge prices=/topic/prices
// hands every record to the STOMP subscribers of /topic/prices, on every
// instance: the chat page (examples/chat) shows them live.
//
//   node examples/kafka-producer/producer.mjs --brokers 127.0.0.1:9092
//
// Options: --brokers (KAFKA_BROKERS, default 127.0.0.1:9092), --topic prices,
// --symbols ACME,GLOBEX,INITECH, --interval 500 (ms between records),
// --count 0 (records to send, 0 = until Ctrl-C), --seed (the same seed gives
// the same prices). Prints one JSON line per record Kafka acknowledged.

import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners } from 'kafkajs';

const { values: args } = parseArgs({
  options: {
    brokers: { type: 'string', default: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092' },
    topic: { type: 'string', default: 'prices' },
    symbols: { type: 'string', default: 'ACME,GLOBEX,INITECH' },
    interval: { type: 'string', default: '500' },
    count: { type: 'string', default: '0' },
    seed: { type: 'string', default: String(Date.now() % 100_000) },
  },
});
const symbols = args.symbols.split(',').filter(Boolean);
const count = Number(args.count);
const interval = Number(args.interval);

/** A small seeded generator (mulberry32): reproducible prices for a given --seed. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const next = random(Number(args.seed));
const prices = new Map(symbols.map((s) => [s, Math.round((20 + next() * 180) * 100) / 100]));

/** A random walk: each price moves by up to 1% either way, in cents. */
function move(symbol) {
  const before = prices.get(symbol);
  const after = Math.max(0.01, Math.round(before * (1 + (next() - 0.5) * 0.02) * 100) / 100);
  prices.set(symbol, after);
  return after;
}

const kafka = new Kafka({
  clientId: 'stompbus-example-prices',
  brokers: args.brokers.split(','),
  // Failures end up in one line of our own below; kafkajs's log would repeat them.
  logLevel: logLevel.NOTHING,
  retry: { retries: 3 },
});
const admin = kafka.admin();
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => (stopping = true));

try {
  await Promise.all([admin.connect(), producer.connect()]);
  // A stompbus with the bridge creates the topic at start-up; this producer may come first.
  if (!(await admin.listTopics()).includes(args.topic)) {
    await admin.createTopics({
      topics: [{ topic: args.topic, numPartitions: 3 }],
      waitForLeaders: true,
    });
  }
  for (let n = 0; !stopping && (count === 0 || n < count); n++) {
    const symbol = symbols[n % symbols.length];
    const price = move(symbol);
    const value = JSON.stringify({ symbol, price, time: new Date().toISOString() });
    // The symbol is the key: one partition per symbol, so each symbol's prices stay in order.
    const [meta] = await producer.send({
      topic: args.topic,
      acks: -1,
      messages: [{ key: symbol, value, headers: { 'content-type': 'application/json' } }],
    });
    console.log(
      JSON.stringify({ symbol, price, partition: meta.partition, offset: meta.baseOffset }),
    );
    if (interval > 0) await new Promise((resolve) => setTimeout(resolve, interval));
  }
} catch (error) {
  console.error(`kafka-producer: ${error.message} (is Kafka at ${args.brokers}?)`);
  process.exitCode = 1;
} finally {
  await Promise.allSettled([producer.disconnect(), admin.disconnect()]);
}
