import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** The project root (bin/stompbus.js runs the compiled dist/ from here). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The haproxy binary: on the PATH, or Debian's /usr/sbin/haproxy (not on a
 * non-root user's PATH); undefined when neither runs.
 */
export const HAPROXY = ['haproxy', '/usr/sbin/haproxy'].find((bin) => {
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8', timeout: 5_000 });
  return !r.error && r.status === 0;
});

/** `haproxy -v`'s first line, or undefined when haproxy is not installed. */
export function haproxyVersion(): string | undefined {
  if (!HAPROXY) return undefined;
  return spawnSync(HAPROXY, ['-v'], { encoding: 'utf8', timeout: 5_000 }).stdout.split('\n')[0];
}

/**
 * Compiles src/ to dist/ (bin/stompbus.js runs dist/cli.js), unless dist/ is newer than
 * every file of src/: spec/build-global-setup.ts has built it for this run already, and
 * `npm run build` empties dist/ first, under the feet of the instances that specs in other
 * workers are starting at the same time.
 */
export async function buildDist(): Promise<void> {
  const built = statSync(join(ROOT, 'dist', 'cli.js'), { throwIfNoEntry: false })?.mtimeMs;
  if (built !== undefined && newestIn(join(ROOT, 'src')) <= built) return;
  await promisify(execFile)('npm', ['run', 'build'], { cwd: ROOT, timeout: 60_000 });
}

/** The latest modification time of the files under `dir`, ms. */
function newestIn(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile())
      newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/** A free TCP port on 127.0.0.1 (free when asked; used right away). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A child process of this test, with its output kept for failure messages. */
export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly pid: number;
  /** stdout and stderr, interleaved. */
  output(): string;
  /** True once the process has exited. */
  exited(): boolean;
  /** Resolves when the process has exited. */
  readonly exit: Promise<void>;
}

const children = new Set<Child>();

function spawnChild(name: string, command: string, args: string[], cwd = ROOT): Child {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  let output = '';
  let hasExited = false;
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      hasExited = true;
      keep(Buffer.from(`\n[${name} exited: code ${code}, signal ${signal}]\n`));
      resolve();
    });
  });
  const handle: Child = {
    name,
    process: child,
    pid: child.pid,
    output: () => output,
    exited: () => hasExited,
    exit,
  };
  children.add(handle);
  return handle;
}

/** Sends SIGKILL to this child by its PID and waits until it has exited. */
export async function killChild(child: Child, timeoutMs = 5_000): Promise<void> {
  if (!child.exited()) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await Promise.race([child.exit, sleep(timeoutMs)]);
  children.delete(child);
}

/**
 * Sends SIGTERM to this child by its PID (an instance drains and exits by
 * itself) and waits up to `timeoutMs`; true when it exited. A child still
 * running then is killed.
 */
export async function terminateChild(child: Child, timeoutMs = 15_000): Promise<boolean> {
  if (!child.exited()) process.kill(child.pid, 'SIGTERM');
  await Promise.race([child.exit, sleep(timeoutMs)]);
  const exited = child.exited();
  await killChild(child);
  return exited;
}

/** Kills every child this helper started (by PID), e.g. in afterAll. */
export async function killAllChildren(): Promise<void> {
  await Promise.all([...children].map((c) => killChild(c)));
}

/** A stompbus instance started as `node bin/stompbus.js` (of this checkout or `root`). */
export interface Instance extends Child {
  readonly port: number;
  readonly tcpPort: number;
  /** The admin port (metrics, /users/<name>, the console). */
  readonly adminPort: number;
}

/**
 * Starts `node bin/stompbus.js` in cluster mode and waits until its /readyz
 * answers 200 (listening, Kafka joined, history read back). The checkout's own
 * bin/stompbus.js and dist/, or with `root` another build's (an older release's).
 */
export async function startInstance(
  name: string,
  options: {
    kafkaBrokers: string;
    kafkaTopic: string;
    timeoutMs?: number;
    /** Fixed ports, e.g. to restart an instance where it was. */
    port?: number;
    tcpPort?: number;
    adminPort?: number;
    /** More command-line flags. */
    args?: string[];
    /** The folder whose bin/stompbus.js runs, from that folder (compiled there). Default ROOT. */
    root?: string;
  },
): Promise<Instance> {
  // A port found free can be taken by another spec's process before this one binds it:
  // then the instance says so and exits, and it is started again on other ports.
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    const tcpPort = options.tcpPort ?? (await freePort());
    const adminPort = options.adminPort ?? (await freePort());
    const child = spawnChild(
      name,
      process.execPath,
      [
        'bin/stompbus.js',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--tcp-port',
        String(tcpPort),
        '--admin-port',
        String(adminPort),
        '--kafka-brokers',
        options.kafkaBrokers,
        '--kafka-topic',
        options.kafkaTopic,
        ...(options.args ?? []),
      ],
      options.root,
    );
    const deadline = Date.now() + (options.timeoutMs ?? 20_000);
    let ready = false;
    while (!ready) {
      if (child.exited()) {
        if (attempt < 3 && /is already in use/.test(child.output())) break;
        throw new Error(`${name} exited while starting:\n${child.output()}`);
      }
      if ((await readiness(port))?.status === 200) ready = true;
      else if (Date.now() > deadline) {
        await killChild(child);
        throw new Error(`${name} did not answer /readyz 200 on ${port}:\n${child.output()}`);
      } else await sleep(100);
    }
    if (ready) return Object.assign(child, { port, tcpPort, adminPort });
    await killChild(child);
    await sleep(200);
  }
}

/** An instance's /healthz answer, or undefined when it does not answer 200. */
export async function health(
  port: number,
): Promise<{ status: string; connections: number } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
      signal: AbortSignal.timeout(1_000),
    });
    if (res.status !== 200) return undefined;
    return (await res.json()) as { status: string; connections: number };
  } catch {
    return undefined;
  }
}

/** What an instance's /readyz answered. */
export interface Readiness {
  status: number;
  body: { ready: boolean; status: string; reason?: string; connections: number };
}

/** An instance's /readyz answer (200 or 503), or undefined when it does not answer. */
export async function readiness(port: number): Promise<Readiness | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, {
      signal: AbortSignal.timeout(1_000),
    });
    return { status: res.status, body: (await res.json()) as Readiness['body'] };
  } catch {
    return undefined;
  }
}

/** Ports of an HAProxy in front of stompbus instances. */
export interface HaproxyPorts {
  /** HTTP-mode frontend: STOMP over WebSocket (`ws://127.0.0.1:<ws>/stomp`). */
  ws: number;
  /** TCP-mode frontend: STOMP over TCP. */
  tcp: number;
}

/** The HAProxy configuration the specs run: the example's, addresses put in. */
export const HAPROXY_EXAMPLE = join(ROOT, 'examples', 'haproxy.cfg');

/**
 * examples/haproxy.cfg as it is (least connections, sticky by cookie, health
 * checks on /readyz every 500 ms, long-lived tunnels), with its frontends
 * bound to 127.0.0.1 on the given ports, its servers replaced by `instances`
 * and `maxconn` at a test's scale. Throws when the file no longer has the shape this expects.
 */
export function haproxyConfig(ports: HaproxyPorts, instances: Instance[]): string {
  const servers = {
    stompbus_ws: instances.map(
      (i, n) => `    server s${n + 1} 127.0.0.1:${i.port} check cookie s${n + 1}`,
    ),
    stompbus_tcp: instances.map(
      (i, n) => `    server s${n + 1} 127.0.0.1:${i.tcpPort} check port ${i.port}`,
    ),
  };
  const binds: Record<string, string> = {
    'bind *:8080': `    bind 127.0.0.1:${ports.ws}`,
    'bind *:61613': `    bind 127.0.0.1:${ports.tcp}`,
  };
  const out: string[] = [];
  const replaced = new Set<string>();
  let backend: keyof typeof servers | undefined;
  let global = false;
  for (const line of readFileSync(HAPROXY_EXAMPLE, 'utf8').split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const section = /^(frontend|backend|global|defaults)\b\s*(\S*)/.exec(t);
    if (section) backend = section[2] as keyof typeof servers | undefined;
    if (section?.[1] === 'global') global = true;
    else if (section) global = false;
    if (global && t.startsWith('maxconn ')) {
      // The example's 20,000 needs twice as many file descriptors as a test may raise.
      out.push('    maxconn 2000');
    } else if (t in binds) {
      out.push(binds[t] as string);
      replaced.add(t);
    } else if (t.startsWith('server ') && backend && backend in servers) {
      if (!replaced.has(backend)) out.push(...servers[backend]);
      replaced.add(backend);
    } else {
      out.push(line);
    }
  }
  const expected = [...Object.keys(binds), ...Object.keys(servers)];
  const missing = expected.filter((x) => !replaced.has(x));
  if (missing.length > 0) {
    throw new Error(`${HAPROXY_EXAMPLE}: found no ${missing.join(', ')} to put addresses in`);
  }
  return `${out.join('\n')}\n`;
}

/** A running `haproxy -f <cfg> -db`. */
export interface Haproxy extends Child {
  readonly ports: HaproxyPorts;
  readonly config: string;
  /** `ws://127.0.0.1:<port>/stomp`, through HAProxy. */
  readonly wsUrl: string;
}

/**
 * Writes the config (by default examples/haproxy.cfg's, see {@link haproxyConfig}) to a
 * temp dir, validates it (`haproxy -c`), starts HAProxy in the foreground and waits until
 * each port the config binds accepts connections.
 */
export async function startHaproxy(
  instances: Instance[],
  timeoutMs = 10_000,
  configFor: (ports: HaproxyPorts, instances: Instance[]) => string = haproxyConfig,
): Promise<Haproxy> {
  const ports = { ws: await freePort(), tcp: await freePort() };
  const config = configFor(ports, instances);
  const bound = [...config.matchAll(/^\s*bind 127\.0\.0\.1:(\d+)\s*$/gm)].map((m) => Number(m[1]));
  if (bound.length === 0) throw new Error(`the config binds no 127.0.0.1 port:\n${config}`);
  const dir = mkdtempSync(join(tmpdir(), 'stompbus-haproxy-'));
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  const check = spawnSync(HAPROXY ?? 'haproxy', ['-c', '-f', file], {
    encoding: 'utf8',
    timeout: 5_000,
  });
  if (check.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`haproxy -c rejected the config:\n${check.stdout}${check.stderr}\n${config}`);
  }
  const child = spawnChild('haproxy', HAPROXY ?? 'haproxy', ['-f', file, '-db']);
  void child.exit.then(() => rmSync(dir, { recursive: true, force: true }));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exited()) throw new Error(`haproxy exited while starting:\n${child.output()}`);
    if ((await Promise.all(bound.map(accepts))).every(Boolean)) break;
    if (Date.now() > deadline) {
      await killChild(child);
      throw new Error(`haproxy did not accept on ${bound.join('/')}:\n${child.output()}`);
    }
    await sleep(100);
  }
  return Object.assign(child, { ports, config, wsUrl: `ws://127.0.0.1:${ports.ws}/stomp` });
}

/** True when a TCP connection to 127.0.0.1:port is accepted. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
