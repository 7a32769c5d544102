import { parseArgs, usage } from './config.js';
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
  let server: StompServer;
  try {
    server = new StompServer(command.options);
    await server.start();
  } catch (error) {
    console.error((error as Error).message);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`stompbus: ${signal}, closing ${server.sessions.size} connection(s)`);
    // A hard deadline in case something refuses to close.
    setTimeout(() => process.exit(1), server.options.shutdownTimeoutMs + 5000).unref();
    server.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error('stompbus: error while stopping', error);
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
  console.log(`stompbus ${VERSION} ready (${mode})`);
  console.log(`  ${ws}://${host}:${server.port}${wsPath}   STOMP over WebSocket`);
  if (server.tcpPort !== undefined) {
    console.log(
      `  ${tlsCert ? 'stomp+ssl' : 'stomp'}://${host}:${server.tcpPort}   STOMP over TCP`,
    );
  }
  if (server.admin?.url) console.log(`  ${server.admin.url}/metrics   admin: metrics, /console`);
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
