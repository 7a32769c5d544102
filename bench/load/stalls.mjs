// Preloaded into a stompbus process (`node --import bench/load/stalls.mjs ...`, e.g. through
// cluster.bench.ts's BENCH_NODE_FLAGS): once a second, appends to
// `<STALLS_DIR or the working directory>/<pid>.jsonl` how long the event loop was held up
// (a timer due every STALLS_TICK_MS ms, default 5, and how late it fired), what the
// garbage collector paused, and the process's CPU in that second. A stall is a tick later
// than STALLS_MIN_MS (default 20) ms: each is listed with the collector's pauses that ended
// within it, so a stall the collector explains can be told from one it does not (the
// process busy with other work, or waiting for a core). A tick late by L ms means the loop
// was held up for about L to L + STALLS_TICK_MS ms. A pause whose entry arrives after the
// second's line was written counts in the next line and is not matched with its stall.
// Read the files with `npx tsx bench/load/stalls-summary.ts <dir>`. A diagnostic: the ticks
// cost a little CPU.
// Plain JavaScript: stompbus runs from its build with no TypeScript loader.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';

const tickMs = Number(process.env.STALLS_TICK_MS ?? 5);
const minMs = Number(process.env.STALLS_MIN_MS ?? 20);
const dir = process.env.STALLS_DIR ?? process.cwd();
mkdirSync(dir, { recursive: true });
const file = join(dir, `${process.pid}.jsonl`);

/** The collector's pauses of the current second: [end (performance.now()), ms, kind]. */
let gcs = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcs.push([entry.startTime + entry.duration, entry.duration, entry.detail?.kind ?? entry.kind]);
  }
}).observe({ entryTypes: ['gc'] });

let last = performance.now();
let ticks = 0;
let lateMax = 0;
let lateSum = 0;
let stalls = [];
const timer = setInterval(() => {
  const now = performance.now();
  const late = now - last - tickMs;
  last = now;
  ticks++;
  lateSum += Math.max(0, late);
  if (late > lateMax) lateMax = late;
  if (late >= minMs) stalls.push({ at: now, lateMs: late, from: now - late - tickMs });
}, tickMs);
timer.unref();

let cpu = process.cpuUsage();
let second = 0;
const writer = setInterval(() => {
  second++;
  const used = process.cpuUsage(cpu);
  cpu = process.cpuUsage();
  const pauses = gcs;
  gcs = [];
  const line = {
    second,
    cpuMs: (used.user + used.system) / 1000,
    ticks,
    lateMaxMs: lateMax,
    lateSumMs: lateSum,
    gc: {
      count: pauses.length,
      ms: pauses.reduce((s, p) => s + p[1], 0),
      maxMs: Math.max(0, ...pauses.map((p) => p[1])),
    },
    stalls: stalls.map((s) => ({
      lateMs: Math.round(s.lateMs * 10) / 10,
      // The collector's pauses that ended within the stall.
      gcMs:
        Math.round(
          pauses.filter((p) => p[0] >= s.from && p[0] <= s.at).reduce((sum, p) => sum + p[1], 0) *
            10,
        ) / 10,
    })),
  };
  ticks = 0;
  lateMax = 0;
  lateSum = 0;
  stalls = [];
  try {
    appendFileSync(file, `${JSON.stringify(line)}\n`);
  } catch (error) {
    process.stderr.write(`[stalls] ${error.message}\n`);
  }
}, 1000);
writer.unref();
