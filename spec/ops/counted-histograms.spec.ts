import { describe, expect, it } from 'vitest';
import { LocalFanout } from '../../src/broker/local-fanout.js';
import type { ClusterStats } from '../../src/broker/seams.js';
import { DelayCounter } from '../../src/cluster/delays.js';
import { createBroker } from '../../src/stomp-broker.js';

/**
 * The histograms a cluster backend counts itself (`stompbus_kafka_produce_wait_seconds`,
 * `stompbus_kafka_record_delay_seconds`), as a scrape writes them; no Kafka needed: an
 * embedded backend given the stats a cluster one reports.
 */

/** The stats of a cluster backend, the two optional histograms as given. */
function stats(more: Partial<ClusterStats> = {}): ClusterStats {
  return {
    instanceId: 'spec',
    recordsConsumed: () => new Map(),
    lag: () => [],
    instances: () => [],
    onProduced: () => {},
    ...more,
  };
}

async function scrape(clusterStats: ClusterStats): Promise<string[]> {
  const fanout = new LocalFanout();
  Object.defineProperty(fanout, 'stats', { value: clusterStats });
  const broker = createBroker({ fanout });
  try {
    return (await broker.metrics.metrics()).split('\n');
  } finally {
    await broker.close();
  }
}

describe('histograms counted by the cluster backend', () => {
  it('are written as Prometheus histograms: cumulative buckets, +Inf the count, the sum in seconds', async () => {
    const waits = new DelayCounter();
    for (const ms of [0.2, 3, 3, 40, 20_000]) waits.add(ms);
    const late = new DelayCounter();
    late.add(7);
    const lines = await scrape(
      stats({ produceWait: () => waits, recordDelay: () => new Map([['t', late]]) }),
    );
    const wait = (rest: string) =>
      lines.find((l) => l.startsWith(`stompbus_kafka_produce_wait_seconds${rest} `));
    expect(lines).toContain('# TYPE stompbus_kafka_produce_wait_seconds histogram');
    expect(wait('_bucket{le="0.0005"}')).toMatch(/ 1$/);
    expect(wait('_bucket{le="0.0025"}')).toMatch(/ 1$/);
    expect(wait('_bucket{le="0.005"}')).toMatch(/ 3$/);
    expect(wait('_bucket{le="0.05"}')).toMatch(/ 4$/);
    expect(wait('_bucket{le="10"}')).toMatch(/ 4$/);
    expect(wait('_bucket{le="+Inf"}')).toMatch(/ 5$/);
    expect(wait('_count')).toMatch(/ 5$/);
    expect(Number(wait('_sum')?.split(' ')[1])).toBeCloseTo(20.0462, 6);
    expect(lines).toContain('# TYPE stompbus_kafka_record_delay_seconds histogram');
    expect(lines).toContain('stompbus_kafka_record_delay_seconds_bucket{topic="t",le="0.005"} 0');
    expect(lines).toContain('stompbus_kafka_record_delay_seconds_bucket{topic="t",le="0.01"} 1');
    expect(lines).toContain('stompbus_kafka_record_delay_seconds_count{topic="t"} 1');
  });

  it('are left out for a backend that does not count them, and the scrape still works', async () => {
    const lines = await scrape(stats());
    expect(lines).toContain('# TYPE stompbus_kafka_produce_duration_seconds histogram');
    expect(lines.some((l) => l.includes('produce_wait') || l.includes('record_delay'))).toBe(false);
  });
});
