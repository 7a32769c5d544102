import { describe, expect, it } from 'vitest';
import { DELAY_BOUNDS, DelayCounter } from '../../src/cluster/delays.js';

describe('DelayCounter', () => {
  it('counts a delay in the first bucket whose bound is at least the delay, as Prometheus does (le)', () => {
    const delays = new DelayCounter();
    delays.add(0.5); // 0.5 ms: the first bucket, 0.0005 s, holds it (le)
    delays.add(0.6); // just past it: the second
    delays.add(10_000); // 10 s: the last bound
    delays.add(10_001); // past every bound
    expect([...delays.counts]).toEqual([1, 1, ...Array(DELAY_BOUNDS.length - 3).fill(0), 1, 1]);
    expect(delays.count).toBe(4);
    expect(delays.sum).toBeCloseTo((0.5 + 0.6 + 10_000 + 10_001) / 1000, 9);
  });

  it('counts a negative delay (clocks that differ) as 0 and leaves NaN out', () => {
    const delays = new DelayCounter();
    delays.add(-3);
    delays.add(Number.NaN);
    expect(delays.counts[0]).toBe(1);
    expect(delays.count).toBe(1);
    expect(delays.sum).toBe(0);
  });

  it('has ascending bounds from half a millisecond to 10 s', () => {
    expect(DELAY_BOUNDS[0]).toBe(0.0005);
    expect(DELAY_BOUNDS.at(-1)).toBe(10);
    expect([...DELAY_BOUNDS].sort((a, b) => a - b)).toEqual(DELAY_BOUNDS);
  });
});
