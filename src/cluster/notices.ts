/**
 * What cluster mode tells the operator (log lines) and a client (the error of
 * a SEND) when Kafka is in trouble. Kafka trouble tends to repeat for every
 * message, so warnings that would repeat are logged once.
 */
import { StompError } from '../errors.js';
import type { Logger } from '../ops/log.js';

/** The state of the link to Kafka a line reports, in its `kafka` field. */
export type KafkaState =
  | 'connecting'
  | 'connected'
  | 'unreachable'
  | 'lost'
  | 'back'
  | 'crashed'
  | 'restarted'
  | 'stopped';

/** Where cluster mode's log lines go: a level, a message, and fields of the line. */
export type Log = (
  level: 'info' | 'warn' | 'error',
  message: string,
  fields?: { kafka?: KafkaState } & Record<string, unknown>,
) => void;

/** A {@link Log} writing to `logger` (none: nowhere), every line marked `component: 'kafka'`. */
export function kafkaLog(logger: Logger | undefined): Log {
  if (!logger) return () => {};
  return (level, message, fields) => logger[level]({ component: 'kafka', ...fields }, message);
}

/** A log that can also warn once per kind of trouble. */
export class Notices {
  private readonly warned = new Set<string>();

  constructor(readonly log: Log) {}

  /** Logs `message` the first time `key` comes up, never again: one line, not a flood. */
  warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log('warn', message);
  }
}

/** The error a SEND gets when Kafka cannot take it. */
export function unavailable(detail: string, cause?: unknown): StompError {
  return new StompError('STOMP_ERR_CLUSTER_UNAVAILABLE', { detail, cause });
}

/** An error's message for a log line or an ERROR frame. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
