import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { javaCommand, missingKafkaTools } from '../../scripts/kafka.js';

const execFileAsync = promisify(execFile);

/** A cold `~/.m2` downloads Spring Boot and its plugins (~60 MB) first. */
const PACKAGE_TIMEOUT_MS = 8 * 60_000;

/** Which of `java` and `mvn` cannot be run here (the same probe as the Kafka setup's). */
export const missingJavaTools = missingKafkaTools;
export { javaCommand };

/**
 * Why a spec that runs a Kafka of its own must skip, or undefined: the same decision as
 * spec/kafka-global-setup.ts. Under CI it never skips; locally it skips (loudly) only
 * without Java and Maven, or with STOMPBUS_SKIP_KAFKA=1.
 */
export async function ownKafkaSkipReason(spec: string): Promise<string | undefined> {
  if (process.env.CI === 'true' || process.env.CI === '1') return undefined;
  const reason =
    process.env.STOMPBUS_SKIP_KAFKA === '1'
      ? 'STOMPBUS_SKIP_KAFKA=1'
      : await missingKafkaTools().then((m) =>
          m.length > 0 ? `${m.join(' and ')} not found` : undefined,
        );
  if (reason) {
    console.warn(
      `\n!!! ${spec} SKIPPED: ${reason} (it needs Java 17 and Maven to run a Kafka of its own)\n`,
    );
  }
  return reason;
}

/** How {@link mavenPackage} built one project. */
export interface MavenBuild {
  dir: string;
  ms: number;
  /** True when `-o` sufficed (everything was in `~/.m2`). */
  offline: boolean;
}

/**
 * JVM flags for short runs (Maven itself, the examples): C1 only and the serial GC start
 * and finish a small build about three times faster on two busy cores.
 */
export const QUICK_JVM = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-Xshare:auto'];

function mvnPackage(dir: string, offline: boolean) {
  return execFileAsync('mvn', ['-B', '-q', ...(offline ? ['-o'] : []), 'package'], {
    cwd: dir,
    // The caller's own MAVEN_OPTS come last, so they win.
    env: { ...process.env, MAVEN_OPTS: `${QUICK_JVM.join(' ')} ${process.env.MAVEN_OPTS ?? ''}` },
    timeout: PACKAGE_TIMEOUT_MS,
    maxBuffer: 16 << 20,
  });
}

/**
 * `mvn -B -q package` in each project folder: all at once offline (no network when
 * `~/.m2` has everything), then online one after another for those that failed, so that
 * two Maven processes never download into the same `~/.m2` at the same time.
 */
export function mavenPackage(dirs: string[]): Promise<MavenBuild[]> {
  return whileHolding(BUILD_LOCK, () => packageAll(dirs));
}

/**
 * Held while Maven builds: specs in parallel workers that build the same example
 * (spring.spec.ts and spring-cluster.spec.ts) take turns instead of writing one
 * target/ folder at the same time.
 */
const BUILD_LOCK = join(tmpdir(), 'stompbus-spec-maven.lock');

/** Runs `fn` holding a lock folder (mkdir is atomic); a holder that died leaves it free. */
async function whileHolding<T>(lock: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + PACKAGE_TIMEOUT_MS;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (holderGone(lock)) rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`${lock} still held after the build timeout`);
      else await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** True when the process named in the lock has exited (not when it is still writing its pid). */
function holderGone(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
  } catch {
    return false;
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * A copy of a built jar in a folder of its own, for a JVM to run: another spec's
 * `mvn package` may rewrite target/ while this one's app is still running.
 */
export function jarCopy(jar: string): string {
  const copy = join(mkdtempSync(join(tmpdir(), 'stompbus-jar-')), basename(jar));
  copyFileSync(jar, copy);
  return copy;
}

async function packageAll(dirs: string[]): Promise<MavenBuild[]> {
  const started = Date.now();
  const offline = await Promise.allSettled(dirs.map((dir) => mvnPackage(dir, true)));
  const builds: MavenBuild[] = [];
  for (const [i, dir] of dirs.entries()) {
    if (offline[i]?.status === 'fulfilled') {
      builds.push({ dir, ms: Date.now() - started, offline: true });
      continue;
    }
    const onlineStarted = Date.now();
    try {
      await mvnPackage(dir, false);
    } catch (error) {
      const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
      throw new Error(`mvn package in ${dir} failed:\n${stdout}${stderr}`, { cause: error });
    }
    builds.push({ dir, ms: Date.now() - onlineStarted, offline: false });
  }
  return builds;
}

/** A JVM started by {@link startJava}, with everything it printed so far. */
export interface JavaProcess {
  readonly child: ChildProcess;
  /** stdout and stderr, interleaved. */
  output(): string;
  /** Resolves with the first match of `pattern` in the output, or rejects at the deadline. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** SIGTERM by PID, SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `java <args>` and collects its output. */
export function startJava(args: string[], cwd?: string): JavaProcess {
  const child = spawn(javaCommand(), args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const listeners = new Set<() => void>();
  const append = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (const l of listeners) l();
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  // A test worker that ends without afterAll leaves no JVM behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('error', (error) => append(Buffer.from(`spawn failed: ${error.message}\n`)));
  child.once('close', () => {
    process.off('exit', killOnExit);
    for (const l of listeners) l();
  });

  return {
    child,
    output: () => text,
    waitFor(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = text.match(pattern);
          if (match) {
            done();
            resolve(match);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(
              new Error(
                `java exited (${child.exitCode ?? child.signalCode}) before ${pattern}:\n${text}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${text}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => {
        const running = child.exitCode === null && child.signalCode === null;
        if (running && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
