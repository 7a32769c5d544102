/**
 * Reads what `bench/load/stalls.mjs` wrote (one `<pid>.jsonl` per process) and prints, per
 * process, how often and how long its event loop was held up, and how much of it the
 * garbage collector explains.
 *
 * ```sh
 * npx tsx bench/load/stalls-summary.ts /tmp/stalls [--from <second>] [--to <second>]
 * ```
 *
 * `--from`/`--to` keep the seconds of each process's life in that range (e.g. the measured
 * rounds, after the start and its warm-up).
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
  options: { from: { type: 'string', default: '0' }, to: { type: 'string', default: '1e9' } },
});
const dir = positionals[0];
if (!dir) throw new Error('usage: stalls-summary.ts <dir> [--from s] [--to s]');
const from = Number(values.from);
const to = Number(values.to);

const rows: string[][] = [];
for (const name of readdirSync(dir)
  .filter((f) => f.endsWith('.jsonl'))
  .sort()) {
  const lines = readFileSync(join(dir, name), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line)
    .filter((l) => l.second >= from && l.second <= to);
  if (lines.length === 0) continue;
  const seconds = lines.length;
  const stalls = lines.flatMap((l) => l.stalls);
  const late = stalls.map((s) => s.lateMs).sort((a, b) => a - b);
  const byGc = stalls.filter((s) => s.gcMs >= s.lateMs / 2);
  const gcMs = lines.reduce((s, l) => s + l.gc.ms, 0);
  const gcMax = Math.max(0, ...lines.map((l) => l.gc.maxMs));
  const cpu = lines.reduce((s, l) => s + l.cpuMs, 0) / seconds / 1000;
  const fmt = (n: number) => n.toFixed(1);
  rows.push([
    name.replace('.jsonl', ''),
    String(seconds),
    cpu.toFixed(2),
    String(stalls.length),
    fmt((stalls.length / seconds) * 60),
    late.length ? fmt(late[Math.floor(late.length / 2)] as number) : '–',
    late.length ? fmt(late[late.length - 1] as number) : '–',
    `${byGc.length} of ${stalls.length}`,
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
      'stalls',
      'per minute',
      'stall median ms',
      'stall max ms',
      'stalls at least half collector',
      'collector % of time',
      'longest pause ms',
    ],
    rows,
  ),
);
