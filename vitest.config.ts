import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['spec/**/*.spec.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // A real Kafka (KRaft, one node) for the cluster specs, unless KAFKA_BROKERS is given.
    globalSetup: ['./spec/kafka-global-setup.ts'],
    // Under CI a JSON report too, from which .ci/run prints its closing count line.
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: { json: '.cache/vitest-report.json' },
  },
});
