/**
 * The pieces of security.bench.ts that are not about timing: the brokers it
 * starts (a compiled stompbus with extra flags), the credentials of each
 * login kind, and the CONNECT-rate client.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { SignJWT } from 'jose';
import { hashPasscode } from '../src/users.js';
import { markdownTable, median } from './harness.js';
import { formatRate, nowMs } from './load/stats.js';
import {
  cpuSecondsOf,
  spawnWithFds,
  stompbusCommand,
  stopChild,
  type Target,
} from './load/targets.js';

/** A stompbus started by the bench: its load-harness target and its TCP port. */
export interface Broker {
  target: Target;
  tcpPort: number;
}

/**
 * Starts the compiled stompbus in `build` with `flags` added to the load
 * harness's command line; resolves once it prints both of its URLs.
 */
export async function startBroker(build: string, flags: string[]): Promise<Broker> {
  // `--tcp-port 0` turns TCP off: a port of its own, after the harness's flags so it wins.
  const port = await freePort();
  const argv = [...stompbusCommand([], build), '--tcp-port', String(port), ...flags];
  const child = spawnWithFds(argv, false);
  let out = '';
  const ready = await new Promise<RegExpExecArray[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`stompbus did not start: ${out}`));
    }, 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const ws = /ws:\/\/[\d.]+:\d+\/stomp/.exec(out);
      const tcp = /stomp:\/\/[\d.]+:(\d+)/.exec(out);
      if (ws && tcp) {
        clearTimeout(timer);
        resolve([ws, tcp]);
      }
    });
    child.once('exit', (code) => reject(new Error(`stompbus exited with ${code}: ${out}`)));
  });
  child.stdout?.resume();
  const [ws, tcp] = ready as [RegExpExecArray, RegExpExecArray];
  const endpoint = { url: ws[0], protocols: ['v12.stomp'], login: 'bench', passcode: 'bench' };
  return {
    tcpPort: Number(tcp[1]),
    target: {
      name: 'stompbus',
      endpoint: { ...endpoint, vhost: '/' },
      pid: child.pid as number,
      queues: true,
      maxConnections: undefined,
      collectGarbage: undefined,
      stop: () => stopChild(child),
    },
  };
}

/** A TCP port free on loopback right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** One way to log in: the broker's flags and the CONNECT headers of the i-th connection. */
export interface LoginKind {
  name: string;
  flags: string[];
  headers: (i: number) => string;
}

/** Distinct tokens per kind, cycled through (a token is verified in full every CONNECT). */
const TOKENS = 200;
const HS_SECRET = 'a 32-byte-or-longer HS256 secret for the bench';

async function tokens(sign: (sub: string) => Promise<string>): Promise<string[]> {
  return Promise.all(Array.from({ length: TOKENS }, (_, i) => sign(`user${i}`)));
}

/**
 * The login kinds measured: none, a plain passcode, an scrypt-hashed one
 * (`--users-file`), HS256 and RS256 tokens in the passcode. Files go to `dir`.
 */
export async function loginKinds(dir: string): Promise<LoginKind[]> {
  const scope = 'stompbus.read:/topic/** stompbus.write:/topic/chat.{user}';
  const jwt = (alg: string) =>
    new SignJWT({ scope }).setProtectedHeader({ alg }).setExpirationTime('2h');
  const hs = await tokens((sub) =>
    jwt('HS256').setSubject(sub).sign(new TextEncoder().encode(HS_SECRET)),
  );
  // PEM strings, the private key imported anew: signing with the KeyObject that
  // generateKeyPairSync returned deadlocked Node 20.20 (jose exports it as a JWK while a
  // GC destroys the key generation job, which locks the same key data).
  const rsa = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const pem = `${dir}/rs256.pub.pem`;
  writeFileSync(pem, rsa.publicKey);
  const privateKey = createPrivateKey(rsa.privateKey);
  const rs = await tokens((sub) => jwt('RS256').setSubject(sub).sign(privateKey));
  const usersFile = `${dir}/users-scrypt.txt`;
  writeFileSync(usersFile, `bench:${await hashPasscode('bench-secret')}\n`);
  const token = (list: string[]) => (i: number) => `passcode:${list[i % list.length]}\n`;
  return [
    { name: 'no auth', flags: [], headers: () => '' },
    {
      name: 'passcode',
      flags: ['--user', 'bench:bench-secret'],
      headers: () => 'login:bench\npasscode:bench-secret\n',
    },
    {
      name: 'hashed passcode (scrypt N=2^14)',
      flags: ['--users-file', usersFile],
      headers: () => 'login:bench\npasscode:bench-secret\n',
    },
    { name: 'HS256 token', flags: ['--jwt-secret', HS_SECRET], headers: token(hs) },
    { name: 'RS256 token (2048-bit)', flags: ['--jwt-public-key', pem], headers: token(rs) },
  ];
}

/** What a CONNECT-rate run measured. */
export interface ConnectResult {
  perSecond: number;
  p50: number;
  p99: number;
  failed: number;
  /** Broker CPU seconds per 1,000 CONNECTs (its thread pool included: scrypt runs there). */
  cpuPerThousand: number;
}

/** The `p`-th percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

const cpuOf = (pid: number) => {
  const cpu = cpuSecondsOf(pid);
  return cpu ? cpu.user + cpu.sys : Number.NaN;
};

/**
 * CONNECT → CONNECTED over TCP, `concurrency` at a time, each connection
 * closed once answered, for `durationMs` after `warmupMs`: what is answered
 * in that window counts. Refusals count as failed, not in the rate.
 */
export async function connectRate(
  broker: Broker,
  kind: LoginKind,
  concurrency: number,
  warmupMs: number,
  durationMs: number,
): Promise<ConnectResult> {
  const from = nowMs() + warmupMs;
  const to = from + durationMs;
  const latencies: number[] = [];
  let failed = 0;
  let next = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const start = nowMs();
      const socket = connect(broker.tcpPort, '127.0.0.1');
      let seen = '';
      const done = (ok: boolean) => {
        socket.destroy();
        const end = nowMs();
        // Counted by when it ended, as the CPU is sampled: at `from` and at `to`.
        if (end >= from && end <= to) {
          if (ok) latencies.push(end - start);
          else failed++;
        }
        resolve();
      };
      socket.setNoDelay(true);
      socket.on('error', () => done(false));
      socket.on('connect', () => {
        socket.write(`CONNECT\naccept-version:1.2\nhost:localhost\n${kind.headers(next++)}\n\0`);
      });
      socket.on('data', (chunk: Buffer) => {
        seen += chunk.toString('latin1');
        if (seen.startsWith('CONNECTED\n')) done(true);
        else if (seen.includes('\0')) done(false);
      });
    });
  const loop = async () => {
    while (nowMs() < to) await one();
  };
  let cpuFrom = Number.NaN;
  let cpu = Number.NaN;
  const timers = [
    setTimeout(() => {
      cpuFrom = cpuOf(broker.target.pid);
    }, warmupMs),
    setTimeout(() => {
      cpu = cpuOf(broker.target.pid) - cpuFrom;
    }, warmupMs + durationMs),
  ];
  await Promise.all(Array.from({ length: concurrency }, loop));
  for (const t of timers) clearTimeout(t);
  latencies.sort((a, b) => a - b);
  return {
    perSecond: latencies.length / (durationMs / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    failed,
    cpuPerThousand: (cpu / Math.max(1, latencies.length + failed)) * 1000,
  };
}

/** Runs `body` with a fresh broker, stopped after it whatever happens. */
export async function withBroker<T>(
  build: string,
  flags: string[],
  body: (b: Broker) => Promise<T>,
) {
  const broker = await startBroker(build, flags);
  try {
    return await body(broker);
  } finally {
    await broker.target.stop();
  }
}

/** How security.bench.ts runs: rounds, --quick, where progress goes. */
export interface RunOptions {
  rounds: number;
  quick: boolean;
  log: (line: string) => void;
}

/** CONNECT rate of each login kind, the kinds in alternating order round after round: a report section. */
export async function connectsReport(
  build: string,
  kinds: LoginKind[],
  { rounds, quick, log }: RunOptions,
): Promise<string[]> {
  const results = new Map<string, Array<Awaited<ReturnType<typeof connectRate>>>>();
  const relative = new Map<string, number[]>();
  for (let r = 1; r <= rounds; r++) {
    const perRound = new Map<string, number>();
    for (const kind of r % 2 ? kinds : [...kinds].reverse()) {
      log(`connect, round ${r}: ${kind.name}`);
      const res = await withBroker(build, kind.flags, async (b) => {
        await connectRate(b, kind, 8, 0, 500); // JIT and thread pool warm
        return connectRate(b, kind, 32, 300, quick ? 1500 : 3000);
      });
      if (res.failed > 0) throw new Error(`${kind.name}: ${res.failed} CONNECT(s) refused`);
      results.set(kind.name, [...(results.get(kind.name) ?? []), res]);
      perRound.set(kind.name, res.perSecond);
    }
    for (const kind of kinds) {
      const ratio = (perRound.get(kind.name) as number) / (perRound.get('no auth') as number);
      relative.set(kind.name, [...(relative.get(kind.name) ?? []), ratio]);
    }
  }
  const rows = kinds.map((kind) => {
    const list = results.get(kind.name) ?? [];
    const rates = list.map((x) => x.perSecond);
    const rel = relative.get(kind.name) ?? [];
    return [
      kind.name,
      formatRate(median(rates)),
      `${formatRate(Math.min(...rates))}–${formatRate(Math.max(...rates))}`,
      median(rel).toFixed(3),
      median(list.map((x) => x.p50)).toFixed(2),
      median(list.map((x) => x.p99)).toFixed(2),
      median(list.map((x) => x.cpuPerThousand)).toFixed(3),
    ];
  });
  return [
    '## CONNECTs per second',
    '',
    'TCP, 32 connections at a time from the bench process, each closed once CONNECTED; a fresh broker per case and round.',
    '',
    markdownTable(
      [
        'login',
        'CONNECT/s (median)',
        'range over rounds',
        '÷ no auth (median)',
        'p50 ms',
        'p99 ms',
        'broker CPU-s per 1,000',
      ],
      rows,
    ),
    '',
  ];
}
