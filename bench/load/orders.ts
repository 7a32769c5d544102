/**
 * The order of the runs in each round of a benchmark that compares several runs round
 * after round. A run can leave something behind for the next one (a Kafka with more to
 * collect, a busier page cache, a JIT warmed by the same work), so a run that always
 * follows the same run is measured against a different machine than the others. Reversing
 * the order every other round still lets the same neighbours meet: with runs A B C D, A
 * then always follows A or B.
 *
 * {@link balancedOrders} gives a Williams design: over its rows every run comes first,
 * second, … equally often, and every run follows every other run equally often (once for
 * an even count of runs with `n` rows; twice for an odd count with `2n` rows, the second
 * half the first one reversed). Round `r` (from 1) uses row `(r - 1) % rows`; with fewer
 * rounds than rows, or a count not a multiple of them, the balance is only approximate.
 */

/** The rows of a Williams design for `n` runs (indices 0 to n - 1). */
export function balancedOrders(n: number): number[][] {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`runs: ${n}`);
  // The first row goes 0, 1, n-1, 2, n-2, …; every later row adds one to each entry.
  const first: number[] = [0];
  for (let k = 1; first.length < n; k++) {
    first.push(k);
    if (first.length < n) first.push(n - k);
  }
  const rows = Array.from({ length: n }, (_, i) => first.map((x) => (x + i) % n));
  return n % 2 === 0 ? rows : [...rows, ...rows.map((row) => [...row].reverse())];
}

/** `items` in the order of round `round` (from 1) of {@link balancedOrders}. */
export function inRoundOrder<T>(items: readonly T[], round: number): T[] {
  const rows = balancedOrders(items.length);
  const row = rows[(round - 1) % rows.length] as number[];
  return row.map((i) => items[i] as T);
}
