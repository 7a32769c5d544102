// Preloaded into a stompbus process (`node --import bench/load/heap-sample.mjs ...`, e.g. through
// cluster.bench.ts's BENCH_NODE_FLAGS): samples what the process allocates, the objects a
// collection freed included (V8's sampling heap profiler, which `--heap-prof` runs without
// them), for HEAP_SAMPLE_MS ms (default 30,000) from HEAP_SAMPLE_AFTER_MS ms after the start
// (default 12,000), then writes `<HEAP_SAMPLE_DIR or the working directory>/<pid>.heapprofile`
// (the folder made if missing; a failure is said on stderr).
// Read it with `npx tsx bench/load/heap-summary.ts <file>`: what the garbage collector has to
// clear up, and where it comes from. Plain JavaScript: stompbus runs from its build with no
// TypeScript loader.
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const after = Number(process.env.HEAP_SAMPLE_AFTER_MS ?? 12_000);
const duration = Number(process.env.HEAP_SAMPLE_MS ?? 30_000);
const dir = process.env.HEAP_SAMPLE_DIR ?? process.cwd();
const session = new Session();
session.connect();

function fail(what, error) {
  process.stderr.write(`[heap-sample] ${what}: ${error.message}\n`);
}

setTimeout(() => {
  session.post('HeapProfiler.enable');
  session.post(
    'HeapProfiler.startSampling',
    {
      // One sample per 16 KiB allocated on average (V8's default is 32 KiB).
      samplingInterval: 16_384,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    },
    (error) => error && fail('start', error),
  );
  setTimeout(() => {
    session.post('HeapProfiler.stopSampling', (error, result) => {
      if (error) return fail('stop', error);
      const file = join(dir, `${process.pid}.heapprofile`);
      try {
        mkdirSync(dir, { recursive: true });
        writeFileSync(file, JSON.stringify(result.profile));
      } catch (written) {
        return fail(`write ${file}`, written);
      }
      process.stderr.write(`[heap-sample] wrote ${file}\n`);
    });
  }, duration).unref();
}, after).unref();
