/**
 * A real single-node Apache Kafka (KRaft, broker+controller) for the test suite, fetched
 * from Maven Central with Maven and run with `java -cp "<libs>/*" kafka.Kafka` — no Docker,
 * no tarball. docs/kafka.md has the facts this relies on.
 *
 * ```sh
 * npm run kafka -- fetch                # download the jars into the cache
 * npm run kafka -- start [--port 9092]  # run in the foreground, Ctrl-C stops it
 * npm run kafka -- stop                 # stop the one `start` runs
 * ```
 *
 * Importable: `spec/kafka-global-setup.ts` uses {@link fetchKafka} and {@link startKafka};
 * a failure spec can stop Kafka with `keepData` and start it again on the same ports.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';

/** The Kafka release fetched; keep in step with `kafka.version` in `scripts/kafka/pom.xml`. */
export const KAFKA_VERSION = '4.1.2';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const POM = join(ROOT, 'scripts/kafka/pom.xml');
const LOG4J_CONFIG = join(ROOT, 'scripts/kafka/log4j2.properties');
/**
 * The same, and Kafka's request logger at DEBUG with its Produce lines going to the file named
 * by STOMPBUS_KAFKA_REQUEST_LOG: Kafka's own timing of every produce request (a diagnostic;
 * `bench/load/kafka-requests.ts` reads the file).
 */
const REQUEST_LOG4J_CONFIG = join(ROOT, 'scripts/kafka/log4j2-requests.properties');
const HOST = '127.0.0.1';
/** Maven may download ~40 MB on a cold `~/.m2`. */
const FETCH_TIMEOUT_MS = 10 * 60_000;
const FORMAT_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;
const KILL_TIMEOUT_MS = 5_000;
/** Auto-picked ports can be taken between our probe and Kafka's bind: try again this often. */
const PORT_ATTEMPTS = 3;

const execFileAsync = promisify(execFile);

/** Where fetched releases live: `STOMPBUS_KAFKA_CACHE`, default `<project>/.cache/kafka`. */
export function kafkaCacheDir(): string {
  return process.env.STOMPBUS_KAFKA_CACHE || join(ROOT, '.cache/kafka');
}

/** The folder holding every jar of the release (the `java -cp` wildcard target). */
export function kafkaLibsDir(cacheDir = kafkaCacheDir()): string {
  return join(cacheDir, `kafka-${KAFKA_VERSION}`, 'libs');
}

/** `java` from `JAVA_HOME` when set (as Maven does), else from `PATH`. */
export function javaCommand(): string {
  return process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
}

/** The tools {@link fetchKafka} and {@link startKafka} need that are not installed (`java`, `mvn`). */
export async function missingKafkaTools(): Promise<string[]> {
  const probes: Array<[string, string, string[]]> = [
    ['java', javaCommand(), ['-version']],
    ['mvn', 'mvn', ['-v', '-B']],
  ];
  const missing: string[] = [];
  for (const [name, command, args] of probes) {
    try {
      await execFileAsync(command, args, { timeout: 30_000 });
    } catch {
      missing.push(name);
    }
  }
  return missing;
}

/**
 * Copies `kafka_2.13` and its runtime dependencies into {@link kafkaLibsDir} with Maven and
 * returns that folder. Skipped when the cache already holds a copy made from the current
 * `pom.xml`; `~/.m2` keeps the downloads, so a fresh cache folder costs no network.
 */
export async function fetchKafka(options: { cacheDir?: string } = {}): Promise<string> {
  const libs = kafkaLibsDir(options.cacheDir);
  const marker = join(libs, '..', 'fetched-from-pom.sha256');
  const pomHash = createHash('sha256').update(readFileSync(POM)).digest('hex');
  if (existsSync(marker) && readFileSync(marker, 'utf8').trim() === pomHash) return libs;
  // Copy into a folder of our own, then swap it in: a concurrent run never sees half the
  // jars, and a changed pom leaves no old jar on the class path.
  const staging = `${libs}.${process.pid}.tmp`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const args = ['-q', '-B', '-f', POM, 'dependency:copy-dependencies'];
  args.push(`-DoutputDirectory=${staging}`, '-DincludeScope=runtime');
  try {
    await execFileAsync('mvn', args, { timeout: FETCH_TIMEOUT_MS, maxBuffer: 16 << 20 });
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`mvn ${args.join(' ')} failed:\n${stdout}${stderr}`, { cause: error });
  }
  rmSync(libs, { recursive: true, force: true });
  renameSync(staging, libs);
  writeFileSync(marker, `${pomHash}\n`);
  return libs;
}

/** Options of {@link startKafka}; every one is optional. */
export interface StartKafkaOptions {
  /** Client (PLAINTEXT) port on 127.0.0.1. Default: a free port. */
  port?: number;
  /** KRaft controller port on 127.0.0.1. Default: a free port. */
  controllerPort?: number;
  /** Holds `server.properties`, `kafka.log` and the log dirs. Default: a new temp folder. */
  dataDir?: string;
  /** Keep `dataDir` when stopped, to start again on the same data. Default: false. */
  keepData?: boolean;
  /** Jar folder. Default: {@link fetchKafka} (which is a no-op when the cache is warm). */
  libsDir?: string;
  /** Longest wait for the broker to answer `describeCluster`. Default: 60 s. */
  readyTimeoutMs?: number;
  /** JVM options (heap, JIT). Default: {@link DEFAULT_JVM_OPTIONS}. */
  jvmOptions?: string[];
  /**
   * Broker settings that replace the test broker's own or add to them, e.g.
   * `{ 'group.initial.rebalance.delay.ms': '3000' }` (Kafka's default) for a benchmark.
   */
  properties?: Readonly<Record<string, string>>;
}

/** Options of {@link RunningKafka.stop}. */
export interface StopKafkaOptions {
  /** Overrides {@link StartKafkaOptions.keepData} for this stop. */
  keepData?: boolean;
  /** `SIGTERM` (default) shuts down cleanly; `SIGKILL` simulates a crash. */
  signal?: 'SIGTERM' | 'SIGKILL';
}

/** A Kafka broker started by {@link startKafka}. */
export interface RunningKafka {
  /** Bootstrap servers for clients, e.g. `127.0.0.1:39213`. */
  readonly brokers: string;
  /** The client port (pass it back to {@link startKafka} to restart on the same address). */
  readonly port: number;
  /** The controller port (pass it back with `port`). */
  readonly controllerPort: number;
  /** The data folder (pass it back with `keepData` to restart on the same data). */
  readonly dataDir: string;
  /** The JVM's stdout and stderr. */
  readonly logFile: string;
  /** The JVM's process id. */
  readonly pid: number;
  /** Stops the JVM (bounded: SIGTERM, then SIGKILL) and removes `dataDir` unless kept. */
  stop(options?: StopKafkaOptions): Promise<void>;
}

/** JVMs still running, killed if this process exits without stopping them. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * Starts a single-node KRaft Kafka on 127.0.0.1 and resolves once a kafkajs admin can
 * `describeCluster()`. Formats the storage first unless `dataDir` already holds it.
 */
export async function startKafka(options: StartKafkaOptions = {}): Promise<RunningKafka> {
  const libsDir = options.libsDir ?? (await fetchKafka());
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'stompbus-kafka-'));
  const autoPorts = options.port === undefined || options.controllerPort === undefined;
  for (let attempt = 1; ; attempt++) {
    const [port, controllerPort] = await choosePorts(options.port, options.controllerPort);
    try {
      return await launch({ ...options, libsDir, dataDir, port, controllerPort });
    } catch (error) {
      const portTaken = error instanceof KafkaStartError && error.portTaken;
      if (!(autoPorts && portTaken && attempt < PORT_ATTEMPTS)) {
        if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
        throw error;
      }
      // Start over on fresh storage: the metadata log may already name the taken ports.
      if (options.dataDir === undefined)
        rmSync(join(dataDir, 'logs'), { recursive: true, force: true });
    }
  }
}

/** Kafka did not become ready; `portTaken` when its log says a port was in use. */
class KafkaStartError extends Error {
  constructor(
    message: string,
    readonly portTaken: boolean,
  ) {
    super(message);
    this.name = 'KafkaStartError';
  }
}

interface LaunchOptions extends StartKafkaOptions {
  libsDir: string;
  dataDir: string;
  port: number;
  controllerPort: number;
}

async function launch(options: LaunchOptions): Promise<RunningKafka> {
  const { libsDir, dataDir, port, controllerPort } = options;
  mkdirSync(dataDir, { recursive: true });
  const config = join(dataDir, 'server.properties');
  const logDir = join(dataDir, 'logs');
  writeFileSync(config, serverProperties(port, controllerPort, logDir, options.properties));
  if (!existsSync(join(logDir, 'meta.properties'))) await formatStorage(libsDir, config);

  const logFile = join(dataDir, 'kafka.log');
  const { child, exited } = spawnKafka(libsDir, config, logFile, options.jvmOptions);
  const brokers = `${HOST}:${port}`;
  const stop = async (stopOptions: StopKafkaOptions = {}) => {
    await stopChild(child, exited, stopOptions.signal ?? 'SIGTERM');
    if (!(stopOptions.keepData ?? options.keepData)) {
      rmSync(dataDir, { recursive: true, force: true });
    }
  };
  try {
    await waitReady(brokers, exited, options.readyTimeoutMs ?? READY_TIMEOUT_MS);
  } catch (error) {
    await stopChild(child, exited, 'SIGKILL');
    const log = readFileSync(logFile, 'utf8');
    const lines = log.split('\n');
    const firstError = lines.find((l) => / (ERROR|FATAL) |Exception: /.test(l)) ?? '(none)';
    const message =
      `${(error as Error).message}\nfirst error in ${logFile}: ${firstError}\n` +
      `last lines:\n${lines.slice(-20).join('\n')}`;
    throw new KafkaStartError(message, /Address already in use|BindException/.test(log));
  }
  return { brokers, port, controllerPort, dataDir, logFile, pid: child.pid!, stop };
}

/**
 * JVM options by default. C1 only: on a 2-CPU machine the C2 compiler threads fight the
 * start-up work and start-up takes 12 s instead of 4 s; a test broker never needs peak speed.
 * G1 with a 20 ms pause goal, a concurrent cycle from 35% of the heap and concurrent
 * explicit GCs: the garbage-collector settings Kafka's own start script
 * (`kafka-run-class.sh`) runs a broker with. Without them G1 aims at 200 ms, and its
 * young pauses reached 39 ms under `bench/cluster.bench.ts` (22 ms at most with them), each
 * one a latency spike for stompbus and the benchmarks' plain kafkajs floor alike.
 */
export const DEFAULT_JVM_OPTIONS: readonly string[] = [
  '-Xms256m',
  '-Xmx768m',
  '-XX:TieredStopAtLevel=1',
  '-XX:+UseG1GC',
  '-XX:MaxGCPauseMillis=20',
  '-XX:InitiatingHeapOccupancyPercent=35',
  '-XX:+ExplicitGCInvokesConcurrent',
  '-XX:+ExitOnOutOfMemoryError',
  '-Djava.awt.headless=true',
];

/** The settings of G1 in the defaults, left out when the extra flags pick another collector. */
const G1_OPTIONS = new Set([
  '-XX:+UseG1GC',
  '-XX:MaxGCPauseMillis=20',
  '-XX:InitiatingHeapOccupancyPercent=35',
  '-XX:+ExplicitGCInvokesConcurrent',
]);

/**
 * The JVM's options followed by `extra`. The JVM refuses two collectors: a `-XX:+Use...GC`
 * among the extra flags (say `-XX:+UseZGC`) other than G1 replaces G1 and the G1 settings of
 * the options.
 */
export function jvmArguments(options: readonly string[], extra: readonly string[]): string[] {
  const collector = extra.find((flag) => flag.startsWith('-XX:+Use') && flag.endsWith('GC'));
  const replaced = collector !== undefined && collector !== '-XX:+UseG1GC';
  return [...(replaced ? options.filter((flag) => !G1_OPTIONS.has(flag)) : options), ...extra];
}

/** Runs `kafka.Kafka` with stdout and stderr appended to `logFile`. */
function spawnKafka(libsDir: string, config: string, logFile: string, jvmOptions?: string[]) {
  const cds = classDataSharing(libsDir);
  const log = openSync(logFile, 'a');
  // STOMPBUS_KAFKA_JVM_EXTRA: more JVM flags, e.g. `-Xlog:gc:file=/tmp/kafka-gc.log:uptime,time`.
  const extra = (process.env.STOMPBUS_KAFKA_JVM_EXTRA ?? '').split(' ').filter(Boolean);
  const args = [...jvmArguments(jvmOptions ?? DEFAULT_JVM_OPTIONS, extra), ...cds.options];
  const requestLog = process.env.STOMPBUS_KAFKA_REQUEST_LOG;
  args.push(
    `-Dlog4j2.configurationFile=${requestLog ? REQUEST_LOG4J_CONFIG : LOG4J_CONFIG}`,
    ...(requestLog ? [`-Dstompbus.requestLog=${requestLog}`] : []),
    '-cp',
    join(libsDir, '*'),
  );
  const child = spawn(javaCommand(), [...args, 'kafka.Kafka', config], {
    cwd: dirname(config),
    detached: false,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  children.add(child);
  const exited = new Promise<void>((resolve) => {
    const done = () => {
      children.delete(child);
      // Only a clean exit (our SIGTERM) wrote a whole archive; publish it atomically.
      if (cds.pending) {
        const clean = child.signalCode === 'SIGTERM' || child.exitCode === 143;
        try {
          if (clean && existsSync(cds.pending)) renameSync(cds.pending, cds.archive);
          else rmSync(cds.pending, { force: true });
        } catch {
          // Only an optimisation: the next start writes it again.
        }
      }
      resolve();
    };
    // 'error' alone (no 'exit') when the JVM cannot be spawned at all.
    child.once('exit', done).once('error', done);
  });
  return { child, exited };
}

/**
 * A dynamic class-data-sharing archive of Kafka's classes, next to the jars: written by the
 * first broker that is stopped cleanly (`pending` until then), used by every later JVM
 * (start-up about 1.5 s faster, resident memory about 70 MB lower). Another JVM build
 * ignores it. Short-lived tools (`write: false`) only read it.
 */
function classDataSharing(libsDir: string, write = true) {
  const archive = join(libsDir, '..', 'kafka.jsa');
  // The dump lists every class it skips as a warning: hundreds of lines in kafka.log.
  const quiet = '-Xlog:cds*=error';
  if (existsSync(archive)) return { options: [quiet, `-XX:SharedArchiveFile=${archive}`], archive };
  if (!write) return { options: [], archive };
  const pending = `${archive}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  return { options: [quiet, `-XX:ArchiveClassesAtExit=${pending}`], archive, pending };
}

/** A combined broker+controller on loopback (docs/kafka.md), plus what the tests need. */
function serverProperties(
  port: number,
  controllerPort: number,
  logDir: string,
  overrides: Readonly<Record<string, string>> = {},
): string {
  const lines = [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@${HOST}:${controllerPort}`,
    `listeners=PLAINTEXT://${HOST}:${port},CONTROLLER://${HOST}:${controllerPort}`,
    `advertised.listeners=PLAINTEXT://${HOST}:${port}`,
    'inter.broker.listener.name=PLAINTEXT',
    'controller.listener.names=CONTROLLER',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    `log.dirs=${logDir}`,
    // One node: every internal topic must have replication factor 1, or consumers loop on
    // "group coordinator not available".
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    // Tests join groups right away and may use session timeouts under the 6 s default floor.
    'group.initial.rebalance.delay.ms=0',
    'group.min.session.timeout.ms=1000',
    // Topics are created up front (docs/kafka.md: a send to an auto-created topic can fail).
    'auto.create.topics.enable=false',
    // After a crash the restarted controller keeps the old broker registration until its
    // session expires (default 9 s, 2 s heart-beats); shorter makes kill-and-restart quicker,
    // still far from fencing a live broker that stalls for a moment.
    'broker.session.timeout.ms=5000',
    'broker.heartbeat.interval.ms=1000',
    'num.partitions=1',
    'num.network.threads=2',
    'num.io.threads=4',
  ].filter((line) => !Object.hasOwn(overrides, line.slice(0, line.indexOf('='))));
  for (const [name, value] of Object.entries(overrides)) lines.push(`${name}=${value}`);
  return `${lines.join('\n')}\n`;
}

/** `StorageTool format`, with a random cluster id (Kafka's own `Uuid` shape). */
async function formatStorage(libsDir: string, config: string): Promise<void> {
  let clusterId = randomBytes(16).toString('base64url');
  // Kafka's Uuid.randomUuid() avoids a leading '-' (it would read as a command-line flag).
  while (clusterId.startsWith('-')) clusterId = randomBytes(16).toString('base64url');
  const args = ['-XX:TieredStopAtLevel=1', ...classDataSharing(libsDir, false).options];
  args.push(`-Dlog4j2.configurationFile=${LOG4J_CONFIG}`, '-cp', join(libsDir, '*'));
  args.push('kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', config);
  args.push('--ignore-formatted');
  try {
    await execFileAsync(javaCommand(), args, { timeout: FORMAT_TIMEOUT_MS });
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`kafka.tools.StorageTool format failed:\n${stdout}${stderr}`, {
      cause: error,
    });
  }
}

/** Polls `describeCluster()` until it lists a broker, the JVM exits, or time runs out. */
async function waitReady(brokers: string, exited: Promise<void>, timeoutMs: number) {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const kafka = new Kafka({
    clientId: 'stompbus-kafka-ready',
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 2_000,
    retry: { retries: 0 },
  });
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (gone) throw new Error('Kafka exited before it was ready');
    const admin = kafka.admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length > 0) return;
    } catch (error) {
      lastError = error;
    } finally {
      await admin.disconnect().catch(() => {});
    }
    await sleep(250);
  }
  throw new Error(`Kafka at ${brokers} not ready within ${timeoutMs} ms`, { cause: lastError });
}

/** Signals the JVM and waits (bounded) for it to exit, escalating to SIGKILL. */
async function stopChild(child: ChildProcess, exited: Promise<void>, signal: NodeJS.Signals) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  if (await within(exited, signal === 'SIGKILL' ? KILL_TIMEOUT_MS : STOP_TIMEOUT_MS)) return;
  child.kill('SIGKILL');
  if (!(await within(exited, KILL_TIMEOUT_MS))) {
    throw new Error(`Kafka (pid ${child.pid}) did not exit after SIGKILL`);
  }
}

/** Resolves true when `promise` settles within `ms`, false otherwise. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Free loopback ports for those not given; both probed at once, so they differ. */
async function choosePorts(port?: number, controllerPort?: number): Promise<[number, number]> {
  const servers: Server[] = [];
  const probe = async (wanted: number | undefined): Promise<number> => {
    if (wanted !== undefined) return wanted;
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject).listen(0, HOST, resolve);
    });
    return (server.address() as { port: number }).port;
  };
  try {
    return [await probe(port), await probe(controllerPort)];
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

// ---- command line -------------------------------------------------------------------

/** What `start` writes so that `stop` (another process) can find it. */
function pidFile(): string {
  return join(kafkaCacheDir(), 'kafka.pid.json');
}

async function cliStart(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      'controller-port': { type: 'string' },
      'data-dir': { type: 'string' },
      'keep-data': { type: 'boolean', default: false },
    },
  });
  const toPort = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const started = Date.now();
  const kafka = await startKafka({
    port: toPort(values.port),
    controllerPort: toPort(values['controller-port']),
    dataDir: values['data-dir'],
    keepData: values['keep-data'],
  });
  writeFileSync(pidFile(), JSON.stringify({ pid: process.pid, kafkaPid: kafka.pid }));
  console.log(`Kafka ${KAFKA_VERSION} ready in ${Date.now() - started} ms (pid ${kafka.pid})`);
  console.log(`KAFKA_BROKERS=${kafka.brokers}`);
  console.log(`log: ${kafka.logFile}; Ctrl-C or \`npx tsx scripts/kafka.ts stop\` stops it`);
  const shutdown = () => {
    kafka
      .stop()
      .catch((error: unknown) => console.error(error))
      .finally(() => {
        rmSync(pidFile(), { force: true });
        process.exit(0);
      });
  };
  process.once('SIGINT', shutdown).once('SIGTERM', shutdown);
}

async function cliStop(): Promise<void> {
  if (!existsSync(pidFile())) {
    console.log('no Kafka started by `scripts/kafka.ts start` is running');
    return;
  }
  const { pid } = JSON.parse(readFileSync(pidFile(), 'utf8')) as { pid: number };
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    unlinkSync(pidFile());
    console.log(`process ${pid} is gone; removed the stale pid file`);
    return;
  }
  const deadline = Date.now() + STOP_TIMEOUT_MS + KILL_TIMEOUT_MS;
  while (existsSync(pidFile()) && Date.now() < deadline) await sleep(200);
  console.log(existsSync(pidFile()) ? `process ${pid} did not stop in time` : 'Kafka stopped');
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'fetch') {
    const started = Date.now();
    const libs = await fetchKafka();
    console.log(`Kafka ${KAFKA_VERSION} jars in ${libs} (${Date.now() - started} ms)`);
  } else if (command === 'start') {
    await cliStart(rest);
  } else if (command === 'stop') {
    await cliStop();
  } else {
    console.error('usage: npx tsx scripts/kafka.ts fetch|start|stop');
    process.exitCode = 2;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
