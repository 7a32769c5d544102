import { parseArgs, usage } from './config.js';
import { StompServer } from './server.js';
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
}
