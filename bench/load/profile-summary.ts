/**
 * Reads a V8 CPU profile (`node --cpu-prof`, e.g. the stompbus profiles that
 * `run.ts --profile <dir>` leaves) and prints where the time went: by file,
 * by function (self), and by function including callees.
 *
 * Run: `npx tsx bench/load/profile-summary.ts <file.cpuprofile | dir> [--top 25]`; given a
 * directory, it reads the largest profile in it (the main thread's: a tsx loader
 * thread writes a small one next to it).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { markdownTable } from './stats.js';
import { REPO } from './targets.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
}

const { values, positionals } = parseArgs({
  options: { top: { type: 'string', default: '25' } },
  allowPositionals: true,
});
const given = positionals[0];
if (!given) throw new Error('usage: profile-summary.ts <file.cpuprofile | dir> [--top n]');
const file = statSync(given).isDirectory() ? largestProfile(given) : given;
const top = Number(values.top);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

function largestProfile(dir: string): string {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).size - statSync(a).size);
  if (!files[0]) throw new Error(`no .cpuprofile in ${dir}`);
  return files[0];
}

function shortUrl(url: string): string {
  if (!url) return '';
  return url
    .replace('file://', '')
    .replace(REPO, '')
    .replace(/^.*node_modules\//, '');
}

function fnKey(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = shortUrl(url);
  return where ? `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}` : functionName;
}

/** Groups files: our sources one by one, libraries by package, Node internals together. */
function fileKey(node: ProfileNode): string {
  const url = node.callFrame.url;
  if (!url) return node.callFrame.functionName; // (garbage collector), (program), (idle)
  if (url.startsWith('node:')) return 'node internals';
  const short = shortUrl(url);
  if (url.includes('node_modules/')) return short.split('/')[0] ?? short;
  return short;
}

const byId = new Map<number, ProfileNode>();
const parent = new Map<number, number>();
for (const node of profile.nodes) {
  byId.set(node.id, node);
  for (const child of node.children ?? []) parent.set(child, node.id);
}
const hits = new Map<number, number>();
for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
const total = profile.samples.length;
const idle = [...hits].reduce(
  (n, [id, h]) => n + (byId.get(id)?.callFrame.functionName === '(idle)' ? h : 0),
  0,
);

const self = new Map<string, number>();
const files = new Map<string, number>();
const inclusive = new Map<string, number>();
for (const [id, h] of hits) {
  const node = byId.get(id) as ProfileNode;
  self.set(fnKey(node), (self.get(fnKey(node)) ?? 0) + h);
  files.set(fileKey(node), (files.get(fileKey(node)) ?? 0) + h);
  // Each function on the stack once, however deep the recursion.
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const key = fnKey(byId.get(at) as ProfileNode);
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + h);
  }
}

const busy = total - idle;
const pct = (n: number) => `${((100 * n) / busy).toFixed(1)}%`;
const rows = (m: Map<string, number>, filter: (k: string) => boolean = () => true) =>
  [...m]
    .filter(([k]) => filter(k) && k !== '(idle)' && k !== '(root)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, n]) => [pct(n), k]);

const idleShare = ((100 * idle) / total).toFixed(1);
console.log(
  `${file}: ${total} samples, ${idleShare}% idle; shares below are of the ${busy} busy ones\n`,
);
console.log('By file (self time, % of non-idle samples)\n');
console.log(markdownTable(['self', 'file'], rows(files)));
console.log('\nBy function, self time\n');
console.log(markdownTable(['self', 'function'], rows(self)));
console.log('\nBy function, including callees (stompbus code only)\n');
console.log(
  markdownTable(
    ['total', 'function'],
    rows(inclusive, (k) => / (src|dist|bench)\//.test(k)),
  ),
);
