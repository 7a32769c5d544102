import type { Logger, LogLevel } from '../../src/ops/log.js';

/** One captured log line: its level, message and fields. */
export interface LogLine extends Record<string, unknown> {
  readonly level: LogLevel;
  readonly msg: string;
}

/**
 * A {@link Logger} that keeps every line, for specs that provoke errors on
 * purpose: they assert on the lines instead of letting them print.
 */
export class LogCapture implements Logger {
  readonly lines: LogLine[] = [];
  readonly debug = this.method('debug');
  readonly info = this.method('info');
  readonly warn = this.method('warn');
  readonly error = this.method('error');

  /** The lines at info and above as `level: message` (debug lines are kafkajs' chatter). */
  get texts(): string[] {
    return this.lines.filter((l) => l.level !== 'debug').map((l) => `${l.level}: ${l.msg}`);
  }

  /** The lines whose `event` field is `event`. */
  events(event: string): LogLine[] {
    return this.lines.filter((l) => l.event === event);
  }

  /** Waits (polling, up to `timeoutMs`) for a line that `match` accepts; resolves with it. */
  async waitFor(match: (line: LogLine) => boolean, timeoutMs = 5_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.find(match);
      if (line) return line;
      if (Date.now() > deadline) {
        throw new Error(
          `no such log line within ${timeoutMs} ms; lines: ${JSON.stringify(this.lines)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  private method(level: LogLevel) {
    return (fields: Record<string, unknown>, msg: string) => {
      this.lines.push({ ...fields, level, msg });
    };
  }
}
