/**
 * The `stompbus` command's logger: pino, writing one JSON object per line to
 * stdout for a log shipper, or readable lines for a person at a terminal.
 * Only the command loads this file (and pino): a library user passes a
 * logger of their own.
 */
import { inspect } from 'node:util';
import { pino, stdTimeFunctions } from 'pino';

/** The levels `--log-level` takes, most verbose first; `silent` writes nothing. */
export type LogThreshold = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** `--log-format`: JSON lines, or readable lines. */
export type LogFormat = 'json' | 'pretty';

/** What {@link createLogger} takes. */
export interface LoggerOptions {
  /** Lines below this level are dropped. Default `info`. */
  level?: LogThreshold;
  /** Default: `pretty` when `stream` is a terminal, else `json`. */
  format?: LogFormat | undefined;
  /** Where lines go. Default stdout. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; fd?: number };
}

/**
 * A pino logger. JSON lines carry `level` as its name (`"info"`), `time` as
 * an ISO 8601 date, `pid`, `hostname`, the line's fields and `msg`. Lines are
 * written synchronously, so none is lost when the process exits.
 */
export function createLogger(options: LoggerOptions = {}): pino.Logger {
  const stream = options.stream ?? process.stdout;
  const format = options.format ?? (stream.isTTY ? 'pretty' : 'json');
  const settings: pino.LoggerOptions = {
    level: options.level ?? 'info',
    formatters: { level: (label) => ({ level: label }) },
    timestamp: stdTimeFunctions.isoTime,
  };
  // Stdout through a synchronous destination: the last lines survive process.exit().
  const out = stream === process.stdout ? pino.destination({ fd: 1, sync: true }) : stream;
  if (format === 'pretty') {
    const colors = Boolean(stream.isTTY) && !process.env.NO_COLOR;
    return pino(settings, {
      write: (line: string) => {
        out.write(prettyLine(JSON.parse(line) as Record<string, unknown>, colors));
      },
    });
  }
  return pino(settings, out);
}

/** Fields the readable form shows in its own way, or not at all (`event`: the message says it). */
const OWN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'err', 'event']);

/** The ready line's URLs, shown below it in the readable form. */
const READY_URLS = new Map([
  ['ws', 'STOMP over WebSocket'],
  ['tcp', 'STOMP over TCP'],
  ['admin', 'admin: the console, /metrics'],
]);

/** ANSI colours of each level's name (only on a terminal, never with NO_COLOR). */
const COLORS: Record<string, string> = {
  trace: '90',
  debug: '90',
  info: '32',
  warn: '33',
  error: '31',
  fatal: '35',
};

/**
 * One JSON line made readable: `12:00:01.234 INFO  message key=value …`, an
 * error's stack indented below it, the ready line's URLs each on a line of
 * its own (`  ws://host:61614/stomp   STOMP over WebSocket`).
 */
export function prettyLine(line: Record<string, unknown>, colors = false): string {
  const level = String(line.level ?? 'info');
  const time = typeof line.time === 'string' ? line.time.slice(11, 23) : '';
  const name = level.toUpperCase().padEnd(5);
  const paint = (code: string | undefined, text: string) =>
    colors && code ? `\u001b[${code}m${text}\u001b[0m` : text;
  const ready = line.event === 'ready';
  const fields = Object.entries(line)
    .filter(([key, value]) => !OWN.has(key) && value !== undefined)
    .filter(([key]) => !(ready && READY_URLS.has(key)))
    .map(([key, value]) => `${paint('2', `${key}=`)}${showValue(value)}`);
  let text = [time, paint(COLORS[level], name), line.msg, ...fields].join(' ');
  // The ready line shows where to connect as the command always has, one URL a line.
  if (ready) {
    for (const [key, what] of READY_URLS) {
      if (typeof line[key] === 'string') text += `\n  ${line[key]}   ${what}`;
    }
  }
  const err = line.err as { stack?: string; message?: string } | undefined;
  if (err) text += `\n    ${(err.stack ?? err.message ?? inspect(err)).replace(/\n/g, '\n    ')}`;
  return `${text}\n`;
}

/** A field's value: bare when it is a word, else as JSON. */
function showValue(value: unknown): string {
  if (typeof value === 'string' && /^[^\s"=]+$/.test(value)) return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}
