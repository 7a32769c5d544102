/**
 * `STOMPBUS_KAFKA_REQUEST_LOG` (scripts/kafka.ts, docs/configuration.md): the test broker logs
 * its own timing of every Produce request to that file, and `bench/load/kafka-requests.ts`
 * summarizes it. A Kafka of its own (the variable is read when the JVM starts), stopped by
 * this spec.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { type RunningKafka, startKafka } from '../../scripts/kafka.js';
import { ownKafkaSkipReason } from '../helpers/maven.js';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const skipReason = await ownKafkaSkipReason('kafka-request-log.spec.ts');
const dir = mkdtempSync(join(tmpdir(), 'stompbus-request-log-'));
let kafka: RunningKafka | undefined;

afterAll(async () => {
  await kafka?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Waits until `done()`, at most `ms`. */
async function until(done: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(skipReason !== undefined)("Kafka's request log", () => {
  it("has one line per Produce request with Kafka's timing, and only those; the summary reads it", async () => {
    const file = join(dir, 'requests.log');
    const before = process.env.STOMPBUS_KAFKA_REQUEST_LOG;
    process.env.STOMPBUS_KAFKA_REQUEST_LOG = file;
    try {
      kafka = await startKafka();
    } finally {
      if (before === undefined) delete process.env.STOMPBUS_KAFKA_REQUEST_LOG;
      else process.env.STOMPBUS_KAFKA_REQUEST_LOG = before;
    }
    const client = new Kafka({
      clientId: 'request-log-spec',
      brokers: [kafka.brokers],
      logLevel: logLevel.NOTHING,
    });
    const admin = client.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'request-log', numPartitions: 1 }] });
    await admin.disconnect();
    const producer = client.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    for (let i = 0; i < 3; i++) {
      await producer.send({ topic: 'request-log', acks: -1, messages: [{ value: `m${i}` }] });
    }
    await producer.disconnect();

    const lines = () =>
      existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
    await until(() => lines().length >= 3, 10_000);
    // Metadata, ApiVersions, CreateTopics… were answered too, but only Produce is written.
    const logged = lines().map((line) => JSON.parse(line.slice(line.indexOf('{'))));
    expect(logged).toHaveLength(3);
    for (const request of logged) {
      expect(request.requestHeader.requestApiKeyName).toBe('PRODUCE');
      expect(request.request.topicData[0].name).toBe('request-log');
      expect(request.totalTimeMs).toBeGreaterThan(0);
      expect(request.localTimeMs).toBeGreaterThanOrEqual(0);
    }
    // Not in the broker's own log, which stays short.
    expect(readFileSync(kafka.logFile, 'utf8')).not.toContain('Completed request');

    const tsx = join(ROOT, 'node_modules', '.bin', 'tsx');
    const { stdout } = await run(tsx, ['bench/load/kafka-requests.ts', file], { cwd: ROOT });
    expect(stdout).toMatch(/\| cluster's topic \| 3 +\| totalTimeMs +\|/);
  }, 120_000);
});
