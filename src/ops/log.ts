/**
 * Logging: the small interface stompbus writes its log lines to, and the
 * lines it writes about connections. A pino logger fits the interface as it
 * is (the `stompbus` command passes one); a library user passes their own, or
 * none: an embedded broker logs nothing unless asked.
 */
import type { ErrorCode, StompError } from '../errors.js';

/** One log call: the line's fields, then its message (pino's argument order). */
export type LogMethod = (fields: Record<string, unknown>, message: string) => void;

/** Where stompbus writes log lines: pino's shape, so `logger: pino()` fits. */
export interface Logger {
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
}

/** The levels of {@link Logger}. */
export type LogLevel = keyof Logger;

/** A logger that drops every line: the default of an embedded broker. */
export const SILENT_LOGGER: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});

/** How a connection ended, in a `disconnect` event and the close line. */
export type CloseReason =
  /** The client sent DISCONNECT. */
  | 'disconnect'
  /** The broker sent an ERROR frame (its code says why), then closed. */
  | 'error'
  /** The client fell silent beyond the negotiated heart-beat (ERROR `STOMP_ERR_HEARTBEAT_TIMEOUT`). */
  | 'heartbeat-timeout'
  /** The client (or the network) closed the connection without DISCONNECT. */
  | 'socket-closed'
  /** The broker is shutting down (ERROR `STOMP_ERR_SHUTDOWN`). */
  | 'shutdown';

/** Who a session is, as the broker's events tell it. */
interface Who {
  readonly sessionId: string;
  readonly user: string | undefined;
  readonly remoteAddress: string;
  readonly transport: string;
}

/** What a close line needs (the broker's `disconnect` event). */
interface Closed extends Who {
  readonly error: StompError | undefined;
  readonly reason: CloseReason;
  readonly durationMs: number;
}

/** What a refusal line needs (the broker's `error` event). */
interface Refused extends Who {
  readonly error: StompError;
  readonly command: string | undefined;
  readonly destination: string | undefined;
}

/** The fields every connection line has; `user` only when there is one. */
function who(info: Who): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    sessionId: info.sessionId,
    remoteAddress: info.remoteAddress,
    transport: info.transport,
  };
  if (info.user !== undefined) fields.user = info.user;
  return fields;
}

/**
 * The log lines of connections, as listeners of the broker's events: one
 * info line per connection open (CONNECTED sent) and per close, one warn line
 * per ERROR frame sent (a refused frame names its command and destination),
 * and the stack of an internal error at error level. Nothing per message.
 */
export function connectionLog(logger: Logger) {
  return {
    connect(info: Who): void {
      logger.info({ event: 'connection.open', ...who(info) }, 'connection open');
    },
    disconnect(info: Closed): void {
      const fields: Record<string, unknown> = {
        event: 'connection.close',
        ...who(info),
        durationMs: info.durationMs,
        reason: info.reason,
      };
      if (info.error) fields.code = info.error.code;
      logger.info(fields, 'connection closed');
    },
    error(info: Refused): void {
      const { error, command, destination } = info;
      // Part of a shutdown, which has lines of its own.
      if (error.code === 'STOMP_ERR_SHUTDOWN') return;
      const fields: Record<string, unknown> = {
        event: command ? 'frame.refused' : 'connection.error',
        ...who(info),
        code: error.code satisfies ErrorCode,
      };
      if (command) fields.command = command;
      if (destination !== undefined) fields.destination = destination;
      fields.detail = error.message;
      if (error.code === 'STOMP_ERR_INTERNAL') {
        // A bug: the stack is what a report needs.
        fields.err = error.cause instanceof Error ? error.cause : error;
        logger.error(fields, 'internal error');
        return;
      }
      logger.warn(fields, command ? 'frame refused' : 'connection failed');
    },
  };
}
