/**
 * One consumer of `fetch-loop.bench.ts`, in a process of its own so that its CPU is its own:
 * `loop` is the fan-out's fetch loop (src/cluster/fetch-loop.ts, through the kafkajs client's
 * `consume`), `runner` kafkajs' consumer as the fan-out ran it until 2026-12-05 (a group of its
 * own, no commits, `eachBatch`, each record mapped as `consume` maps it, with stompbus's kafkajs
 * fixes and record decoding).
 *
 * Run by the bench: `node --import tsx bench/load/consume-child.ts <loop|runner> <brokers>
 * <topic> <fetchIntervalMs>`. It reports on IPC: `ready` once it reads from the live end, then
 * for each `start`…`stop` window the CPU it used and the records it got.
 */
import { Kafka, logLevel } from 'kafkajs';
import { createKafkajsClient, fromKafkaMessage } from '../../src/cluster/kafka-client.js';
import { fixKafkajs } from '../../src/cluster/kafkajs-fixes.js';
import { useRecordDecoding } from '../../src/cluster/record-decoding.js';

const [mode, brokers = '', topic = '', interval = '0'] = process.argv.slice(2);
let records = 0;
let cpu = process.cpuUsage();
let started = performance.now();

if (mode === 'loop') {
  const client = await createKafkajsClient({ brokers: brokers.split(',') });
  await client.consume({
    groupId: `fetch-loop-bench-${process.pid}`,
    topics: [topic],
    positions: () => new Map(),
    onRecords: (batch) => {
      records += batch.length;
    },
    onCrash: (error) => {
      console.error(error);
      process.exit(1);
    },
    joinTimeoutMs: 30_000,
    fetchIntervalMs: Number(interval),
  });
} else if (mode === 'runner') {
  fixKafkajs();
  useRecordDecoding();
  const kafka = new Kafka({ brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({
    groupId: `fetch-loop-bench-runner-${process.pid}`,
    sessionTimeout: 6_000,
    heartbeatInterval: 2_000,
    maxWaitTimeInMs: 250,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: false });
  const joined = new Promise<void>((resolve) =>
    consumer.on(consumer.events.GROUP_JOIN, () => resolve()),
  );
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, heartbeat }) => {
      // As the fan-out's consumer did: each record mapped as `consume` hands it over.
      records += batch.messages.map((m) => fromKafkaMessage(batch, m)).length;
      await heartbeat();
    },
  });
  await joined;
} else {
  throw new Error(`unknown mode ${mode}`);
}

process.send?.({ ready: true });
process.on('message', (message) => {
  if (message === 'start') {
    records = 0;
    cpu = process.cpuUsage();
    started = performance.now();
  } else if (message === 'stop') {
    const used = process.cpuUsage(cpu);
    process.send?.({
      records,
      cpuMicros: used.user + used.system,
      seconds: (performance.now() - started) / 1000,
    });
  } else if (message === 'exit') {
    process.exit(0);
  }
});
