// The Kafka floor of bench/ceiling.bench.ts: a plain kafkajs producer or consumer in a
// process of its own (forked by the benchmark, driven over IPC), so that the floor's
// producer and consumer each get a process, as instance 1 (producing) and instance 2
// (consuming) do in the cluster.
//
//   node bench/load/ceiling-floor.mjs produce <brokers> <topic> [packed|each] [kafkajs-fixes.js] [produce-encoding.js] [record-decoding.js]
//   node bench/load/ceiling-floor.mjs consume <brokers> <topic> [packed|each] [kafkajs-fixes.js]
//
// The producer batches like the fan-out's produce queue (src/cluster/produce-queue.ts): the
// records of one event-loop turn in one `sendBatch`, at most 1,000 per request, `acks: -1`,
// one request in flight; each record carries the headers a stompbus record of the
// benchmark's SEND carries: `content-type` and a message id, packed in one record header
// (`stompbus-headers`, stompbus's default format) or one header each (`each`, the 4th
// argument, as `--kafka-headers each` writes them). The consumer uses the
// fan-out's consumer settings (`eachBatch`, 250 ms longest fetch wait, heart-beat 2 s, no
// offset commits: the fan-out makes none; until 2026-12-05 this consumer committed after every
// batch, kafkajs' default).
// Plain JavaScript: no TypeScript loader in the measured processes.
import { randomBytes } from 'node:crypto';
import { Tracker } from './ceiling-track.mjs';
import { floorQueue, startFloorConsumer } from './floor-client.mjs';

const [role, brokers, topic, format = 'packed', fixes, encoding, decoding] = process.argv.slice(2);
// kafkajs as the instances run it, with 2.2.4's two fixes (the compiled
// src/cluster/kafkajs-fixes.js, given by the benchmark), applied before kafkajs loads.
if (fixes) (await import(fixes)).fixKafkajs();
// With `--floor-encoding stompbus`, the instances' Produce request encoding too (the
// compiled src/cluster/produce-encoding.js); by default kafkajs encodes its own.
if (encoding) (await import(encoding)).useProduceEncoding();
// And the instances' reading of fetched records (src/cluster/record-decoding.js).
if (decoding) (await import(decoding)).useRecordDecoding();
const { Kafka, logLevel, Partitioners } = await import('kafkajs');
const MAX_BATCH_RECORDS = 1_000;
const BODY_SIZE = 256;
const now = () => performance.timeOrigin + performance.now();
const send = (m) => process.send?.(m);

const kafka = new Kafka({
  clientId: `stompbus-ceiling-floor-${role}`,
  brokers: brokers.split(','),
  logLevel: logLevel.NOTHING,
  connectionTimeout: 3_000,
  requestTimeout: 10_000,
});

/** `<seq> <sent-ms> ` padded with `x` to the body size, as the STOMP publisher writes it. */
export function body(seq, sentMs) {
  const head = `${seq} ${sentMs.toFixed(3)} `;
  return Buffer.from(head + 'x'.repeat(BODY_SIZE - head.length));
}

async function produce() {
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const idBase = `stompbus-floor-${randomBytes(3).toString('hex')}-`;
  let failed = 0;
  const queue = floorQueue(producer, topic, MAX_BATCH_RECORDS, (count) => {
    failed += count;
  });
  process.on('message', async (m) => {
    if (m.type === 'run') {
      const { base, count, rate, keys } = m;
      const start = performance.now();
      let i = 0;
      await new Promise((resolve) => {
        const timer = setInterval(() => {
          const due = Math.min(count, Math.floor(((performance.now() - start) * rate) / 1000));
          for (; i < due; i++) {
            const seq = base + i;
            queue.offer({
              key: keys[seq % keys.length],
              value: body(seq, now()),
              headers:
                format === 'each'
                  ? { 'content-type': 'text/plain', 'stompbus-message-id': `${idBase}${seq}` }
                  : { 'stompbus-headers': `${idBase}${seq}\ncontent-type:text/plain` },
            });
          }
          if (i >= count) {
            clearInterval(timer);
            resolve();
          }
        }, 1);
      });
      const seconds = (performance.now() - start) / 1000;
      await queue.settled();
      send({ type: 'done', seconds, failed });
      failed = 0;
    } else if (m.type === 'stop') {
      await producer.disconnect().catch(() => {});
      process.exit(0);
    }
  });
  send({ type: 'ready' });
}

async function consume() {
  let tracker;
  const consumer = await startFloorConsumer(kafka, {
    groupId: `${topic}-${randomBytes(3).toString('hex')}`,
    topic,
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const t = now();
      for (const m of batch.messages) if (m.value) tracker?.body(m.value, 0, m.key, t);
    },
  });
  process.on('message', async (m) => {
    if (m.type === 'start') tracker = new Tracker(m.base, m.count, m.keys.length);
    else if (m.type === 'report') send({ type: 'report', report: tracker?.report() });
    else if (m.type === 'stop') {
      await consumer.disconnect().catch(() => {});
      process.exit(0);
    }
  });
  send({ type: 'ready' });
}

if (role === 'produce') await produce();
else if (role === 'consume') await consume();
else throw new Error(`usage: ceiling-floor.mjs produce|consume <brokers> <topic>`);
