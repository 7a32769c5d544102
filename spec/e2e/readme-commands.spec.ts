/**
 * The README's commands, run as written (`bash -c` on the text of its ```sh blocks):
 * the quick start's `npm install && npm start` in a fresh copy of this checkout, and the
 * cluster's three instances against the run's real Kafka; a stompjs client must get
 * through each. What a spec may change is only what the README cannot know: ports taken on
 * this machine (moved with STOMPBUS_* variables, which the commands' flags override where
 * they give one) and the address of the run's Kafka, which replaces the one the README's
 * `npm run kafka -- start --port …` line prints. Everything started is killed by the PID of
 * its process group.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseArgs } from '../../src/config.js';
import {
  clusterTopics,
  deleteTopicsAfterTest,
  kafkaBrokers,
  skipKafka,
  uniqueName,
} from '../helpers/cluster.js';
import { Inbox, publishWithReceipt, stompClient } from '../helpers/stomp-client.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
/** `npm install` (from npm's cache, but every package unpacked) and the build, on a busy machine. */
const INSTALL_TIMEOUT_MS = 300_000;
const READY_TIMEOUT_MS = 60_000;

/** The text of the README's `## <title>` section, up to the next `## `. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README.md has no "## ${title}" section`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

/** The ```sh blocks of a text. */
function shBlocks(text: string): string[] {
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] as string);
}

/** The one block of `blocks` that contains `needle`. */
function blockWith(blocks: string[], needle: string): string {
  const found = blocks.filter((b) => b.includes(needle));
  expect(found, `one sh block with ${needle}`).toHaveLength(1);
  return found[0] as string;
}

/** A loopback port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The test's environment without any stompbus setting, so that only the spec's own apply. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key.startsWith('STOMPBUS_') || key === 'KAFKA_BROKERS') delete env[key];
  }
  // vitest's own variables would make a nested `npm test` or tool think it runs under it.
  for (const key of Object.keys(env)) if (key.startsWith('VITEST')) delete env[key];
  return env;
}

/** A shell running a README block, in a process group of its own. */
class Shell {
  output = '';
  private readonly child: ChildProcess;
  private gone = false;

  constructor(script: string, cwd: string, env: NodeJS.ProcessEnv) {
    this.child = spawn('bash', ['-c', script], {
      cwd,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      stream?.setEncoding('utf8').on('data', (d: string) => {
        this.output += d;
      });
    }
    shells.add(this);
  }

  /** Waits until the output matches `pattern` `count` times; returns the matches. */
  async waitFor(pattern: RegExp, count: number, timeoutMs: number): Promise<RegExpExecArray[]> {
    const global = new RegExp(pattern.source, 'g');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const matches = [...this.output.matchAll(global)];
      if (matches.length >= count) return matches;
      if (Date.now() > deadline) {
        throw new Error(`no ${count} × ${pattern} within ${timeoutMs} ms; output:\n${this.output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** SIGTERM to the whole group (the shell and what it started), SIGKILL if it lingers. */
  async kill(): Promise<void> {
    if (this.gone) return;
    this.gone = true;
    const group = this.child.pid as number;
    const alive = () => {
      try {
        process.kill(-group, 0);
        return true;
      } catch {
        return false;
      }
    };
    const signal = (s: NodeJS.Signals) => {
      try {
        process.kill(-group, s);
      } catch {
        // already gone
      }
    };
    signal('SIGTERM');
    const deadline = Date.now() + 15_000;
    while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (alive()) signal('SIGKILL');
  }
}

const shells = new Set<Shell>();
const folders: string[] = [];

afterEach(async () => {
  const list = [...shells];
  shells.clear();
  await Promise.all(list.map((s) => s.kill()));
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

/** A STOMP CONNECT over plain TCP; resolves with the first frame's command. */
function tcpConnect(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('CONNECT\naccept-version:1.2\nhost:localhost\n\n\0'));
    socket.on('data', (d: string) => {
      data += d;
      if (data.includes('\n')) {
        socket.destroy();
        resolve(data.slice(0, data.indexOf('\n')));
      }
    });
    socket.on('error', reject);
    socket.setTimeout(5000, () => {
      socket.destroy();
      reject(new Error(`no answer on TCP port ${port}`));
    });
  });
}

describe('the stompbus command lines the README and docs/configuration.md show', () => {
  it('parse, with the environment they set', () => {
    const page = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
    const lines = [README, page]
      .flatMap(shBlocks)
      .flatMap((block) => block.replace(/\\\n/g, ' ').split('\n'))
      .map((line) => (line.split('#')[0] as string).replace(/&\s*$/, '').trim())
      .filter((line) => /(^|\s)(npm start --|npx stompbus)(\s|$)/.test(line));
    expect(lines.length).toBeGreaterThanOrEqual(6);
    // The README's security example names `acl.json`: the ACL shown beside it, in the
    // folder the command runs in (parseArgs reads and checks the file).
    const acl = /```json\n([\s\S]*?)```/.exec(section('Security'))?.[1];
    expect(acl).toBeDefined();
    const folder = mkdtempSync(join(tmpdir(), 'stompbus-readme-acl-'));
    writeFileSync(join(folder, 'acl.json'), acl as string);
    const cwd = process.cwd();
    process.chdir(folder);
    try {
      checkLines(lines);
    } finally {
      process.chdir(cwd);
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

function checkLines(lines: string[]): void {
  for (const line of lines) {
    const words = line.split(/\s+/);
    const env: Record<string, string> = {};
    while (/^[A-Z_]+=/.test(words[0] as string)) {
      const [name, ...value] = (words.shift() as string).split('=');
      env[name as string] = value.join('=');
    }
    const at = words[0] === 'npm' ? 3 : 2; // after `npm start --` or `npx stompbus`
    expect(() => parseArgs(words.slice(at), env), line).not.toThrow();
  }
}

describe("the README's quick start", () => {
  const blocks = shBlocks(section('Quick start'));

  it('shows the test command that CI runs', () => {
    const command = blockWith(blocks, 'npm test').split('#')[0]?.trim() as string;
    expect(command).toBe('npm install && npm test');
    const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
    expect(ci.split('\n').map((l) => l.trim())).toContain(command);
  });

  it(
    'installs, builds and starts a broker in a fresh copy of the checkout',
    async () => {
      const script = blockWith(blocks, 'npm start');
      expect(script.split('#')[0]?.trim()).toBe('npm install && npm start');
      // The files a clone has (tracked, and new ones not ignored), without node_modules,
      // dist/ or .cache: npm install starts from nothing but npm's download cache.
      const copy = mkdtempSync(join(tmpdir(), 'stompbus-quick-start-'));
      folders.push(copy);
      const files = execFileSync(
        'git',
        ['ls-files', '-z', '--cached', '--others', '--exclude-standard'],
        { cwd: ROOT, encoding: 'utf8' },
      )
        .split('\0')
        .filter(Boolean);
      for (const file of files) {
        mkdirSync(dirname(join(copy, file)), { recursive: true });
        cpSync(join(ROOT, file), join(copy, file));
      }
      // Port 61613 may be RabbitMQ's here: the README's own command, on ports moved by the
      // environment (it gives no port flags).
      const [port, tcpPort] = [await freePort(), await freePort()];
      const shell = new Shell(script, copy, {
        ...cleanEnv(),
        STOMPBUS_HOST: '127.0.0.1',
        STOMPBUS_PORT: String(port),
        STOMPBUS_TCP_PORT: String(tcpPort),
        // The admin port's default (61615) may be another spec's broker's.
        STOMPBUS_ADMIN_PORT: '0',
        // The readable log a terminal shows (on a pipe the command writes JSON lines).
        STOMPBUS_LOG_FORMAT: 'pretty',
        npm_config_prefer_offline: 'true',
        npm_config_audit: 'false',
        npm_config_fund: 'false',
      });
      await shell.waitFor(/STOMP over TCP\n/, 1, INSTALL_TIMEOUT_MS);
      expect(shell.output).toContain(`ws://127.0.0.1:${port}/stomp`);

      const client = await stompClient(`ws://127.0.0.1:${port}/stomp`);
      const inbox = new Inbox();
      client.subscribe('/topic/chat', inbox.take, { receipt: 'sub' });
      await new Promise<void>((resolve) => client.watchForReceipt('sub', () => resolve()));
      await publishWithReceipt(client, { destination: '/topic/chat', body: 'hello, room' });
      expect((await inbox.waitFor(1))[0]?.body).toBe('hello, room');
      expect(await tcpConnect(tcpPort)).toBe('CONNECTED');
    },
    INSTALL_TIMEOUT_MS + 60_000,
  );
});

describe("the README's cluster", () => {
  const blocks = shBlocks(section('Run a cluster'));

  it('shows the same commands as docs/clustering.md', () => {
    const page = readFileSync(join(ROOT, 'docs', 'clustering.md'), 'utf8');
    const start = page.indexOf('\n## Three instances on one machine\n');
    const docs = shBlocks(page.slice(start, page.indexOf('\n## ', start + 1)));
    expect(start).toBeGreaterThan(0);
    expect(docs).toEqual(blocks.filter((b) => !b.includes('docker compose')));
  });

  it('shows a Docker command for a compose file of the repository', () => {
    const docker = blockWith(blocks, 'docker compose');
    const file = /-f (\S+)/.exec(docker)?.[1] as string;
    // Docker is not on this machine: the file it names must at least be there.
    expect(readFileSync(join(ROOT, file), 'utf8')).toContain('stompbus');
  });

  it.skipIf(skipKafka)(
    'starts three instances that deliver to each other through Kafka',
    async () => {
      const kafka = blockWith(blocks, 'npm run kafka -- start');
      const kafkaPort = /--port (\d+)/.exec(kafka)?.[1];
      expect(kafka).toContain(`KAFKA_BROKERS=127.0.0.1:${kafkaPort}`);
      const readmeBrokers = `127.0.0.1:${kafkaPort}`;
      const instances = blockWith(blocks, '--kafka-brokers');
      const named = [...instances.matchAll(/--kafka-brokers (\S+)/g)].map((m) => m[1]);
      expect(named).toEqual([readmeBrokers, readmeBrokers, readmeBrokers]);
      // The one substitution: the run's Kafka for the one `npm run kafka -- start` prints.
      const script = instances.replaceAll(readmeBrokers, kafkaBrokers);
      // A topic of its own keeps the run's Kafka tidy; the first instance's ports move only
      // where the README leaves them to the defaults (61613 may be RabbitMQ's here).
      const topic = uniqueName('stompbus-readme');
      deleteTopicsAfterTest(clusterTopics(topic));
      const [port, tcpPort] = [await freePort(), await freePort()];
      const shell = new Shell(script, ROOT, {
        ...cleanEnv(),
        STOMPBUS_HOST: '127.0.0.1',
        STOMPBUS_PORT: String(port),
        STOMPBUS_TCP_PORT: String(tcpPort),
        STOMPBUS_ADMIN_PORT: '0',
        STOMPBUS_LOG_FORMAT: 'pretty',
        STOMPBUS_KAFKA_TOPIC: topic,
      });
      const ready = await shell.waitFor(
        /ws:\/\/127\.0\.0\.1:(\d+)\/stomp {3}STOMP/,
        3,
        READY_TIMEOUT_MS,
      );
      const ports = ready.map((m) => Number(m[1])).sort((a, b) => a - b);
      expect(ports).toEqual([61624, 61634, port].sort((a, b) => a - b));
      expect(shell.output.match(/ready \(cluster mode, Kafka /g)).toHaveLength(3);

      const clients = await Promise.all(ports.map((p) => stompClient(`ws://127.0.0.1:${p}/stomp`)));
      const inboxes = clients.map(() => new Inbox());
      await Promise.all(
        clients.map((client, i) => {
          const receipt = `sub-${i}`;
          const done = new Promise<void>((r) => client.watchForReceipt(receipt, () => r()));
          client.subscribe('/topic/chat', (inboxes[i] as Inbox).take, { receipt });
          return done;
        }),
      );
      // A SEND on the instance at 61634 and one on the first reach all three.
      const on = (p: number) => clients[ports.indexOf(p)] as (typeof clients)[number];
      await publishWithReceipt(on(61634), { destination: '/topic/chat', body: 'from 61634' });
      await publishWithReceipt(on(port), { destination: '/topic/chat', body: 'from the first' });
      for (const inbox of inboxes) {
        const got = await inbox.waitFor(2, 20_000);
        expect(got.map((m) => m.body)).toEqual(['from 61634', 'from the first']);
      }
    },
    READY_TIMEOUT_MS + 60_000,
  );
});
