/**
 * Reads an allocation profile written by `heap-sample.mjs` and prints where the allocated
 * bytes came from: by part of an instance's work (what the call stack passes through), and
 * the functions that allocated the most, by themselves and with what they called.
 *
 * Run: `npx tsx bench/load/heap-summary.ts <file.heapprofile> [--top 25]`.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { markdownTable } from './stats.js';

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

const { values, positionals } = parseArgs({
  options: { top: { type: 'string', default: '25' } },
  allowPositionals: true,
});
const file = positionals[0];
if (!file) throw new Error('usage: heap-summary.ts <file.heapprofile> [--top 25]');
const TOP = Number(values.top);
const { head } = JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode };

/**
 * The parts of a cluster instance's work, by what the stack passes through; the first that
 * matches wins (a SEND's way to the producer is "produce", its parsing before that "SEND in").
 */
const PARTS: Array<[string, RegExp]> = [
  [
    'produce: the fan-out publishing, the produce queue, kafkajs producing',
    /kafkajs\/src\/producer|produce-queue|produce-encoding|kafka-fanout\.js\n[^\n]*publish|records\.js\ntoRecord|packHeaders/,
  ],
  [
    'consume: kafkajs fetching, record reading, the fan-out handing records over, delivery',
    /kafkajs\/src\/consumer|fetch-loop|record-decoding|requests\/fetch|recordBatch|onRecords/,
  ],
  [
    'SEND in: WebSocket and TCP reads, frame parsing, sessions',
    /ws\/lib\/receiver|frame\/parser|session\//,
  ],
  ['kafkajs network: requests written, responses read', /kafkajs\/src\/network/],
  ['writes to clients', /transport\/connection|ws\/lib\/sender/],
];

const byPart = new Map<string, number>();
const self = new Map<string, number>();
const total = new Map<string, number>();
let all = 0;

function name(node: HeapNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url.split('/').slice(-2).join('/');
  return `${functionName || '(anonymous)'} ${where}${where ? `:${lineNumber + 1}` : ''}`;
}

function walk(node: HeapNode, stack: string, above: Set<string>): void {
  const here = name(node);
  const path = `${stack}\n${node.callFrame.url}\n${node.callFrame.functionName}`;
  const seen = new Set(above).add(here);
  if (node.selfSize > 0) {
    all += node.selfSize;
    self.set(here, (self.get(here) ?? 0) + node.selfSize);
    for (const f of seen) total.set(f, (total.get(f) ?? 0) + node.selfSize);
    const part = PARTS.find(([, re]) => re.test(path))?.[0] ?? 'other';
    byPart.set(part, (byPart.get(part) ?? 0) + node.selfSize);
  }
  for (const child of node.children) walk(child, path, seen);
}
walk(head, '', new Set());

const share = (bytes: number) => `${((100 * bytes) / all).toFixed(1)}%`;
const rows = (m: Map<string, number>, n: number) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => [share(v), k]);
console.log(`# Allocations of ${file}\n\n${(all / 1e6).toFixed(0)} MB sampled.\n`);
console.log('By part of the work\n');
console.log(markdownTable(['share', 'part'], rows(byPart, PARTS.length + 1)));
console.log('\nBy function, self\n');
console.log(markdownTable(['share', 'function'], rows(self, TOP)));
console.log('\nBy function, including callees\n');
total.delete(name(head));
console.log(markdownTable(['share', 'function'], rows(total, TOP)));
