import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CompressionTypes, type IHeaders, Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { produceEncodings, useProduceEncoding } from '../../src/cluster/produce-encoding.js';
import { recordDecodings, useRecordDecoding } from '../../src/cluster/record-decoding.js';
import { kafkaBrokers, skipKafka, uniqueName } from '../helpers/cluster.js';

if (skipKafka) {
  console.warn(
    '!!! produce-encoding.spec.ts: the Kafka part SKIPPED (see spec/kafka-global-setup.ts)',
  );
}

// Before this process sends its first Produce request and reads its first fetched batch, as
// the stompbus command does.
const outcome = useProduceEncoding();
const decodingOutcome = useRecordDecoding();
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const PARTITIONS = 3;

interface Sent {
  key?: string | Buffer | null;
  value: string | Buffer | null;
  headers?: IHeaders;
  partition: number;
}

/** Records of every shape the encoding takes, each placed on a partition of its own choice. */
function records(count: number, tag: string): Sent[] {
  return Array.from({ length: count }, (_, i) => {
    const shape = i % 5;
    return {
      partition: i % PARTITIONS,
      key: shape === 0 ? null : shape === 1 ? Buffer.from([i & 0xff, 0, 0xff]) : `${tag}-k${i}-ü`,
      // A tombstone (no value) now and then; otherwise text or bytes, long and short.
      value:
        shape === 2 ? null : shape === 3 ? Buffer.alloc(i * 7, i) : `${tag}-${i}-${'ж'.repeat(i)}`,
      headers:
        shape === 4
          ? undefined
          : { one: `${i}`, many: [`${i}a`, Buffer.from(`${i}b`)], 'naïve ✓': 'é' },
    };
  });
}

/** A record as a consumer reads it back. */
interface Read {
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer | Buffer[]>;
}

/** What a consumer reads back for a sent record (kafkajs gives bytes, repeated names as arrays). */
function expected(record: Sent): Read {
  const bytes = (v: string | Buffer | null | undefined) =>
    v === null || v === undefined ? null : Buffer.from(v);
  const headers: Record<string, Buffer | Buffer[]> = {};
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    if (Array.isArray(value)) headers[name] = value.map((v) => Buffer.from(v));
    else if (value !== undefined) headers[name] = Buffer.from(value);
  }
  return { key: bytes(record.key), value: bytes(record.value), headers };
}

describe.skipIf(skipKafka)(
  "stompbus's Produce encoding and record reading with a real Kafka",
  () => {
    const kafka = new Kafka({
      clientId: 'produce-encoding-spec',
      brokers: kafkaBrokers.split(','),
      logLevel: logLevel.NOTHING,
    });
    const admin = kafka.admin();
    const topic = uniqueName('produce-encoding');

    afterAll(async () => {
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    });

    it('is in place in this process, as in the stompbus command', () => {
      expect(['applied', 'already']).toContain(outcome);
      expect(['applied', 'already']).toContain(decodingOutcome);
      const script = `
      import { createRequire } from 'node:module';
      const { createKafkajsClient } = await import(${JSON.stringify(`${REPO}dist/cluster/kafka-client.js`)});
      await createKafkajsClient({ brokers: ['127.0.0.1:9'] });
      const require = createRequire(${JSON.stringify(`${REPO}dist/cluster/kafka-client.js`)});
      console.log(require('kafkajs/src/protocol/requests/produce/v3/request.js').name);
      console.log(require('kafkajs/src/protocol/recordBatch/record/v0/decoder.js').name);
    `;
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
        cwd: REPO,
        encoding: 'utf8',
      });
      expect(out.trim().split('\n')).toEqual(['produceRequest', 'readRecord']);
    });

    it('writes batches Kafka accepts and reads them back unchanged: an idempotent producer, a transaction, and a compressed batch (written by kafkajs)', async () => {
      await admin.connect();
      await admin.createTopics({
        topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
        waitForLeaders: true,
      });
      const before = { ...produceEncodings };

      const idempotent = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await idempotent.connect();
      const plain = records(600, 'plain');
      // Three requests: the producer's sequence numbers go on across them.
      for (let at = 0; at < plain.length; at += 200) {
        await idempotent.send({ topic, acks: -1, messages: plain.slice(at, at + 200) });
      }
      const compressed = records(30, 'gzip');
      await idempotent.send({
        topic,
        acks: -1,
        compression: CompressionTypes.GZIP,
        messages: compressed,
      });
      await idempotent.disconnect();

      const transactional = kafka.producer({
        transactionalId: uniqueName('produce-encoding-tx'),
        idempotent: true,
        maxInFlightRequests: 1,
      });
      await transactional.connect();
      const transaction = await transactional.transaction();
      const inTransaction = records(50, 'tx');
      await transaction.send({ topic, messages: inTransaction });
      await transaction.commit();
      await transactional.disconnect();

      expect(produceEncodings.ours - before.ours).toBeGreaterThanOrEqual(4);
      expect(produceEncodings.kafkajs - before.kafkajs).toBe(1);

      const all = [...plain, ...compressed, ...inTransaction];
      const decodedBefore = { ...recordDecodings };
      const perPartition = new Map<number, Read[]>();
      const consumer = kafka.consumer({ groupId: uniqueName('produce-encoding-read') });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      let read = 0;
      const done = new Promise<void>((resolve) => {
        void consumer.run({
          eachMessage: async ({ partition, message }) => {
            const list = perPartition.get(partition) ?? [];
            list.push({
              key: message.key,
              value: message.value,
              headers: message.headers as Record<string, Buffer | Buffer[]>,
            });
            perPartition.set(partition, list);
            if (++read === all.length) resolve();
          },
        });
      });
      await done;
      await consumer.disconnect();

      for (let p = 0; p < PARTITIONS; p++) {
        expect(perPartition.get(p)).toEqual(all.filter((r) => r.partition === p).map(expected));
      }
      // Every record read back was read by stompbus's reading (the compressed ones too: they
      // are decompressed first), none handed to kafkajs'.
      expect(recordDecodings.ours - decodedBefore.ours).toBeGreaterThanOrEqual(all.length);
      expect(recordDecodings.kafkajs - decodedBefore.kafkajs).toBe(0);
    }, 60_000);
  },
);
