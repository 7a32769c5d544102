/**
 * Latency histograms and the small numeric helpers of the load harness.
 *
 * A histogram is an array of counts over logarithmic buckets 2% wide, starting
 * at 1 µs: a percentile read from it is within 2% of the exact one, and
 * merging the histograms of several client processes is a sum.
 */

/** Number of buckets: 1.02^1000 µs is about 400 s, far beyond any latency here. */
export const BUCKETS = 1000;
const GROWTH = Math.log(1.02);

/** A fresh, empty histogram. */
export function newHistogram(): Float64Array {
  return new Float64Array(BUCKETS);
}

/** The bucket of a latency in milliseconds; bucket 0 holds everything under 1 µs. */
export function bucketOf(ms: number): number {
  const us = ms * 1000;
  if (!(us >= 1)) return 0;
  const i = Math.floor(Math.log(us) / GROWTH) + 1;
  return i < BUCKETS ? i : BUCKETS - 1;
}

/** The latency (ms) a bucket stands for: the geometric middle of its range. */
function bucketValue(i: number): number {
  return i === 0 ? 0 : Math.exp((i - 0.5) * GROWTH) / 1000;
}

/** Adds `from` into `into`. */
export function mergeHistogram(into: Float64Array, from: ArrayLike<number>): void {
  for (let i = 0; i < BUCKETS; i++) into[i] = (into[i] as number) + (from[i] ?? 0);
}

/** The `p`-th percentile (0..100) in ms, or undefined for an empty histogram. */
export function percentile(hist: Float64Array, p: number): number | undefined {
  let total = 0;
  for (let i = 0; i < BUCKETS; i++) total += hist[i] as number;
  if (total === 0) return undefined;
  const rank = Math.ceil((p / 100) * total);
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    seen += hist[i] as number;
    if (seen >= rank) return bucketValue(i);
  }
  return bucketValue(BUCKETS - 1);
}

/** Wall-clock milliseconds comparable across processes on one machine (sub-ms resolution). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Formats a rate with three significant digits and a k/M suffix: `1.23 M`. */
export function formatRate(perSecond: number | undefined): string {
  if (perSecond === undefined || !Number.isFinite(perSecond)) return '–';
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toPrecision(3)} M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toPrecision(3)} k`;
  return perSecond.toPrecision(3);
}

/** Formats milliseconds with three significant digits. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '–';
  return ms >= 100 ? ms.toFixed(0) : ms.toPrecision(3);
}

/** Formats a ratio as `0.85×`. */
export function formatRatio(ratio: number | undefined): string {
  if (ratio === undefined || !Number.isFinite(ratio)) return '–';
  return `${ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2)}×`;
}

export { markdownTable } from '../harness.js';
