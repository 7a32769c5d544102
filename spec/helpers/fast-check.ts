import fc from 'fast-check';
import { it } from 'vitest';

/** Runs per property when `FC_NUM_RUNS` is unset: enough for `npm test` to stay quick. */
const DEFAULT_NUM_RUNS = 200;

/** The seed when `FC_SEED` is unset: fixed, so a plain `vitest run` checks the same cases. */
const DEFAULT_SEED = 1_202_605;

/** Milliseconds a property may take per run: 20 000 runs need more than vitest's 30 s. */
const TIMEOUT_PER_RUN_MS = 10;

function readNumRuns(raw: string | undefined): number {
  if (raw === undefined || raw === '') return DEFAULT_NUM_RUNS;
  const runs = Number(raw);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new Error(`FC_NUM_RUNS must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return runs;
}

function readSeed(raw: string | undefined): number {
  if (raw === undefined || raw === '') return DEFAULT_SEED;
  if (raw === 'random') {
    // Drawn the way fast-check draws its own default seed, but here we know it, so a
    // passing fuzz run also says what it covered.
    const seed = (Date.now() ^ (Math.random() * 0x1_0000_0000)) | 0;
    console.info(`fast-check seed ${seed} (replay with FC_SEED=${seed})`);
    return seed;
  }
  const seed = Number(raw);
  if (!Number.isInteger(seed)) {
    throw new Error(`FC_SEED must be an integer or "random", got ${JSON.stringify(raw)}`);
  }
  return seed;
}

/** Runs per property, from `FC_NUM_RUNS` (default 200). */
export const numRuns = readNumRuns(process.env.FC_NUM_RUNS);

/** The seed of every property, from `FC_SEED` (default fixed; `random` draws and prints one). */
export const seed = readSeed(process.env.FC_SEED);

/** The vitest timeout for one property: the config's 30 s, or more for long fuzz runs. */
export const propertyTimeout = Math.max(30_000, numRuns * TIMEOUT_PER_RUN_MS);

/**
 * Parameters for `fc.assert`: the run count and seed above. A property that costs more
 * per run passes `runsScale` below 1 to keep the whole file within its time budget.
 */
export function fcParameters<T>(runsScale = 1): fc.Parameters<T> {
  return { numRuns: Math.max(1, Math.round(numRuns * runsScale)), seed };
}

/** How long a property may hold the event loop before it lets other work run. */
const BREATHE_EVERY_MS = 100;

/**
 * Turns a synchronous predicate into one for `fc.asyncProperty` that yields to the
 * event loop every 100 ms. A vitest worker that blocks for 60 s misses its runner's RPC
 * replies and the run fails with `Timeout calling "onTaskUpdate"` although every test
 * passed (vitest-dev/vitest#8164); long fuzz runs would do exactly that.
 */
export function breathing<Ts extends unknown[]>(
  predicate: (...args: Ts) => void,
): (...args: Ts) => Promise<void> {
  let since = Date.now();
  return async (...args) => {
    predicate(...args);
    if (Date.now() - since < BREATHE_EVERY_MS) return;
    await new Promise((resolve) => setImmediate(resolve));
    since = Date.now();
  };
}

/**
 * Declares a test that a property holds for `numRuns` cases from `seed`, with the
 * timeout those runs need, yielding now and then (see {@link breathing}). Name it as a
 * sentence that reads after "it always": `itAlways('parses what it encodes', ...)`.
 */
export function itAlways<Ts extends [unknown, ...unknown[]]>(
  name: string,
  arbitraries: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  predicate: (...args: Ts) => void,
  runsScale = 1,
): void {
  it(
    name,
    async () => {
      const property = fc.asyncProperty(...arbitraries, breathing(predicate));
      await fc.assert(property, fcParameters(runsScale));
    },
    propertyTimeout,
  );
}
