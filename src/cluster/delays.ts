/**
 * Latency histograms counted on the hot path without prom-client: one bucket
 * increment per record, read when the metrics are scraped (`src/ops/metrics.ts`
 * turns them into Prometheus histograms).
 */
import type { DelayCounts } from '../broker/seams.js';

/**
 * Upper bounds of the buckets, seconds: from a delivery within half a
 * millisecond (one machine, idle) to a record that waited out a Kafka outage.
 */
export const DELAY_BOUNDS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** One histogram: how many delays fell in each bucket, their sum and count. */
export class DelayCounter implements DelayCounts {
  readonly bounds = DELAY_BOUNDS;
  /** Per bucket (not cumulative); the last counts what is past every bound. */
  readonly counts = new Float64Array(DELAY_BOUNDS.length + 1);
  /** Seconds, all delays together. */
  sum = 0;
  count = 0;

  /**
   * Counts a delay of `ms` milliseconds. A negative one (the clocks of two
   * machines that differ by more than the delay) counts as 0; NaN is not counted.
   */
  add(ms: number): void {
    if (Number.isNaN(ms)) return;
    const seconds = ms > 0 ? ms / 1000 : 0;
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && seconds > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += seconds;
    this.count++;
  }
}
