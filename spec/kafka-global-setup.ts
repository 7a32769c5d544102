/**
 * Vitest global setup: one real Kafka broker for the whole run, handed to specs as
 * `inject('kafkaBrokers')`.
 *
 * - `KAFKA_BROKERS` set: use that cluster, start nothing.
 * - else with `java` and `mvn`: fetch (cached) and start a single-node KRaft broker on
 *   127.0.0.1 (`scripts/kafka.ts`), stopped by the returned teardown.
 * - else (or `STOMPBUS_SKIP_KAFKA=1`): under `CI=true` fail the run, never skip; locally
 *   warn loudly and provide `''` so that Kafka specs skip.
 */
import type { TestProject } from 'vitest/node';
import { fetchKafka, KAFKA_VERSION, missingKafkaTools, startKafka } from '../scripts/kafka.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Bootstrap servers of the run's Kafka (`host:port[,…]`), `''` when there is none. */
    kafkaBrokers: string;
  }
}

const isCi = process.env.CI === 'true' || process.env.CI === '1';

export default async function setup({
  provide,
}: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = process.env.KAFKA_BROKERS?.trim();
  if (external) {
    provide('kafkaBrokers', external);
    return undefined;
  }
  const reason =
    process.env.STOMPBUS_SKIP_KAFKA === '1'
      ? 'STOMPBUS_SKIP_KAFKA=1'
      : await missingKafkaTools().then((missing) =>
          missing.length > 0 ? `${missing.join(' and ')} not found` : undefined,
        );
  if (reason) {
    if (isCi) {
      throw new Error(
        `Kafka specs cannot run (${reason}); CI never skips them. Install Java 17 and Maven, or set KAFKA_BROKERS.`,
      );
    }
    warn(`${reason}: Kafka specs will be SKIPPED (they need Java 17 and Maven, or KAFKA_BROKERS).`);
    provide('kafkaBrokers', '');
    return undefined;
  }

  const fetchStarted = Date.now();
  await fetchKafka();
  const fetchMs = Date.now() - fetchStarted;
  const started = Date.now();
  const kafka = await startKafka();
  console.log(
    `[kafka] Kafka ${KAFKA_VERSION} at ${kafka.brokers} (pid ${kafka.pid}; fetch ${fetchMs} ms, ` +
      `start ${Date.now() - started} ms; log ${kafka.logFile})`,
  );
  provide('kafkaBrokers', kafka.brokers);
  return () => kafka.stop();
}

function warn(message: string): void {
  const line = '!'.repeat(Math.min(100, message.length + 12));
  console.warn(`\n${line}\n!!!  ${message}\n${line}\n`);
}
