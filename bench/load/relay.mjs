// The relay of `bench/cluster.bench.ts --relay`: a Node process between STOMP clients and
// Kafka that does little more than forward, to tell what the cluster path costs on a machine
// from what stompbus adds to it. It speaks just enough STOMP for the benchmark's raw clients (CONNECTED,
// a RECEIPT for SUBSCRIBE) and no more: no sessions, no routing, no acks, no history, no
// metrics, no checks. A SEND's bytes after its command line go to Kafka as one record
// (key: the destination), batched as the fan-out and the floor batch (the records of one
// event-loop turn in one `sendBatch`, `acks: -1`, one request in flight); every record read
// back (kafkajs' consumer with the fan-out's settings, from the live end, no commits) goes
// to every subscriber of this relay as a MESSAGE, the frames of one batch in one WebSocket
// message. After a batch, the next fetch starts no sooner than `fetch-interval` ms (default
// 0) after the one that brought it, as `--kafka-fetch-interval` spaces an instance's fetches,
// so that the relays can load Kafka and the machine as the instances do.
//
//   node bench/load/relay.mjs <brokers> <topic> [kafkajs-fixes.js|-] [fetch-interval-ms]
//
// Prints `{"ws":"ws://127.0.0.1:<port>/"}` once it listens and consumes; SIGTERM stops it.
// Plain JavaScript: no TypeScript loader in the measured process.
import { randomBytes } from 'node:crypto';
import { WebSocketServer } from 'ws';
import { floorQueue, startFloorConsumer } from './floor-client.mjs';

const [brokers, topic, fixes, interval = '0'] = process.argv.slice(2);
const FETCH_INTERVAL_MS = Number(interval);
if (!brokers || !topic || !Number.isFinite(FETCH_INTERVAL_MS) || FETCH_INTERVAL_MS < 0) {
  console.error(
    'usage: node bench/load/relay.mjs <brokers> <topic> [kafkajs-fixes.js|-] [fetch-interval-ms]',
  );
  process.exit(2);
}
// kafkajs as the instances and the harness's floor run it (2.2.4's request-queue timer fixed).
if (fixes && fixes !== '-') (await import(fixes)).fixKafkajs();
const { Kafka, logLevel, Partitioners } = await import('kafkajs');

const MAX_BATCH_RECORDS = 1_000;
const NUL = Buffer.from([0]);

const kafka = new Kafka({
  clientId: 'stompbus-bench-relay',
  brokers: brokers.split(','),
  logLevel: logLevel.NOTHING,
  connectionTimeout: 3_000,
  requestTimeout: 10_000,
});
const producer = kafka.producer({
  createPartitioner: Partitioners.DefaultPartitioner,
  allowAutoTopicCreation: false,
});
await producer.connect();
const queue = floorQueue(producer, topic, MAX_BATCH_RECORDS, (count, error) =>
  console.error(`relay: ${count} records failed: ${String(error)}`),
);

/** Subscribers of this relay: socket → subscription id. */
const subscribers = new Map();
let nextMessageId = 0;
/**
 * When the last batch was handed over (performance.now()): kafkajs starts its next fetch
 * then, so this is about when the fetch now answered started.
 */
let fetchStartedAt = Number.NEGATIVE_INFINITY;

const consumer = await startFloorConsumer(kafka, {
  groupId: `stompbus-bench-relay-${randomBytes(4).toString('hex')}`,
  topic,
  autoCommit: false,
  eachBatch: async ({ batch }) => {
    for (const [ws, id] of subscribers) {
      const frames = [];
      for (const m of batch.messages) {
        if (!m.value) continue;
        frames.push(Buffer.from(`MESSAGE\nsubscription:${id}\nmessage-id:${nextMessageId++}\n`));
        frames.push(m.value);
      }
      if (frames.length > 0) ws.send(Buffer.concat(frames));
    }
    // kafkajs fetches again once every batch of the last fetch is handed over: holding the
    // batch back spaces the fetches (one destination, so one batch a fetch here). kafkajs
    // hands over no empty batch, so after a fetch that brought nothing the next goes at once.
    const wait = fetchStartedAt + FETCH_INTERVAL_MS - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    fetchStartedAt = performance.now();
  },
});
// A consumer that restarts reads on from the live end: what it skipped shows as lost, and
// this line says why.
consumer.on(consumer.events.CRASH, (event) =>
  console.error(`relay: consumer crashed: ${String(event.payload?.error)}`),
);

/** A header's value in a frame's head (`name:value` on a line of its own), or undefined. */
function header(head, name) {
  const at = head.indexOf(`\n${name}:`);
  if (at < 0) return undefined;
  const from = at + name.length + 2;
  const end = head.indexOf('\n', from);
  return head.slice(from, end < 0 ? head.length : end);
}

/** One frame from a client, `data` holding exactly one (as the benchmark's clients send). */
function onFrame(ws, data) {
  const lineEnd = data.indexOf(10);
  const command = data.toString('latin1', 0, lineEnd);
  if (command === 'SEND') {
    const headEnd = data.indexOf('\n\n');
    const head = data.toString('latin1', lineEnd, headEnd);
    // The frame without its command line: its headers, body and NUL, as the record's value.
    queue.offer({ key: header(head, 'destination') ?? '', value: data.subarray(lineEnd + 1) });
  } else if (command === 'SUBSCRIBE') {
    const head = data.toString('latin1', lineEnd);
    subscribers.set(ws, header(head, 'id') ?? '0');
    const receipt = header(head, 'receipt');
    if (receipt !== undefined)
      ws.send(Buffer.concat([Buffer.from(`RECEIPT\nreceipt-id:${receipt}\n\n`), NUL]));
  } else if (command === 'CONNECT' || command === 'STOMP') {
    ws.send(Buffer.concat([Buffer.from('CONNECTED\nversion:1.2\nheart-beat:0,0\n\n'), NUL]));
  }
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: false,
  handleProtocols: (protocols) => (protocols.has('v12.stomp') ? 'v12.stomp' : false),
});
server.on('connection', (ws) => {
  ws.on('error', (error) => console.error(`relay: client socket: ${String(error)}`));
  ws.on('message', (data) => onFrame(ws, data));
  ws.on('close', () => subscribers.delete(ws));
});
await new Promise((resolve) => server.once('listening', resolve));
console.log(JSON.stringify({ ws: `ws://127.0.0.1:${server.address().port}/` }));

process.once('SIGTERM', async () => {
  server.close();
  for (const ws of server.clients) ws.terminate();
  await queue.settled().catch(() => {});
  await consumer.disconnect().catch(() => {});
  await producer.disconnect().catch(() => {});
  process.exit(0);
});
