/**
 * Reads what `bench/load/stalls.mjs` wrote (one `<pid>.jsonl` per process) and prints, per
 * process, how late its timer fired (a tick late by L ms means the event loop was held up
 * for about L to L + the tick), how often by 20 ms or more, and how much of that the
 * garbage collector explains.
 *
 * ```sh
 * npx tsx bench/load/stalls-summary.ts /tmp/stalls [--seconds 16-20,37-40,45-48]
 * ```
 *
 * `--seconds` keeps those seconds of each process's life (counted from its start, so
 * processes started a second apart are off by one), e.g. a benchmark's measured runs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { markdownTable } from '../harness.js';

interface Line {
  second: number;
  cpuMs: number;
  lateMaxMs: number;
  lateSumMs: number;
  gc: { count: number; ms: number; maxMs: number };
  stalls: Array<{ lateMs: number; gcMs: number }>;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { seconds: { type: 'string' } },
});
const dir = positionals[0];
if (!dir) throw new Error('usage: stalls-summary.ts <dir> [--seconds a-b,c-d,…]');
/** The ranges of seconds kept (all when none given). */
const ranges = (values.seconds ?? '0-1000000000').split(',').map((range) => {
  const [a, b = a] = range.split('-').map(Number) as [number, number?];
  if (!Number.isFinite(a) || !Number.isFinite(b)) throw new Error(`--seconds: ${range}`);
  return [a, b] as const;
});
const kept = (second: number) => ranges.some(([a, b]) => second >= a && second <= b);
const median = (sorted: readonly number[]) => sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;

const rows: string[][] = [];
for (const name of readdirSync(dir)
  .filter((f) => f.endsWith('.jsonl'))
  .sort()) {
  const lines = readFileSync(join(dir, name), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line)
    .filter((l) => kept(l.second));
  if (lines.length === 0) continue;
  const seconds = lines.length;
  const stalls = lines.flatMap((l) => l.stalls);
  const late = stalls.map((s) => s.lateMs).sort((a, b) => a - b);
  const byGc = stalls.filter((s) => s.gcMs >= s.lateMs / 2);
  const gcMs = lines.reduce((s, l) => s + l.gc.ms, 0);
  const gcMax = Math.max(0, ...lines.map((l) => l.gc.maxMs));
  const cpu = lines.reduce((s, l) => s + l.cpuMs, 0) / seconds / 1000;
  const lateMax = lines.map((l) => l.lateMaxMs).sort((a, b) => a - b);
  const pauses = lines.reduce((s, l) => s + l.gc.count, 0) / seconds;
  const fmt = (n: number) => n.toFixed(1);
  rows.push([
    name.replace('.jsonl', ''),
    String(seconds),
    cpu.toFixed(2),
    fmt(median(lateMax)),
    fmt(lateMax[lateMax.length - 1] as number),
    String(stalls.length),
    fmt((stalls.length / seconds) * 60),
    late.length ? fmt(median(late)) : '–',
    late.length ? fmt(late[late.length - 1] as number) : '–',
    `${byGc.length} of ${stalls.length}`,
    fmt(pauses),
    fmt((gcMs / seconds / 1000) * 100),
    fmt(gcMax),
  ]);
}
console.log(
  markdownTable(
    [
      'pid',
      'seconds',
      'CPU (cores)',
      'latest tick per second, median ms',
      'latest tick, largest ms',
      'ticks 20 ms late or more',
      'per minute',
      'stall median ms',
      'stall max ms',
      'of them at least half collector',
      'collector pauses a second',
      'collector % of time',
      'longest pause ms',
    ],
    rows,
  ),
);
