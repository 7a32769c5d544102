import { parseArgs, usage } from './config.js';
import type { Logger } from './ops/log.js';
import { createLogger } from './ops/pino-logger.js';
import { StompServer } from './server.js';
import { hashPasscode } from './users.js';
import { VERSION } from './version.js';

/** The `stompbus` command: parse options, start, drain on SIGTERM, stop on SIGINT. */
export async function main(argv = process.argv.slice(2)): Promise<void> {
  let command: ReturnType<typeof parseArgs>;
  try {
    command = parseArgs(argv);
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
  if (command.kind === 'help') {
    process.stdout.write(usage());
    return;
  }
  if (command.kind === 'version') {
    console.log(VERSION);
    return;
  }
  if (command.kind === 'hash-passcode') {
    await printHash(command.passcode);
    return;
  }
  // JSON lines on stdout (readable ones at a terminal); the broker and Kafka write to it too.
  const { logLevel, logFormat, ...options } = command.options;
  const logger = createLogger({ level: logLevel, format: logFormat });
  let server: StompServer;
  try {
    server = new StompServer({ ...options, logger });
    await server.start();
  } catch (error) {
    console.error((error as Error).message);
    process.exit(1);
  }
  // SIGTERM drains (what a supervisor or an orchestrator sends for a rolling
  // restart); SIGINT (Ctrl-C) stops at once; a signal during a drain turns it
  // into a quick stop, and one during a quick stop exits at once (code 1).
  let state: 'serving' | 'draining' | 'stopping' = 'serving';
  const exitBy = (ms: number) => setTimeout(() => process.exit(1), ms).unref();
  const onSignal = (signal: NodeJS.Signals) => {
    const { drainDelayMs, drainTimeMs, shutdownTimeoutMs } = server.options;
    const count = `${server.sessions.size} connection(s)`;
    if (state === 'serving' && signal === 'SIGTERM') {
      state = 'draining';
      logger.info(
        { event: 'shutdown', signal, connections: server.sessions.size, drainDelayMs, drainTimeMs },
        `SIGTERM, draining ${count}: not ready now, closing them over ` +
          `${drainTimeMs} ms after ${drainDelayMs} ms (SIGINT or SIGTERM again: at once)`,
      );
      // A hard deadline in case something refuses to close.
      exitBy(drainDelayMs + drainTimeMs + shutdownTimeoutMs + 5000);
      settle(server.drain(), logger);
    } else if (state !== 'stopping') {
      state = 'stopping';
      logger.info(
        { event: 'shutdown', signal, connections: server.sessions.size },
        `${signal}, closing ${count}`,
      );
      exitBy(shutdownTimeoutMs + 5000);
      settle(server.stop(), logger);
    } else {
      logger.warn({ event: 'shutdown', signal }, `${signal} again, exiting now`);
      process.exit(1);
    }
  };
  // Handlers first: a supervisor may signal as soon as it reads the ready line.
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const { host, wsPath, tlsCert } = server.options;
  const ws = tlsCert ? 'wss' : 'ws';
  const mode = server.options.kafkaBrokers
    ? `cluster mode, Kafka ${server.options.kafkaBrokers}, topic ${server.options.kafkaTopic}`
    : 'embedded broker';
  // The URLs are fields of their own: a supervisor reads them from the JSON line.
  const { tcpPort } = server;
  logger.info(
    {
      event: 'ready',
      version: VERSION,
      mode: server.options.kafkaBrokers ? 'cluster' : 'embedded',
      ws: `${ws}://${host}:${server.port}${wsPath}`,
      tcp:
        tcpPort === undefined
          ? undefined
          : `${tlsCert ? 'stomp+ssl' : 'stomp'}://${host}:${tcpPort}`,
      admin: server.admin?.url ? `${server.admin.url}/console` : undefined,
    },
    `stompbus ${VERSION} ready (${mode})`,
  );
}

/** Exits 0 once the server has stopped, 1 if stopping failed. */
function settle(stopped: Promise<void>, logger: Logger): void {
  const since = Date.now();
  stopped.then(
    () => {
      logger.info({ event: 'stopped', durationMs: Date.now() - since }, 'stopped');
      process.exit(0);
    },
    (error: unknown) => {
      logger.error({ event: 'stopped', err: error }, 'error while stopping');
      process.exit(1);
    },
  );
}

/**
 * `stompbus hash-passcode`: prints the scrypt line for a users file. The
 * passcode is best piped in: an argument shows in `ps` and shell history.
 */
async function printHash(argument: string | undefined): Promise<void> {
  let passcode = argument;
  if (passcode === undefined) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    // One line: its line break is not part of the passcode.
    passcode = Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '');
  }
  if (passcode === '') {
    console.error('stompbus: hash-passcode: the passcode is empty');
    process.exit(2);
  }
  console.log(await hashPasscode(passcode));
}
