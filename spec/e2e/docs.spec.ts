import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  clusterTopics,
  deleteTopicsAfterTest,
  kafkaBrokers,
  skipKafka,
} from '../helpers/cluster.js';
import { startServer } from '../helpers/server.js';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Inside the checkout, so that `import 'stompbus'` resolves to this package (dist/). */
const OUT = join(ROOT, '.cache', 'snippets');

interface Snippet {
  readonly name: string;
  readonly code: string;
}

/** The `js` code blocks of a Markdown text, named after where they stand. */
function snippets(file: string, text: string, firstLine = 0): Snippet[] {
  const out: Snippet[] = [];
  for (const match of text.matchAll(/```js\n([\s\S]*?)```/g)) {
    const line = firstLine + text.slice(0, match.index).split('\n').length;
    out.push({ name: `${file}:${line}`, code: match[1] as string });
  }
  return out;
}

/** The `js` blocks of every page that must run: the README and every page of docs/. */
function documented(): Snippet[] {
  return pages().flatMap((page) => snippets(page, readFileSync(join(ROOT, page), 'utf8')));
}

/** The README and every page of docs/, as paths from the root. */
function pages(): string[] {
  const docs = readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md'));
  return ['README.md', ...docs.map((f) => `docs/${f}`)];
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a Markdown file's headings (outside code blocks). */
function anchors(text: string): Set<string> {
  const prose = text.replace(/```[\s\S]*?```/g, '');
  return new Set([...prose.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1] as string)));
}

describe('the links of the README and docs/', () => {
  it('point at files and headings of the repository', () => {
    const broken: string[] = [];
    for (const page of pages()) {
      const text = readFileSync(join(ROOT, page), 'utf8').replace(/```[\s\S]*?```/g, '');
      // Links, not images: docs/console.png is made by the console's own work.
      for (const match of text.matchAll(/(?<!!)\[[^\]]*\]\(([^)\s]+)\)/g)) {
        const target = match[1] as string;
        if (/^[a-z]+:/.test(target)) continue;
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const file = path ? join(ROOT, dirname(page), path) : join(ROOT, page);
        if (!existsSync(file)) broken.push(`${page}: ${target} (no file)`);
        else if (anchor && file.endsWith('.md') && !anchors(readFileSync(file, 'utf8')).has(anchor))
          broken.push(`${page}: ${target} (no heading #${anchor} in ${relative(ROOT, file)})`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('the snippets of the README and docs/', () => {
  const all = documented();

  it("finds the snippets to run, the README's client and embedding ones included", () => {
    expect(all.length).toBeGreaterThanOrEqual(6);
    const readme = all.filter((s) => s.name.startsWith('README.md:'));
    expect(readme.some((s) => s.code.includes('@stomp/stompjs'))).toBe(true);
    expect(readme.some((s) => s.code.includes('createBroker'))).toBe(true);
  });

  for (const snippet of all) {
    const needsKafka = snippet.code.includes('stompbus/kafka');
    // A client snippet connects to a running broker, at STOMPBUS_URL when set (as
    // documented): it gets a real stompbus on a free port, which must see it connect.
    const needsBroker = snippet.code.includes('process.env.STOMPBUS_URL');
    it.skipIf(needsKafka && skipKafka)(
      `${snippet.name} runs as written`,
      async () => {
        if (needsKafka) deleteTopicsAfterTest(clusterTopics('stompbus.topics'));
        const server = needsBroker ? await startServer({ tcpPort: null }) : undefined;
        let connected = 0;
        server?.broker.on('connect', () => connected++);
        mkdirSync(OUT, { recursive: true });
        const file = join(OUT, `${snippet.name.replace(/[^a-z0-9]+/gi, '-')}.mjs`);
        writeFileSync(file, snippet.code);
        // Exits by itself once the snippet is done: nothing may keep the process alive.
        const { stderr } = await run('node', [file], {
          cwd: ROOT,
          env: {
            ...process.env,
            KAFKA_BROKERS: kafkaBrokers,
            ...(server ? { STOMPBUS_URL: server.url } : {}),
          },
          timeout: 60_000,
        });
        expect(stderr).not.toMatch(/Error/);
        if (server) expect(connected, 'the snippet connected to the broker').toBeGreaterThan(0);
      },
      90_000,
    );
  }
});
