import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, StompError } from '../src/errors.js';

const root = new URL('..', import.meta.url).pathname;
const codes = Object.keys(ErrorCodes);

function specFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return specFiles(path);
    return path.endsWith('.ts') && path !== join(root, 'spec', 'errors.spec.ts') ? [path] : [];
  });
}

describe('the error catalog', () => {
  it('lists exactly the codes of src/errors.ts in the table of docs/protocol.md', () => {
    const page = readFileSync(join(root, 'docs', 'protocol.md'), 'utf8');
    const table = page.slice(page.indexOf('\n## Error codes\n'));
    const listed = [...table.matchAll(/^\| `(STOMP_ERR_[A-Z_]+)`\s*\|/gm)].map((m) => m[1]);
    expect(listed.sort()).toEqual([...codes].sort());
  });

  it('keeps that table in one place: the README links to it and lists no code itself', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    expect(readme).toContain('docs/protocol.md#error-codes');
    expect(readme.match(/^\| `STOMP_ERR_[A-Z_]+`/gm)).toBeNull();
  });

  it('has every code produced by at least one spec', () => {
    const text = specFiles(join(root, 'spec'))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    const untested = codes.filter((code) => !text.includes(`'${code}'`));
    expect(untested).toEqual([]);
  });

  it('builds errors that carry their code, message and cause', () => {
    const cause = new Error('boom');
    const error = new StompError('STOMP_ERR_INTERNAL', { cause, detail: 'while testing' });
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('STOMP_ERR_INTERNAL');
    expect(error.message).toContain('while testing');
    expect(error.cause).toBe(cause);
  });
});
