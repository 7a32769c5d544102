import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// A full GC between rounds, so one contender's garbage is not collected on the
// other's clock. The flag only takes effect for contexts created after it is set.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/**
 * How long each measurement runs. Set from `BENCH_WARMUP_MS`, `BENCH_ROUND_MS`
 * and `BENCH_ROUNDS` by {@link budgetFromEnv}.
 */
export interface BenchBudget {
  /** Untimed run per contender before the rounds, so the JIT settles. Default 250 ms. */
  warmupMs: number;
  /** Length of one timed round. Default 150 ms. */
  roundMs: number;
  /** Timed rounds per contender; the median is reported. Default 7. */
  rounds: number;
}

/** Reads the budget from `BENCH_WARMUP_MS`, `BENCH_ROUND_MS` and `BENCH_ROUNDS`. */
export function budgetFromEnv(env: NodeJS.ProcessEnv = process.env): BenchBudget {
  const read = (name: string, fallback: number): number => {
    const value = Number(env[name]);
    return Number.isFinite(value) && value > 0 ? value : fallback;
  };
  return {
    warmupMs: read('BENCH_WARMUP_MS', 250),
    roundMs: read('BENCH_ROUND_MS', 150),
    rounds: Math.floor(read('BENCH_ROUNDS', 7)),
  };
}

/** Median iterations per second of one contender, and how far its rounds spread. */
export interface Rate {
  /** Median of the rounds, in iterations per second. */
  perSecond: number;
  /** (slowest - fastest) / median over the rounds; 0.05 means the rounds agree within 5%. */
  spread: number;
  /** Every round, in the order run. */
  rounds: number[];
}

/** Runs `run` until `ms` milliseconds have passed; returns iterations per second. */
function timeRound(run: () => void, ms: number): number {
  let iterations = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    run();
    iterations++;
    elapsed = performance.now() - start;
  } while (elapsed < ms);
  return (iterations * 1000) / elapsed;
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * Times contenders doing the same work, one iteration per `run()` call. Rounds
 * alternate between contenders (A B A B ...), so clock drift and GC pressure
 * from one round fall on both sides alike.
 */
export function compare(runs: readonly (() => void)[], budget: BenchBudget): Rate[] {
  for (const run of runs) timeRound(run, budget.warmupMs);
  const samples: number[][] = runs.map(() => []);
  for (let round = 0; round < budget.rounds; round++) {
    runs.forEach((run, i) => {
      collectGarbage();
      samples[i]?.push(timeRound(run, budget.roundMs));
    });
  }
  return samples.map((values) => {
    const mid = median(values);
    const spread = (Math.max(...values) - Math.min(...values)) / mid;
    return { perSecond: mid, spread, rounds: values };
  });
}

/**
 * How many times faster `a` is than `b`: the median of the per-round ratios.
 * Round i of `a` ran right before round i of `b`, so a busy spell on a shared
 * host slows both sides of most pairs, and the ratio holds steadier than
 * either rate.
 */
export function speedup(a: Rate, b: Rate): number {
  return median(a.rounds.map((value, i) => value / (b.rounds[i] ?? Number.NaN)));
}

/** Formats a rate with three significant digits and a k/M suffix: `1.23 M`. */
export function formatRate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toPrecision(3)} M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toPrecision(3)} k`;
  return perSecond.toPrecision(3);
}

/** Formats bytes per second as MB/s (10^6 bytes). */
export function formatMBps(bytesPerSecond: number): string {
  const mb = bytesPerSecond / 1e6;
  return mb >= 100 ? mb.toFixed(0) : mb.toPrecision(3);
}

/** Renders rows as a markdown table, columns padded so it also reads as plain text. */
export function markdownTable(header: readonly string[], rows: readonly string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}
