import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['spec/**/*.spec.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // dist/ compiled once (the command and the examples run it), and a real
    // Kafka (KRaft, one node) for the cluster specs, unless KAFKA_BROKERS is given.
    globalSetup: ['./spec/build-global-setup.ts', './spec/kafka-global-setup.ts'],
    // Under CI a JSON report too, from which .ci/run prints its closing count line.
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: { json: '.cache/vitest-report.json' },
  },
});
