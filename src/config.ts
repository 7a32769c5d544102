import { readFileSync } from 'node:fs';
import { DEFAULT_SERVER_OPTIONS, type ServerOptions } from './server.js';

/** One command-line flag, its environment variable and how it maps to an option. */
interface Flag {
  flag: string;
  env: string;
  arg: string;
  help: string;
  apply: (options: Partial<ServerOptions>, value: string) => void;
}

const int = (flag: string, value: string): number => {
  if (!/^[0-9]+$/.test(value))
    throw new Error(`stompbus: ${flag} needs a whole number, got "${value}"`);
  return Number(value);
};

const addUser = (options: Partial<ServerOptions>, entry: string, from: string) => {
  const colon = entry.indexOf(':');
  if (colon <= 0) throw new Error(`stompbus: ${from} needs name:passcode, got "${entry}"`);
  const users = new Map(options.users ?? []);
  users.set(entry.slice(0, colon), entry.slice(colon + 1));
  options.users = users;
};

const readUsersFile = (file: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`stompbus: cannot read --users-file ${file}: ${(error as Error).message}`);
  }
};

const d = DEFAULT_SERVER_OPTIONS;

/** Every flag, in the order `--help` lists them. */
export const FLAGS: Flag[] = [
  {
    flag: '--host',
    env: 'STOMPBUS_HOST',
    arg: 'addr',
    help: `interface to listen on (${d.host})`,
    apply: (o, v) => {
      o.host = v;
    },
  },
  {
    flag: '--port',
    env: 'STOMPBUS_PORT',
    arg: 'n',
    help: `WebSocket port (${d.port})`,
    apply: (o, v) => {
      o.port = int('--port', v);
    },
  },
  {
    flag: '--ws-path',
    env: 'STOMPBUS_WS_PATH',
    arg: 'path',
    help: `WebSocket endpoint path (${d.wsPath})`,
    apply: (o, v) => {
      o.wsPath = v;
    },
  },
  {
    flag: '--tcp-port',
    env: 'STOMPBUS_TCP_PORT',
    arg: 'n',
    help: `STOMP over TCP port, 0 turns TCP off (${d.tcpPort})`,
    apply: (o, v) => {
      const n = int('--tcp-port', v);
      o.tcpPort = n === 0 ? null : n;
    },
  },
  {
    flag: '--tls-cert',
    env: 'STOMPBUS_TLS_CERT',
    arg: 'file',
    help: 'PEM certificate: serve wss:// and STOMP over TLS (off)',
    apply: (o, v) => {
      o.tlsCert = v;
    },
  },
  {
    flag: '--tls-key',
    env: 'STOMPBUS_TLS_KEY',
    arg: 'file',
    help: 'PEM private key for --tls-cert',
    apply: (o, v) => {
      o.tlsKey = v;
    },
  },
  {
    flag: '--user',
    env: 'STOMPBUS_USERS',
    arg: 'name:passcode',
    help: 'allow this login, repeatable; env: comma separated (none: anonymous access)',
    apply: (o, v) => {
      for (const u of v.split(',')) if (u) addUser(o, u, '--user');
    },
  },
  {
    flag: '--users-file',
    env: 'STOMPBUS_USERS_FILE',
    arg: 'file',
    help: 'file of name:passcode lines (# comments)',
    apply: (o, v) => {
      for (const line of readUsersFile(v).split(/\r?\n/)) {
        const t = line.trim();
        if (t && !t.startsWith('#')) addUser(o, t, v);
      }
    },
  },
  {
    flag: '--heartbeat',
    env: 'STOMPBUS_HEARTBEAT',
    arg: 'sx,sy',
    help: `heart-beat offered, ms (${d.heartbeat.join(',')})`,
    apply: (o, v) => {
      const m = /^(\d+),(\d+)$/.exec(v);
      if (!m) throw new Error(`stompbus: --heartbeat needs sx,sy, got "${v}"`);
      o.heartbeat = [Number(m[1]), Number(m[2])];
    },
  },
  {
    flag: '--heartbeat-tolerance',
    env: 'STOMPBUS_HEARTBEAT_TOLERANCE',
    arg: 'n',
    help: `close a client silent for n heart-beat intervals (${d.heartbeatTolerance})`,
    apply: (o, v) => {
      o.heartbeatTolerance = int('--heartbeat-tolerance', v);
    },
  },
  {
    flag: '--connect-timeout',
    env: 'STOMPBUS_CONNECT_TIMEOUT',
    arg: 'ms',
    help: `time to send CONNECT (${d.connectTimeoutMs})`,
    apply: (o, v) => {
      o.connectTimeoutMs = int('--connect-timeout', v);
    },
  },
  {
    flag: '--max-frame-size',
    env: 'STOMPBUS_MAX_FRAME_SIZE',
    arg: 'bytes',
    help: `largest frame (${d.maxFrameSize})`,
    apply: (o, v) => {
      o.maxFrameSize = int('--max-frame-size', v);
    },
  },
  {
    flag: '--max-body-size',
    env: 'STOMPBUS_MAX_BODY_SIZE',
    arg: 'bytes',
    help: `largest body (${d.maxBodySize})`,
    apply: (o, v) => {
      o.maxBodySize = int('--max-body-size', v);
    },
  },
  {
    flag: '--max-headers',
    env: 'STOMPBUS_MAX_HEADERS',
    arg: 'n',
    help: `most headers per frame (${d.maxHeaders})`,
    apply: (o, v) => {
      o.maxHeaders = int('--max-headers', v);
    },
  },
  {
    flag: '--max-header-line',
    env: 'STOMPBUS_MAX_HEADER_LINE',
    arg: 'bytes',
    help: `longest header line (${d.maxHeaderLineLength})`,
    apply: (o, v) => {
      o.maxHeaderLineLength = int('--max-header-line', v);
    },
  },
  {
    flag: '--max-subscriptions',
    env: 'STOMPBUS_MAX_SUBSCRIPTIONS',
    arg: 'n',
    help: `subscriptions per connection (${d.maxSubscriptions})`,
    apply: (o, v) => {
      o.maxSubscriptions = int('--max-subscriptions', v);
    },
  },
  {
    flag: '--max-transactions',
    env: 'STOMPBUS_MAX_TRANSACTIONS',
    arg: 'n',
    help: `open transactions per connection (${d.maxTransactions})`,
    apply: (o, v) => {
      o.maxTransactions = int('--max-transactions', v);
    },
  },
  {
    flag: '--max-transaction-frames',
    env: 'STOMPBUS_MAX_TRANSACTION_FRAMES',
    arg: 'n',
    help: `frames per transaction (${d.maxTransactionFrames})`,
    apply: (o, v) => {
      o.maxTransactionFrames = int('--max-transaction-frames', v);
    },
  },
  {
    flag: '--high-water-mark',
    env: 'STOMPBUS_HIGH_WATER_MARK',
    arg: 'bytes',
    help: `unsent output that makes a slow consumer (${d.highWaterMark})`,
    apply: (o, v) => {
      o.highWaterMark = int('--high-water-mark', v);
    },
  },
  {
    flag: '--max-queue-messages',
    env: 'STOMPBUS_MAX_QUEUE_MESSAGES',
    arg: 'n',
    help: `messages one queue holds (${d.maxQueueMessages})`,
    apply: (o, v) => {
      o.maxQueueMessages = int('--max-queue-messages', v);
    },
  },
  {
    flag: '--max-deliveries',
    env: 'STOMPBUS_MAX_DELIVERIES',
    arg: 'n',
    help: `deliveries before a message is dead-lettered (${d.maxDeliveries})`,
    apply: (o, v) => {
      o.maxDeliveries = int('--max-deliveries', v);
    },
  },
  {
    flag: '--dead-letter-queue',
    env: 'STOMPBUS_DEAD_LETTER_QUEUE',
    arg: 'dest',
    help: `where dead letters go, empty drops them (${d.deadLetterQueue})`,
    apply: (o, v) => {
      o.deadLetterQueue = v;
    },
  },
  {
    flag: '--max-pending-acks',
    env: 'STOMPBUS_MAX_PENDING_ACKS',
    arg: 'n',
    help: `unacknowledged messages per topic subscription (${d.maxPendingAcks})`,
    apply: (o, v) => {
      o.maxPendingAcks = int('--max-pending-acks', v);
    },
  },
  {
    flag: '--shutdown-timeout',
    env: 'STOMPBUS_SHUTDOWN_TIMEOUT',
    arg: 'ms',
    help: `grace for clients on SIGTERM (${d.shutdownTimeoutMs})`,
    apply: (o, v) => {
      o.shutdownTimeoutMs = int('--shutdown-timeout', v);
    },
  },
  {
    flag: '--kafka-brokers',
    env: 'KAFKA_BROKERS',
    arg: 'host:port,…',
    help: 'Kafka bootstrap servers: cluster mode (off: embedded broker)',
    apply: (o, v) => {
      o.kafkaBrokers = v;
    },
  },
  {
    flag: '--kafka-topic',
    env: 'STOMPBUS_KAFKA_TOPIC',
    arg: 'name',
    help: `Kafka topic of /topic/ traffic (${d.kafkaTopic})`,
    apply: (o, v) => {
      o.kafkaTopic = v;
    },
  },
  {
    flag: '--kafka-partitions',
    env: 'STOMPBUS_KAFKA_PARTITIONS',
    arg: 'n',
    help: `partitions of --kafka-topic when created (${d.kafkaPartitions})`,
    apply: (o, v) => {
      const n = int('--kafka-partitions', v);
      if (n < 1) throw new Error('stompbus: --kafka-partitions needs at least 1');
      o.kafkaPartitions = n;
    },
  },
  {
    flag: '--bridge',
    env: 'STOMPBUS_BRIDGES',
    arg: 'kafkaTopic=/topic/name',
    help: 'bridge a Kafka topic to a destination, repeatable; env: comma separated',
    apply: (o, v) => {
      for (const entry of v.split(',')) {
        if (!entry) continue;
        const eq = entry.indexOf('=');
        if (eq <= 0 || !entry.slice(eq + 1).startsWith('/topic/')) {
          throw new Error(`stompbus: --bridge needs kafkaTopic=/topic/name, got "${entry}"`);
        }
        o.kafkaBridges = { ...o.kafkaBridges, [entry.slice(0, eq)]: entry.slice(eq + 1) };
      }
    },
  },
];

/** What the command line asked for. */
export type Command =
  | { kind: 'serve'; options: Partial<ServerOptions> }
  | { kind: 'help' }
  | { kind: 'version' };

/**
 * Reads options from the environment, then from flags (flags win). Throws
 * an Error with a one-line message for anything it does not understand.
 */
export function parseArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): Command {
  const options: Partial<ServerOptions> = {};
  for (const f of FLAGS) {
    const value = env[f.env];
    if (value !== undefined && value !== '') f.apply(options, value);
  }
  let usersFromFlags = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help' || arg === '-h') return { kind: 'help' };
    if (arg === '--version' || arg === '-v') return { kind: 'version' };
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const f = FLAGS.find((x) => x.flag === name);
    if (!f) throw new Error(`stompbus: unknown option ${name} (see --help)`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new Error(`stompbus: ${name} needs a value (see --help)`);
    if (f.flag === '--user' && !usersFromFlags) {
      // Flags replace users from the environment rather than adding to them.
      usersFromFlags = true;
      options.users = new Map();
    }
    f.apply(options, value);
  }
  return { kind: 'serve', options };
}

/** The `--help` text: every flag with its environment variable. */
export function usage(): string {
  const rows = FLAGS.map(
    (f) => `  ${`${f.flag} <${f.arg}>`.padEnd(34)}${f.help}\n  ${''.padEnd(34)}env ${f.env}`,
  );
  return [
    'Usage: stompbus [options]',
    '',
    'A STOMP 1.2 broker over WebSocket and TCP. Flags override environment variables.',
    '',
    'Options:',
    ...rows,
    `  ${'--help'.padEnd(34)}print this help`,
    `  ${'--version'.padEnd(34)}print the version`,
    '',
  ].join('\n');
}
