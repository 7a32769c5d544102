/**
 * The three brokers under load and how to reach, start, measure and stop
 * them. Only stompbus and the bare ws server are started here (a fresh
 * process per scenario, so one scenario's heap does not weigh on the next);
 * RabbitMQ is the one already running on this machine.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Endpoint } from './client.js';

/**
 * The names `--only` accepts, in table order. `baseline` is a second stompbus
 * build from another checkout (run.ts --baseline <dir>), e.g. the commit
 * before a change, measured side by side with the current code.
 */
export const TARGET_NAMES = ['stompbus', 'baseline', 'ws', 'rabbitmq'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

/** The stompbus builds among the targets: started from a compiled `cli.js`, with queues. */
export const STOMPBUS_BUILDS: readonly TargetName[] = ['stompbus', 'baseline'];

/** A broker ready for clients. */
export interface Target {
  name: TargetName;
  endpoint: Endpoint;
  /** The broker's process, for /proc/<pid>/status. */
  pid: number;
  /** Whether it has queues (competing consumers). */
  queues: boolean;
  /**
   * Most client connections it can take safely, with why; undefined: no known
   * limit. RabbitMQ's is its fd limit: past it, it runs out of file descriptors
   * and its memory monitor crashes (seen with a soft limit of 1024).
   */
  maxConnections: { count: number; why: string } | undefined;
  /** Asks the broker for a full garbage collection (processes we start only). */
  collectGarbage: (() => Promise<void>) | undefined;
  /** Ends the process if the harness started it. */
  stop(): Promise<void>;
}

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
const HERE = fileURLToPath(new URL('./', import.meta.url));

/** Node flags that run a TypeScript entry point. */
export const TSX = ['--import', 'tsx'];

/** Node flags that let the harness trigger a full GC in a broker it started (SIGUSR2). */
const GC_ON_SIGNAL = ['--expose-gc', '--import', `${HERE}gc-on-signal.mjs`];

/** Every child the harness started and has not seen exit, for the emergency stop. */
export const children = new Set<ChildProcess>();

/** Raises the fd limit (as far as allowed) and execs the command: 10,000 sockets need it. */
export function spawnWithFds(argv: string[], ipc: boolean): ChildProcess {
  const script = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"';
  const child = spawn('sh', ['-c', script, 'sh', ...argv], {
    cwd: REPO,
    stdio: ipc ? ['ignore', 'inherit', 'inherit', 'ipc'] : ['ignore', 'pipe', 'inherit'],
    serialization: 'advanced',
    // A free admin port for each broker (builds without one ignore the variable).
    env: { ...process.env, STOMPBUS_ADMIN_PORT: process.env.STOMPBUS_ADMIN_PORT ?? '0' },
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Resident set size of a process, in bytes (VmRSS), or undefined if it is gone. */
export function rssOf(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** CPU time a process has used so far, in seconds: user and system (kernel). */
export function cpuSecondsOf(pid: number): { user: number; sys: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(fields[11]) / CLOCK_TICKS, sys: Number(fields[12]) / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK). */
const CLOCK_TICKS = 100;

/**
 * Where run.ts compiles stompbus (ignored by git, see .gitignore here): a
 * `dist/` next to a copy of package.json, the layout src/version.ts expects.
 */
const BUILD_ROOT = `${HERE}.build`;
const BUILD = `${BUILD_ROOT}/dist`;

/**
 * Compiles src/ once, at the start of a run, with the project's build config
 * into bench/load/.build, so every scenario runs the same code even while
 * src/ or dist/ change, and no TypeScript loader runs inside the broker (tsx
 * compiles with esbuild's keepNames, which gives closures an own `name`
 * property: more memory per connection). The bare ws server is compiled too.
 * Returns a note for the report when tsc complained about src/ (it still emits).
 */
export function buildTargets(): string | undefined {
  rmSync(BUILD_ROOT, { recursive: true, force: true });
  mkdirSync(BUILD_ROOT, { recursive: true });
  copyFileSync(`${REPO}package.json`, `${BUILD_ROOT}/package.json`);
  const tsc = `${REPO}node_modules/typescript/bin/tsc`;
  const args = ['-p', 'tsconfig.build.json', '--outDir', BUILD, '--declaration', 'false'];
  const result = spawnSync(process.execPath, [tsc, ...args, '--sourceMap', 'false'], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (!existsSync(`${BUILD}/cli.js`)) {
    throw new Error(`could not compile stompbus: ${result.stdout}${result.stderr}`);
  }
  // The bare ws server too, so that neither broker runs under a TypeScript loader.
  const ws = spawnSync(
    process.execPath,
    [tsc, `${HERE}ws-broadcast-server.ts`, '--outDir', `${BUILD_ROOT}/ws`, ...WS_SERVER_TSC],
    { cwd: REPO, encoding: 'utf8', timeout: 120_000 },
  );
  if (!existsSync(WS_SERVER_JS)) throw new Error(`could not compile the ws server: ${ws.stdout}`);
  builtWs = true;
  if (result.status === 0) return undefined;
  const errors = result.stdout.split('\n').filter((l) => l.includes('error TS')).length;
  return `tsc reported ${errors} type error(s) in src/ (emitted anyway)`;
}

/** tsconfig.json's settings for the one-file compile of the bare ws server. */
const WS_SERVER_TSC = [
  ...['--target', 'ES2022', '--module', 'NodeNext', '--moduleResolution', 'NodeNext'],
  ...['--strict', '--skipLibCheck', '--types', 'node'],
];
const WS_SERVER_JS = `${BUILD_ROOT}/ws/ws-broadcast-server.js`;
let builtWs = false;

/** The stompbus command line (run.ts builds it first, see {@link buildTargets}). */
export function stompbusCommand(nodeFlags: string[], build = BUILD): string[] {
  const flags = ['--host', '127.0.0.1', '--port', '0', '--tcp-port', '0'];
  const node = [process.execPath, ...GC_ON_SIGNAL, ...nodeFlags];
  return [...node, `${HERE}run-cli.mjs`, `${build}/cli.js`, ...flags];
}

/** The baseline build, once {@link buildBaseline} made it. */
export interface Baseline {
  /** The checkout it was compiled from. */
  checkout: string;
  /** `dist/` of the compiled build (its `cli.js` is started like ours). */
  build: string;
  /** Short commit of the checkout, `+dirty` when its src/ has uncommitted changes. */
  commit: string;
  /** How the report names it: `stompbus@<commit>`. */
  label: string;
}
let baseline: Baseline | undefined;

/** The baseline compiled for this run, if any. */
export function baselineBuild(): Baseline | undefined {
  return baseline;
}

/** How the report names a target. */
export function targetLabel(name: TargetName): string {
  if (name === 'baseline') return baseline?.label ?? 'stompbus (baseline)';
  return { stompbus: 'stompbus', ws: 'bare ws', rabbitmq: 'RabbitMQ Web-STOMP' }[name];
}

/**
 * Compiles another stompbus checkout (`--baseline <dir>`) the way
 * {@link buildTargets} compiles ours: that checkout's src/ with its
 * tsconfig.build.json and its own TypeScript, into `<dir>/bench/load/.build/dist`
 * next to a copy of its package.json. The build lives inside the checkout so
 * that its imports (ws, kafkajs...) resolve to that checkout's node_modules
 * (run `npm install` there first). It is started through our run-cli.mjs,
 * which calls the `main()` its src/cli.ts exports, as bin/stompbus.js does.
 */
export function buildBaseline(dir: string): Baseline {
  baseline = compileCheckout(dir, '.build');
  return baseline;
}

/**
 * Compiles the src/ of the stompbus checkout `dir` into
 * `<dir>/bench/load/<buildDir>/dist` (see {@link buildBaseline}); other
 * benchmarks use it with a build directory of their own (cluster.bench.ts:
 * `.build-cluster`), so that two harnesses running at once do not replace
 * each other's build.
 */
export function compileCheckout(dir: string, buildDir: string): Baseline {
  const checkout = resolve(dir);
  if (!existsSync(`${checkout}/src/cli.ts`) || !existsSync(`${checkout}/tsconfig.build.json`)) {
    throw new Error(`--baseline ${dir}: no src/cli.ts and tsconfig.build.json there`);
  }
  if (!existsSync(`${checkout}/node_modules`)) {
    throw new Error(`--baseline ${dir}: no node_modules (run npm install there first)`);
  }
  const root = `${checkout}/bench/load/${buildDir}`;
  const build = `${root}/dist`;
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  copyFileSync(`${checkout}/package.json`, `${root}/package.json`);
  const ownTsc = `${checkout}/node_modules/typescript/bin/tsc`;
  const tsc = existsSync(ownTsc) ? ownTsc : `${REPO}node_modules/typescript/bin/tsc`;
  const args = ['-p', 'tsconfig.build.json', '--outDir', build, '--declaration', 'false'];
  const result = spawnSync(process.execPath, [tsc, ...args, '--sourceMap', 'false'], {
    cwd: checkout,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (!existsSync(`${build}/cli.js`)) {
    throw new Error(`could not compile ${checkout}: ${result.stdout}${result.stderr}`);
  }
  const git = (...a: string[]) =>
    spawnSync('git', ['-C', checkout, ...a], { encoding: 'utf8', timeout: 5000 }).stdout?.trim();
  const head = git('rev-parse', '--short', 'HEAD') || 'unknown';
  const dirty = (git('status', '--porcelain', '--', 'src') ?? '').length > 0;
  const commit = dirty ? `${head}+dirty` : head;
  return { checkout, build, commit, label: `stompbus@${commit}` };
}

/** Forward the output of the brokers we start to stderr (run.ts --verbose). */
let verbose = false;
export function setVerbose(on: boolean): void {
  verbose = on;
}

/** Starts a child and waits for the line that tells its WebSocket URL. */
async function startChild(
  name: TargetName,
  argv: string[],
  urlPattern: RegExp,
  endpoint: Omit<Endpoint, 'url'>,
): Promise<Target> {
  const child = spawnWithFds(argv, false);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start in 20 s: ${out}`)),
      20_000,
    );
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const match = urlPattern.exec(out);
      if (match) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve(match[0]);
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}: ${out}`));
    });
  });
  // What the broker prints from now on goes to our stderr with --verbose, else nowhere.
  if (verbose) child.stdout?.pipe(process.stderr, { end: false });
  else child.stdout?.resume();
  return {
    name,
    endpoint: { ...endpoint, url },
    pid: child.pid as number,
    queues: STOMPBUS_BUILDS.includes(name),
    maxConnections: undefined,
    collectGarbage: async () => {
      process.kill(child.pid as number, 'SIGUSR2');
      await new Promise((resolve) => setTimeout(resolve, 1000));
    },
    stop: () => stopChild(child),
  };
}

/** SIGTERM, then SIGKILL after 8 s; resolves when the process is gone. */
export function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 8000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Finds the beam.smp process of the local RabbitMQ node. */
function rabbitPid(): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes('beam.smp') && cmd.includes('rabbit')) return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  return undefined;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(2000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** The fd limit of a process (soft), from /proc/<pid>/limits. */
export function fdLimitOf(pid: number): number | undefined {
  try {
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    const soft = /Max open files\s+(\d+)/.exec(limits)?.[1];
    return soft === undefined ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

const STOMP_PROTOCOLS = ['v12.stomp'];

/** File descriptors left to RabbitMQ itself (queue files, its own ports, the CLI). */
const RABBIT_FD_MARGIN = 250;

function rabbitCapacity(pid: number): Target['maxConnections'] {
  const limit = fdLimitOf(pid);
  if (limit === undefined) return undefined;
  let open = 0;
  try {
    open = readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
  const count = Math.max(0, limit - open - RABBIT_FD_MARGIN);
  return { count, why: `capped at ${count}: beam.smp fd limit ${limit}` };
}

/** Starts (or, for RabbitMQ, finds) a target. `nodeFlags` go to the Node brokers (e.g. --cpu-prof). */
export async function startTarget(name: TargetName, nodeFlags: string[] = []): Promise<Target> {
  const anonymous = { protocols: STOMP_PROTOCOLS, login: 'bench', passcode: 'bench', vhost: '/' };
  if (name === 'stompbus') {
    return startChild(name, stompbusCommand(nodeFlags), /ws:\/\/[\d.]+:\d+\/stomp/, anonymous);
  }
  if (name === 'baseline') {
    if (!baseline) throw new Error('no baseline build (run.ts --baseline <dir>)');
    const argv = stompbusCommand(nodeFlags, baseline.build);
    return startChild(name, argv, /ws:\/\/[\d.]+:\d+\/stomp/, anonymous);
  }
  if (name === 'ws') {
    // Compiled by buildTargets when this run compiled at all; else through tsx.
    const script = builtWs ? [WS_SERVER_JS] : [...TSX, `${HERE}ws-broadcast-server.ts`];
    const argv = [process.execPath, ...GC_ON_SIGNAL, ...nodeFlags, ...script, '--port', '0'];
    return startChild(name, argv, /ws:\/\/[\d.]+:\d+\//, anonymous);
  }
  const pid = rabbitPid();
  if (pid === undefined || !(await portOpen(15674))) {
    throw new Error(
      'RabbitMQ Web-STOMP is not listening on 127.0.0.1:15674 (scripts/rabbitmq-stomp.sh)',
    );
  }
  return {
    name,
    endpoint: {
      url: 'ws://127.0.0.1:15674/ws',
      protocols: STOMP_PROTOCOLS,
      login: 'guest',
      passcode: 'guest',
      vhost: '/',
    },
    pid,
    queues: true,
    maxConnections: rabbitCapacity(pid),
    collectGarbage: undefined,
    stop: async () => {},
  };
}
