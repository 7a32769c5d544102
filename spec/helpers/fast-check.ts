import type fc from 'fast-check';

/** Runs per property when `FC_NUM_RUNS` is unset: enough for `npm test` to stay quick. */
const DEFAULT_NUM_RUNS = 200;

/** The seed when `FC_SEED` is unset: fixed, so a plain `vitest run` always checks the same cases. */
const DEFAULT_SEED = 1_202_605;

/** Milliseconds a property may take per run before vitest gives up: 20 000 runs need more than 30 s. */
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
