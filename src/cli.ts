import { parseArgs, usage } from './config.js';
import { createLogger } from './ops/pino-logger.js';
import { StompServer } from './server.js';
import { hashPasscode } from './users.js';
import { VERSION } from './version.js';

/** The `stompbus` command: parse options, start, stop cleanly on SIGTERM/SIGINT. */
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
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    const connections = server.sessions.size;
    const since = Date.now();
    logger.info(
      { event: 'shutdown', signal, connections },
      `${signal}, closing ${connections} connection(s)`,
    );
    // A hard deadline in case something refuses to close.
    setTimeout(() => process.exit(1), server.options.shutdownTimeoutMs + 5000).unref();
    server.stop().then(
      () => {
        logger.info({ event: 'stopped', durationMs: Date.now() - since }, 'stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ event: 'stopped', err: error }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  // Handlers first: a supervisor may signal as soon as it reads the ready line.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
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
    },
    `stompbus ${VERSION} ready (${mode})`,
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
