import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Compiles src/ to dist/ once per test run, before any spec: the command
 * (bin/stompbus.js), the examples and the packed package all run the compiled
 * code, and specs building it side by side in parallel workers would race.
 */
export default function setup(): void {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'pipe' });
}
