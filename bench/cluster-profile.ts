/**
 * Where one cluster instance's CPU goes at the cluster benchmark's load (issue 12, "CPU per
 * record"): runs bench/cluster.bench.ts (`--quick` unless told otherwise) with `--cpu-prof`
 * on one of its three instances only, then prints the top self-time functions of that
 * instance's profile (bench/load/profile-summary.ts).
 *
 * ```sh
 * npx tsx bench/cluster-profile.ts                 # instance 1 (publishes and delivers), ~1.5 min
 * npx tsx bench/cluster-profile.ts --instance 2    # instance 2 (only delivers what it consumes)
 * npx tsx bench/cluster-profile.ts --top 40 --dir /tmp/prof-cluster --rounds 3
 * ```
 *
 * Profiling slows the instance down: read the latency figures of this run as nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values: args } = parseArgs({
  options: {
    instance: { type: 'string', default: '1' },
    top: { type: 'string', default: '30' },
    dir: { type: 'string' },
    rounds: { type: 'string', default: '3' },
  },
});
const dir = args.dir ?? mkdtempSync(join(tmpdir(), 'stompbus-cluster-prof-'));
mkdirSync(dir, { recursive: true });
const tsx = join(ROOT, 'node_modules', '.bin', 'tsx');

const bench = spawnSync(
  tsx,
  [
    'bench/cluster.bench.ts',
    '--quick',
    '--rounds',
    String(args.rounds),
    '--out',
    join(dir, 'cluster.md'),
  ],
  {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
    timeout: 600_000,
    env: {
      ...process.env,
      BENCH_NODE_FLAGS: `--cpu-prof --cpu-prof-dir=${dir}`,
      BENCH_FLAGS_FOR: `cluster-${args.instance}`,
    },
  },
);
if (bench.status !== 0)
  throw new Error(`cluster.bench.ts failed (${bench.status ?? bench.signal})`);
const profiles = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
if (profiles.length === 0) throw new Error(`no profile written to ${dir}`);
console.log(`# Profile of cluster instance ${args.instance} (${dir})\n`);
spawnSync(tsx, ['bench/load/profile-summary.ts', dir, '--top', String(args.top)], {
  cwd: ROOT,
  stdio: 'inherit',
});
