import { describe, expect, it } from 'vitest';
import { balancedOrders, inRoundOrder } from '../bench/load/orders.js';

/** How often run `a` comes right after run `b` within the rows, by "b>a". */
function followers(rows: number[][]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const row of rows) {
    for (let i = 1; i < row.length; i++) {
      const key = `${row[i - 1]}>${row[i]}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return counts;
}

describe("the benchmarks' order of runs in a round", () => {
  for (const n of [1, 2, 3, 4, 5, 6]) {
    it(`puts each of ${n} runs in every place equally often, and after every other equally often`, () => {
      const rows = balancedOrders(n);
      expect(rows).toHaveLength(n % 2 === 0 ? n : 2 * n);
      const times = rows.length / n;
      for (const row of rows) expect([...row].sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
      for (let place = 0; place < n; place++) {
        const counts = new Array(n).fill(0);
        for (const row of rows) counts[row[place] as number]++;
        expect(counts).toEqual(new Array(n).fill(times));
      }
      const pairs = followers(rows);
      // Every ordered pair of two different runs, each as often; no run right after itself.
      expect(pairs.size).toBe(n * (n - 1));
      for (const count of pairs.values()) expect(count).toBe(times);
    });
  }

  it('gives four runs the order that reversing every other round cannot', () => {
    const runs = ['new', 'old', 'floor', 'committing floor'];
    const rounds = [1, 2, 3, 4].map((round) => inRoundOrder(runs, round));
    expect(rounds).toEqual([
      ['new', 'old', 'committing floor', 'floor'],
      ['old', 'floor', 'new', 'committing floor'],
      ['floor', 'committing floor', 'old', 'new'],
      ['committing floor', 'new', 'floor', 'old'],
    ]);
    // Round 5 starts the rows again.
    expect(inRoundOrder(runs, 5)).toEqual(rounds[0]);
  });

  it('refuses a count of runs that is not one or more', () => {
    expect(() => balancedOrders(0)).toThrow(RangeError);
    expect(() => balancedOrders(2.5)).toThrow(RangeError);
  });
});
