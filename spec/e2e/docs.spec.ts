import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  clusterTopics,
  deleteTopicsAfterTest,
  kafkaBrokers,
  skipKafka,
} from '../helpers/cluster.js';

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

/** The README's API section and every page of docs/: what they show must run. */
function documented(): Snippet[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## API\n');
  const api = readme.slice(start);
  const firstLine = readme.slice(0, start).split('\n').length;
  const all = snippets('README.md', api.slice(0, api.indexOf('\n## ', 1)), firstLine);
  for (const page of readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md'))) {
    all.push(...snippets(`docs/${page}`, readFileSync(join(ROOT, 'docs', page), 'utf8')));
  }
  return all;
}

describe('the snippets of the README and docs/', () => {
  const all = documented();

  it('finds the API snippets to run', () => {
    expect(all.length).toBeGreaterThanOrEqual(3);
  });

  for (const snippet of all) {
    const needsKafka = snippet.code.includes('stompbus/kafka');
    it.skipIf(needsKafka && skipKafka)(
      `${snippet.name} runs as written`,
      async () => {
        if (needsKafka) deleteTopicsAfterTest(clusterTopics('stompbus.topics'));
        mkdirSync(OUT, { recursive: true });
        const file = join(OUT, `${snippet.name.replace(/[^a-z0-9]+/gi, '-')}.mjs`);
        writeFileSync(file, snippet.code);
        // Exits by itself once the snippet is done: nothing may keep the process alive.
        const { stderr } = await run('node', [file], {
          cwd: ROOT,
          env: { ...process.env, KAFKA_BROKERS: kafkaBrokers },
          timeout: 60_000,
        });
        expect(stderr).not.toMatch(/Error/);
      },
      90_000,
    );
  }
});
