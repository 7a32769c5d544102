import { readFileSync } from 'node:fs';
import { MAX_FETCH_INTERVAL_MS } from './cluster/fetch-loop.js';
import { MAX_PRODUCE_INTERVAL_MS } from './cluster/produce-queue.js';
import type { LogFormat, LogThreshold } from './ops/pino-logger.js';
import { aclAuthorizer } from './security/acl.js';
import { DEFAULT_SERVER_OPTIONS, type ServerOptions } from './server.js';
import { validateUsers } from './users.js';

/** The command's own options besides the server's: its log lines. */
export interface LogOptions {
  /** `--log-level`: lines below it are dropped. Default `info`. */
  logLevel: LogThreshold;
  /** `--log-format`: default `pretty` when stdout is a terminal, else `json`. */
  logFormat: LogFormat | undefined;
}

/** Everything the command line sets: the server's options and the command's own. */
export type CommandOptions = ServerOptions & LogOptions;

/** The levels and formats of the command's logger, here so that parsing flags never loads pino. */
const LOG_LEVELS: readonly LogThreshold[] = [
  'trace',
  'debug',
  'info',
  'warn',
  'error',
  'fatal',
  'silent',
];
const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

/** Checks `value` is one of `allowed`. */
function oneOf<T extends string>(flag: string, allowed: readonly T[], value: string): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new Error(`stompbus: ${flag} needs one of ${allowed.join(', ')}, got "${value}"`);
  }
  return value as T;
}

/** One command-line flag, its environment variable and how it maps to an option. */
interface Flag {
  flag: string;
  env: string;
  arg: string;
  help: string;
  apply: (options: Partial<CommandOptions>, value: string) => void;
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
  // A malformed scrypt$ entry is a usage error now, not a failed login later.
  validateUsers(new Map([[entry.slice(0, colon), entry.slice(colon + 1)]]));
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

/** Options that take a whole number. */
type NumericOption = {
  [K in keyof ServerOptions]: ServerOptions[K] extends number ? K : never;
}[keyof ServerOptions];

/** A flag that sets one whole-number option, at least `min` (default 0) and at most `max`. */
function numeric(
  flag: string,
  env: string,
  arg: string,
  key: NumericOption,
  help: string,
  min = 0,
  max = Number.POSITIVE_INFINITY,
): Flag {
  return {
    flag,
    env,
    arg,
    help,
    apply: (o, v) => {
      const n = int(flag, v);
      if (n < min) throw new Error(`stompbus: ${flag} needs at least ${min}`);
      if (n > max) throw new Error(`stompbus: ${flag} takes at most ${max}`);
      o[key] = n;
    },
  };
}

/** A flag that sets one whole-number option that must be at least 1. */
const positive = (flag: string, env: string, arg: string, key: NumericOption, help: string) =>
  numeric(flag, env, arg, key, help, 1);

/** Options that take text. */
type TextOption = {
  [K in keyof ServerOptions]: string extends ServerOptions[K] ? K : never;
}[keyof ServerOptions];

/** A flag that sets one text option. */
function text(flag: string, env: string, arg: string, key: TextOption, help: string): Flag {
  return {
    flag,
    env,
    arg,
    help,
    apply: (o, v) => {
      (o as Record<TextOption, string>)[key] = v;
    },
  };
}

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
  numeric('--port', 'STOMPBUS_PORT', 'n', 'port', `WebSocket port (${d.port})`),
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
    help: 'file of name:passcode lines, passcode plain or scrypt$... (# comments)',
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
    help: `server's side of the heart-beat negotiation, ms, 0 turns a direction off (${d.heartbeat.join(',')})`,
    apply: (o, v) => {
      const m = /^(\d+),(\d+)$/.exec(v);
      if (!m) throw new Error(`stompbus: --heartbeat needs sx,sy, got "${v}"`);
      o.heartbeat = [Number(m[1]), Number(m[2])];
    },
  },
  numeric(
    '--heartbeat-min',
    'STOMPBUS_HEARTBEAT_MIN',
    'ms',
    'heartbeatMin',
    `shortest heart-beat interval negotiated, whatever the client asks (${d.heartbeatMin})`,
  ),
  numeric(
    '--heartbeat-tolerance',
    'STOMPBUS_HEARTBEAT_TOLERANCE',
    'n',
    'heartbeatTolerance',
    `close a client silent for n heart-beat intervals (${d.heartbeatTolerance})`,
  ),
  numeric(
    '--connect-timeout',
    'STOMPBUS_CONNECT_TIMEOUT',
    'ms',
    'connectTimeoutMs',
    `time to send CONNECT (${d.connectTimeoutMs})`,
  ),
  numeric(
    '--max-frame-size',
    'STOMPBUS_MAX_FRAME_SIZE',
    'bytes',
    'maxFrameSize',
    `largest frame (${d.maxFrameSize})`,
  ),
  numeric(
    '--max-body-size',
    'STOMPBUS_MAX_BODY_SIZE',
    'bytes',
    'maxBodySize',
    `largest body (${d.maxBodySize})`,
  ),
  numeric(
    '--max-headers',
    'STOMPBUS_MAX_HEADERS',
    'n',
    'maxHeaders',
    `most headers per frame (${d.maxHeaders})`,
  ),
  numeric(
    '--max-header-line',
    'STOMPBUS_MAX_HEADER_LINE',
    'bytes',
    'maxHeaderLineLength',
    `longest header line (${d.maxHeaderLineLength})`,
  ),
  numeric(
    '--max-subscriptions',
    'STOMPBUS_MAX_SUBSCRIPTIONS',
    'n',
    'maxSubscriptions',
    `subscriptions per connection (${d.maxSubscriptions})`,
  ),
  numeric(
    '--max-transactions',
    'STOMPBUS_MAX_TRANSACTIONS',
    'n',
    'maxTransactions',
    `open transactions per connection (${d.maxTransactions})`,
  ),
  numeric(
    '--max-transaction-frames',
    'STOMPBUS_MAX_TRANSACTION_FRAMES',
    'n',
    'maxTransactionFrames',
    `frames per transaction (${d.maxTransactionFrames})`,
  ),
  numeric(
    '--high-water-mark',
    'STOMPBUS_HIGH_WATER_MARK',
    'bytes',
    'highWaterMark',
    `unsent output that makes a slow consumer (${d.highWaterMark})`,
  ),
  numeric(
    '--max-queue-messages',
    'STOMPBUS_MAX_QUEUE_MESSAGES',
    'n',
    'maxQueueMessages',
    `messages one queue holds (${d.maxQueueMessages})`,
  ),
  numeric(
    '--max-deliveries',
    'STOMPBUS_MAX_DELIVERIES',
    'n',
    'maxDeliveries',
    `deliveries before a message is dead-lettered (${d.maxDeliveries})`,
  ),
  {
    flag: '--dead-letter-queue',
    env: 'STOMPBUS_DEAD_LETTER_QUEUE',
    arg: 'dest',
    help: `where dead letters go, empty drops them (${d.deadLetterQueue})`,
    apply: (o, v) => {
      o.deadLetterQueue = v;
    },
  },
  numeric(
    '--max-pending-acks',
    'STOMPBUS_MAX_PENDING_ACKS',
    'n',
    'maxPendingAcks',
    `unacknowledged messages per topic subscription (${d.maxPendingAcks})`,
  ),
  numeric(
    '--history-max-messages',
    'STOMPBUS_HISTORY_MAX_MESSAGES',
    'n',
    'historyMaxMessages',
    `messages kept per topic for resumes, 0 keeps none (${d.historyMaxMessages})`,
  ),
  numeric(
    '--history-max-age',
    'STOMPBUS_HISTORY_MAX_AGE',
    'ms',
    'historyMaxAgeMs',
    `oldest message kept per topic for resumes (${d.historyMaxAgeMs})`,
  ),
  numeric(
    '--offline-max-messages',
    'STOMPBUS_OFFLINE_MAX_MESSAGES',
    'n',
    'offlineMaxMessages',
    `messages kept per user until consumed (${d.offlineMaxMessages})`,
  ),
  numeric(
    '--offline-max-age',
    'STOMPBUS_OFFLINE_MAX_AGE',
    'ms',
    'offlineMaxAgeMs',
    `oldest message kept per user (${d.offlineMaxAgeMs})`,
  ),
  numeric(
    '--presence-interval',
    'STOMPBUS_PRESENCE_INTERVAL',
    'ms',
    'presenceIntervalMs',
    `cluster mode: how often an instance announces its users; entries live 3x as long (${d.presenceIntervalMs})`,
  ),
  numeric(
    '--drain-delay',
    'STOMPBUS_DRAIN_DELAY',
    'ms',
    'drainDelayMs',
    `SIGTERM: /readyz says 503 at once, new connections still served this long (${d.drainDelayMs})`,
  ),
  numeric(
    '--drain-time',
    'STOMPBUS_DRAIN_TIME',
    'ms',
    'drainTimeMs',
    `SIGTERM: then the sessions get STOMP_ERR_SHUTDOWN evenly spread over this time (${d.drainTimeMs})`,
  ),
  numeric(
    '--shutdown-timeout',
    'STOMPBUS_SHUTDOWN_TIMEOUT',
    'ms',
    'shutdownTimeoutMs',
    `grace after the last ERROR before connections are cut, on SIGTERM and SIGINT (${d.shutdownTimeoutMs})`,
  ),
  // The admin port: metrics, the connection registry, the console (docs/operations.md).
  {
    flag: '--admin-port',
    env: 'STOMPBUS_ADMIN_PORT',
    arg: 'n|off',
    help: `admin port (/metrics, /users/<name>, /console); 0 picks a free one, off turns it off (${d.adminPort})`,
    apply: (o, v) => {
      o.adminPort = v === 'off' ? null : int('--admin-port', v);
    },
  },
  text(
    '--admin-host',
    'STOMPBUS_ADMIN_HOST',
    'addr',
    'adminHost',
    `interface of the admin port (${d.adminHost})`,
  ),
  text(
    '--admin-token',
    'STOMPBUS_ADMIN_TOKEN',
    'token',
    'adminToken',
    'admin requests need Authorization: Bearer <token> (off)',
  ),
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
  positive(
    '--kafka-send-timeout',
    'STOMPBUS_KAFKA_SEND_TIMEOUT',
    'ms',
    'kafkaSendTimeoutMs',
    `longest wait of a SEND for Kafka (an outage only delays its RECEIPT), then ERROR (${d.kafkaSendTimeoutMs})`,
  ),
  positive(
    '--kafka-max-pending',
    'STOMPBUS_KAFKA_MAX_PENDING',
    'n',
    'kafkaMaxPending',
    `messages waiting for Kafka on this instance; more get ERROR (${d.kafkaMaxPending})`,
  ),
  positive(
    '--kafka-max-pending-bytes',
    'STOMPBUS_KAFKA_MAX_PENDING_BYTES',
    'bytes',
    'kafkaMaxPendingBytes',
    `bytes of messages waiting for Kafka on this instance; more get ERROR (${d.kafkaMaxPendingBytes})`,
  ),
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
  {
    flag: '--kafka-interest',
    env: 'STOMPBUS_KAFKA_INTEREST',
    arg: 'subscribed|all',
    help: `which partitions of --kafka-topic and its users topic an instance fetches: those its subscribers and connected users need, or all (${d.kafkaInterest})`,
    apply: (o, v) => {
      if (v !== 'subscribed' && v !== 'all') {
        throw new Error(`stompbus: --kafka-interest needs subscribed or all, got "${v}"`);
      }
      o.kafkaInterest = v;
    },
  },
  {
    flag: '--kafka-headers',
    env: 'STOMPBUS_KAFKA_HEADERS',
    arg: 'packed|each',
    help: `how a message's STOMP headers travel on --kafka-topic and its users topic: all in one record header, or one record header each, as earlier versions wrote them (for a rolling upgrade from such a version, or Kafka consumers that read the headers); both are always read (${d.kafkaHeaders})`,
    apply: (o, v) => {
      if (v !== 'packed' && v !== 'each') {
        throw new Error(`stompbus: --kafka-headers needs packed or each, got "${v}"`);
      }
      o.kafkaHeaders = v;
    },
  },
  numeric(
    '--kafka-interest-linger',
    'STOMPBUS_KAFKA_INTEREST_LINGER',
    'ms',
    'kafkaInterestLingerMs',
    `with --kafka-interest subscribed: how long a partition nobody here wants is still fetched (${d.kafkaInterestLingerMs})`,
  ),
  numeric(
    '--kafka-fetch-interval',
    'STOMPBUS_KAFKA_FETCH_INTERVAL',
    'ms',
    'kafkaFetchIntervalMs',
    `least time between the starts of two fetches from a Kafka broker after one that brought records: fewer, fuller fetches under load; at most ${MAX_FETCH_INTERVAL_MS} (${d.kafkaFetchIntervalMs})`,
    0,
    MAX_FETCH_INTERVAL_MS,
  ),
  numeric(
    '--kafka-produce-interval',
    'STOMPBUS_KAFKA_PRODUCE_INTERVAL',
    'ms',
    'kafkaProduceIntervalMs',
    `least time between the starts of two produce requests, unless a full batch waits: fewer, fuller requests under load; at most ${MAX_PRODUCE_INTERVAL_MS} (${d.kafkaProduceIntervalMs})`,
    0,
    MAX_PRODUCE_INTERVAL_MS,
  ),
  {
    flag: '--queues',
    env: 'STOMPBUS_QUEUES',
    arg: 'cluster|local',
    help: `cluster mode: /queue/ destinations shared by every instance, or one per instance (${d.queues})`,
    apply: (o, v) => {
      if (v !== 'cluster' && v !== 'local') {
        throw new Error(`stompbus: --queues needs cluster or local, got "${v}"`);
      }
      o.queues = v;
    },
  },
  positive(
    '--queue-max-age',
    'STOMPBUS_QUEUE_MAX_AGE',
    'ms',
    'queueMaxAgeMs',
    `cluster queues: oldest a waiting message may get, then it is dead-lettered (${d.queueMaxAgeMs})`,
  ),
  // Security: token login, permissions, browsers and abuse (docs/security.md).
  text(
    '--jwt-secret',
    'STOMPBUS_JWT_SECRET',
    'secret',
    'jwtSecret',
    'JWT login: HS256/384/512 secret (off)',
  ),
  text(
    '--jwt-public-key',
    'STOMPBUS_JWT_PUBLIC_KEY',
    'file',
    'jwtPublicKey',
    'JWT login: PEM public key, RS*/PS*/ES*/EdDSA (off)',
  ),
  text(
    '--jwks-url',
    'STOMPBUS_JWKS_URL',
    'url',
    'jwksUrl',
    'JWT login: JSON Web Key Set URL (off)',
  ),
  text('--jwt-issuer', 'STOMPBUS_JWT_ISSUER', 'iss', 'jwtIssuer', 'required JWT issuer (any)'),
  text(
    '--jwt-audience',
    'STOMPBUS_JWT_AUDIENCE',
    'aud',
    'jwtAudience',
    'required JWT audience (any)',
  ),
  numeric(
    '--jwt-clock-tolerance',
    'STOMPBUS_JWT_CLOCK_TOLERANCE',
    's',
    'jwtClockToleranceSec',
    `leeway for exp and nbf, seconds (${d.jwtClockToleranceSec})`,
  ),
  text(
    '--jwt-user-claim',
    'STOMPBUS_JWT_USER_CLAIM',
    'claim',
    'jwtUserClaim',
    `the claim naming the user (${d.jwtUserClaim})`,
  ),
  {
    flag: '--acl-file',
    env: 'STOMPBUS_ACL_FILE',
    arg: 'file',
    help: 'JSON read/write rules per user; what no rule grants is refused (off)',
    apply: (o, v) => {
      // Checked now, so that a bad file is a usage error (exit 2) naming the rule.
      try {
        aclAuthorizer(v);
      } catch (error) {
        throw new Error(`stompbus: --acl-file ${(error as Error).message}`);
      }
      o.aclFile = v;
    },
  },
  {
    flag: '--allowed-origins',
    env: 'STOMPBUS_ALLOWED_ORIGINS',
    arg: 'origin,…',
    help: 'WebSocket Origins allowed, * for any; no Origin header is always allowed (any)',
    apply: (o, v) => {
      o.allowedOrigins = v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
    },
  },
  numeric(
    '--max-connections',
    'STOMPBUS_MAX_CONNECTIONS',
    'n',
    'maxConnections',
    'connections in total, 0 for no limit (0)',
  ),
  numeric(
    '--max-connections-per-ip',
    'STOMPBUS_MAX_CONNECTIONS_PER_IP',
    'n',
    'maxConnectionsPerIp',
    'connections per client address, 0 for no limit (0)',
  ),
  positive(
    '--max-pending-sends',
    'STOMPBUS_MAX_PENDING_SENDS',
    'n',
    'maxPendingSends',
    `frames of one connection whose RECEIPTs wait (SENDs and ACKs waiting for Kafka, frames behind them) before it is no longer read (${d.maxPendingSends})`,
  ),
  numeric(
    '--max-frames-per-second',
    'STOMPBUS_MAX_FRAMES_PER_SECOND',
    'n',
    'maxFramesPerSecond',
    'frames a connection may send per second; faster ones are slowed, 0 for no limit (0)',
  ),
  {
    flag: '--log-level',
    env: 'STOMPBUS_LOG_LEVEL',
    arg: 'level',
    help: `log lines shown: ${LOG_LEVELS.join(', ')} (info)`,
    apply: (o, v) => {
      o.logLevel = oneOf('--log-level', LOG_LEVELS, v);
    },
  },
  {
    flag: '--log-format',
    env: 'STOMPBUS_LOG_FORMAT',
    arg: 'json|pretty',
    help: 'log lines as JSON or readable (pretty on a terminal, else json)',
    apply: (o, v) => {
      o.logFormat = oneOf('--log-format', LOG_FORMATS, v);
    },
  },
];

/** What the command line asked for. */
export type Command =
  | { kind: 'serve'; options: Partial<CommandOptions> }
  | { kind: 'help' }
  | { kind: 'version' }
  /** `stompbus hash-passcode [passcode]`: print a users-file hash; no passcode: read stdin. */
  | { kind: 'hash-passcode'; passcode: string | undefined };

/**
 * Reads options from the environment, then from flags (flags win). Throws
 * an Error with a one-line message for anything it does not understand.
 */
export function parseArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): Command {
  if (argv[0] === 'hash-passcode') return hashPasscodeCommand(argv.slice(1));
  const options: Partial<CommandOptions> = {};
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

/** `hash-passcode [--help] [passcode]`: at most one passcode, never empty. */
function hashPasscodeCommand(args: string[]): Command {
  if (args.includes('--help') || args.includes('-h')) return { kind: 'help' };
  if (args.length > 1) throw new Error('stompbus: hash-passcode takes one passcode at most');
  if (args[0] === '') throw new Error('stompbus: hash-passcode: the passcode is empty');
  return { kind: 'hash-passcode', passcode: args[0] };
}

/** The `--help` text: every flag with its environment variable. */
export function usage(): string {
  const rows = FLAGS.map(
    (f) => `  ${`${f.flag} <${f.arg}>`.padEnd(34)}${f.help}\n  ${''.padEnd(34)}env ${f.env}`,
  );
  return [
    'Usage: stompbus [options]',
    '       stompbus hash-passcode [passcode]',
    '',
    'A STOMP 1.2 broker over WebSocket and TCP. Flags override environment variables.',
    '',
    'Options:',
    ...rows,
    `  ${'--help'.padEnd(34)}print this help`,
    `  ${'--version'.padEnd(34)}print the version`,
    '',
    'Commands:',
    `  ${'hash-passcode [passcode]'.padEnd(34)}print scrypt$N=16384;r=8;p=1$<salt>$<hash> for a`,
    `  ${''.padEnd(34)}--users-file line name:<that>; without an argument the`,
    `  ${''.padEnd(34)}passcode is read from standard input (one line)`,
    '',
  ].join('\n');
}
