import { spawnSync } from 'node:child_process';

const isCi = process.env.CI === 'true' || process.env.CI === '1';

/**
 * Debian's Python with stomp.py and websocket-client (`python3-stomp`,
 * `python3-websocket`). Not the `python3` on the PATH: that may be another
 * Python (pyenv) without Debian's packages.
 */
export const PYTHON = '/usr/bin/python3';

/** Debian's Chromium (`apt-get install chromium`); never one a test tool downloads. */
export const CHROMIUM = '/usr/bin/chromium';

/** Chromium's flags for the specs: headless, and no traffic of its own beyond 127.0.0.1. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why Debian's stomp.py cannot run here, or undefined when it can. */
export function missingPython(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import stomp, websocket'], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (r.error) return `${PYTHON} not found`;
  if (r.status !== 0)
    return `${PYTHON} lacks stomp.py or websocket-client (python3-stomp, python3-websocket)`;
  return undefined;
}

/** Why Debian's Chromium cannot run here, or undefined when it can. */
export function missingChromium(): string | undefined {
  const r = spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0) return `${CHROMIUM} not found (apt-get install chromium)`;
  return undefined;
}

/**
 * Decides whether a spec that needs a local tool runs: `reason` undefined means
 * yes. Off CI a missing tool skips the spec with a loud warning; under
 * `CI=true` it never skips: this throws, and the spec file fails.
 */
export function skipWithout(spec: string, reason: string | undefined): boolean {
  if (!reason) return false;
  if (isCi)
    throw new Error(`${spec} cannot run (${reason}); CI never skips it: .ci/run installs it.`);
  const line = `!!! ${spec} SKIPPED: ${reason}`;
  console.warn(`\n${'!'.repeat(line.length)}\n${line}\n${'!'.repeat(line.length)}\n`);
  return true;
}
