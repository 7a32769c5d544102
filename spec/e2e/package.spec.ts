import { execFile, execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * What a user of the published package gets: the tarball of `npm pack`,
 * installed with npm into an empty project outside this checkout, where
 * neither src/ nor this repo's node_modules can be reached. It checks the
 * package's shape (exports, types, bin) rather than the broker, which the
 * other specs cover.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
/** npm pack and npm install: seconds from the local cache, more when it fetches. */
const SETUP_TIMEOUT_MS = 180_000;
/** One command in the consumer project (tsc alone takes ~10 s with lib checking on). */
const COMMAND_TIMEOUT_MS = 60_000;

const exec = promisify(execFile);

/**
 * The environment without what npm adds when it runs a script (`npm test`):
 * `npm_config_local_prefix` and `npm_package_*` describe this checkout, and
 * must not make npm in the consumer project think it is in here.
 */
function consumerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^npm_(package_|lifecycle_|command$|config_local_prefix$)/.test(key) || key === 'INIT_CWD')
      delete env[key];
  }
  return env;
}

/** Runs a command in the consumer project; resolves even on a non-zero exit. */
async function run(
  command: string,
  args: string[],
  timeout = COMMAND_TIMEOUT_MS,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(command, args, { cwd: app, env: consumerEnv(), timeout });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number | string; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? String(error),
    };
  }
}

/** The consumer project's files, written next to its package.json. */
const FILES: Record<string, string> = {
  // The admin port of the installed command's server: the console's files come
  // from the installed package (the page) and the installed uplot (the chart).
  'admin.mjs': `
import { StompServer } from 'stompbus';
const server = new StompServer({ host: '127.0.0.1', port: 0, tcpPort: 0, adminPort: 0 });
await server.start();
const got = {};
for (const path of ['/console', '/console/app.js', '/console/uplot.js', '/console/uplot.css', '/metrics']) {
  const response = await fetch(server.admin.url + path);
  got[path] = { status: response.status, type: response.headers.get('content-type'), body: await response.text() };
}
await server.stop();
console.log(JSON.stringify(got));
`,
  // Every public name, from both entries; an embedded broker serves one CONNECT over TCP.
  'embed.mjs': `
import { connect, createServer } from 'node:net';
import { attachWebSocket, createBroker, createFrame, encodeFrame, StompServer } from 'stompbus';
import { KafkaFanout } from 'stompbus/kafka';

const names = { attachWebSocket, createBroker, encodeFrame, StompServer, KafkaFanout };
const types = Object.fromEntries(Object.entries(names).map(([k, v]) => [k, typeof v]));
const encoded = encodeFrame(createFrame('SEND', { destination: '/topic/x' }, 'hi')).toString();

const broker = createBroker();
const server = createServer(broker.handle);
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const socket = connect(server.address().port, '127.0.0.1');
socket.write('CONNECT\\naccept-version:1.2\\n\\n\\0');
let reply = '';
for await (const chunk of socket) {
  reply += chunk;
  if (reply.includes('\\0')) break;
}
await broker.close(1000);
server.close();
socket.destroy();
console.log(JSON.stringify({ types, encoded, reply, resolved: import.meta.resolve('stompbus') }));
`,
  // Registered with --import: any ESM import of kafkajs (static, or dynamic
  // later on) fails, naming the module that asked for it.
  'no-kafkajs.mjs': `
import { register } from 'node:module';
register('./no-kafkajs-hooks.mjs', import.meta.url);
`,
  'no-kafkajs-hooks.mjs': `
export async function resolve(specifier, context, next) {
  if (specifier === 'kafkajs' || specifier.startsWith('kafkajs/')) {
    throw new Error(\`kafkajs imported by \${context.parentURL}\`);
  }
  return next(specifier, context);
}
`,
  // 'stompbus' alone, through an embedded broker's whole life, under that hook.
  'embedded-only.mjs': `
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import { createBroker } from 'stompbus';

const broker = createBroker();
const server = createServer(broker.handle);
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const socket = connect(server.address().port, '127.0.0.1');
socket.write('CONNECT\\naccept-version:1.2\\n\\n\\0');
let reply = '';
for await (const chunk of socket) {
  reply += chunk;
  if (reply.includes('\\0')) break;
}
await broker.publish('/topic/news', 'from the app');
await broker.close(1000);
server.close();
// A require() of kafkajs, which the hook does not see, and an ESM import of
// it (a CommonJS package) both leave it in this cache.
const cached = Object.keys(createRequire(import.meta.url).cache).filter((path) =>
  /[\\\\/]kafkajs[\\\\/]/.test(path),
);
// The control: the hook is in force, so an import of kafkajs fails.
const control = await import('kafkajs').then(() => 'loaded', (error) => error.message);
console.log(JSON.stringify({ reply: reply.split('\\n')[0], cached, control }));
`,
  // Uses the names as a TypeScript user would; the @ts-expect-error lines fail
  // the check if the declarations were missing or `any`.
  'consumer.ts': `
import { createServer } from 'node:http';
import {
  attachWebSocket,
  createBroker,
  createFrame,
  encodeFrame,
  type SessionInfo,
  type StompBroker,
  StompServer,
  type WebSocketEndpoint,
} from 'stompbus';
import { KafkaFanout } from 'stompbus/kafka';

const broker: StompBroker = createBroker({ users: new Map([['alice', 'secret']]) });
const endpoint: WebSocketEndpoint = attachWebSocket(broker, { server: createServer(), path: '/stomp' });
const path: string = endpoint.path;
broker.on('connect', (info: SessionInfo) => console.log(info.sessionId, info.user, path));
const done: Promise<void> = broker.publish('/topic/news', 'text', { 'content-type': 'text/plain' });
const bytes: Buffer = encodeFrame(createFrame('SEND', { destination: '/queue/a' }, 'hi'));
const server = new StompServer({ port: 0, tcpPort: 0, adminPort: 0 });
const fanout = new KafkaFanout({ brokers: '127.0.0.1:9092' });
void [done, bytes, server, fanout];

// @ts-expect-error a body is text or bytes
void broker.publish('/topic/news', 42);
// @ts-expect-error attachWebSocket needs its options
attachWebSocket(broker);
`,
};

let tmp: string;
let app: string;
/** `npm pack --json`: the tarball's name and files. */
let packed: { filename: string; files: Array<{ path: string }> };

beforeAll(async () => {
  // The tarball ships dist/: the global setup builds it, but not every run has that setup.
  if (!existsSync(join(ROOT, 'dist/index.js'))) {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'pipe' });
  }
  tmp = mkdtempSync(join(tmpdir(), 'stompbus-package-'));
  app = join(tmp, 'app');
  mkdirSync(app);
  // --ignore-scripts: no prepare (tsc) rewriting dist/ under specs running it in other workers.
  const pack = await exec(
    'npm',
    ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp],
    { cwd: ROOT, env: consumerEnv(), timeout: SETUP_TIMEOUT_MS },
  );
  [packed] = JSON.parse(pack.stdout) as [typeof packed];
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'stompbus-consumer', private: true, type: 'module' }, null, 2),
  );
  for (const [name, text] of Object.entries(FILES)) writeFileSync(join(app, name), text);
  // @types/node: the declarations of stompbus refer to Node's types, as any user's project has them.
  await exec(
    'npm',
    [
      'install',
      join(tmp, packed.filename),
      '@types/node@20',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
    ],
    { cwd: app, env: consumerEnv(), timeout: SETUP_TIMEOUT_MS },
  );
}, SETUP_TIMEOUT_MS);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the package as npm pack makes it, installed in an empty project', () => {
  it('holds bin/, dist/ and package.json, with every target of "exports" and "bin"', () => {
    const paths = packed.files.map((f) => f.path);
    for (const path of paths)
      expect(path).toMatch(/^(assets\/|bin\/|dist\/|package\.json$|README\.md$|LICENSE)/);
    for (const target of [
      'dist/index.js',
      'dist/index.d.ts',
      'dist/kafka.js',
      'dist/kafka.d.ts',
      'bin/stompbus.js',
      'assets/console/index.html',
      'assets/console/app.js',
    ]) {
      expect(paths, target).toContain(target);
    }
  });

  it("serves the console from the installed copy: its page and script, and the installed uplot's chart", async () => {
    const { code, stdout, stderr } = await run(process.execPath, ['admin.mjs']);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const got = JSON.parse(stdout) as Record<
      string,
      { status: number; type: string; body: string }
    >;
    const installed = (path: string) => readFileSync(join(app, 'node_modules', path), 'utf8');
    expect(got['/console']?.status).toBe(200);
    expect(got['/console']?.body).toBe(installed('stompbus/assets/console/index.html'));
    expect(got['/console/app.js']?.body).toBe(installed('stompbus/assets/console/app.js'));
    expect(got['/console/app.js']?.type).toMatch(/^text\/javascript/);
    expect(got['/console/uplot.js']?.status).toBe(200);
    expect(got['/console/uplot.js']?.body).toBe(installed('uplot/dist/uPlot.esm.js'));
    expect(got['/console/uplot.css']?.body).toBe(installed('uplot/dist/uPlot.min.css'));
    expect(got['/metrics']?.body).toMatch(/^stompbus_sessions 0$/m);
  });

  it('runs as ESM: both entries import, and an embedded broker answers a CONNECT over TCP', async () => {
    const { code, stdout, stderr } = await run(process.execPath, ['embed.mjs']);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const result = JSON.parse(stdout) as {
      types: object;
      encoded: string;
      reply: string;
      resolved: string;
    };
    expect(result.types).toEqual({
      attachWebSocket: 'function',
      createBroker: 'function',
      encodeFrame: 'function',
      StompServer: 'function',
      KafkaFanout: 'function',
    });
    expect(result.encoded).toMatch(/^SEND\ndestination:\/topic\/x\n/);
    expect(result.reply).toMatch(/^CONNECTED\n/);
    expect(result.reply).toContain('version:1.2\n');
    // The installed copy, not this checkout.
    expect(fileURLToPath(result.resolved)).toBe(
      join(realpathSync(app), 'node_modules/stompbus/dist/index.js'),
    );
  });
});

describe('the installed package without cluster mode', () => {
  it('never loads kafkajs: an embedded broker serves, publishes and closes without it', async () => {
    // kafkajs is there to be loaded: a dependency of the package, installed with it.
    expect(existsSync(join(app, 'node_modules/kafkajs/package.json'))).toBe(true);
    const { code, stdout, stderr } = await run(process.execPath, [
      '--import',
      './no-kafkajs.mjs',
      'embedded-only.mjs',
    ]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(stdout)).toEqual({
      reply: 'CONNECTED',
      cached: [],
      control: expect.stringMatching(/^kafkajs imported by file:.*embedded-only\.mjs$/),
    });
  });
});

describe('the installed package for TypeScript', () => {
  it(
    'type-checks a strict NodeNext consumer against its declarations, library checks on',
    async () => {
      const { code, stdout } = await run(process.execPath, [
        TSC,
        '--noEmit',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--target',
        'es2022',
        '--strict',
        '--skipLibCheck',
        'false',
        'consumer.ts',
      ]);
      // tsc reports its errors on stdout: the diff shows them.
      expect({ code, stdout }).toEqual({ code: 0, stdout: '' });
      // tsc takes ~8 s of CPU: on a busy machine more than the default 30 s of wall time.
    },
    COMMAND_TIMEOUT_MS,
  );
});

describe('the installed stompbus command', () => {
  it("is the package's bin: node_modules/.bin/stompbus runs the installed bin/stompbus.js", () => {
    expect(realpathSync(join(app, 'node_modules/.bin/stompbus'))).toBe(
      join(realpathSync(app), 'node_modules/stompbus/bin/stompbus.js'),
    );
  });

  it('prints the usage for npx stompbus --help, offline, and exits 0', async () => {
    // --offline and --yes=false: npx may neither fetch nor install; only the installed bin can answer.
    const { code, stdout, stderr } = await run('npx', [
      '--offline',
      '--yes=false',
      'stompbus',
      '--help',
    ]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const expected = execFileSync(process.execPath, [join(ROOT, 'bin/stompbus.js'), '--help'], {
      encoding: 'utf8',
    });
    expect(stdout).toBe(expected);
    expect(stdout).toMatch(/^Usage: stompbus /);
  });

  it("prints package.json's version for npx stompbus --version", async () => {
    const { code, stdout, stderr } = await run('npx', [
      '--offline',
      '--yes=false',
      'stompbus',
      '--version',
    ]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toBe(`${PKG.version}\n`);
  });
});
