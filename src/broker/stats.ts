/**
 * What a broker counts while it works: plain numbers that sessions and
 * destinations add to on the hot path (one property write each), read by the
 * metrics and the console only when somebody asks (`src/ops/`). Nothing here
 * allocates per frame or per delivery.
 */
import { CLIENT_COMMANDS, SERVER_COMMANDS } from '../frame/frame.js';

/** Counters of one broker, from its start. */
export class BrokerStats {
  /** Frames received, by command (every client command has its slot from the start). */
  readonly received: Record<string, number> = {};
  /** Frames sent, by command (MESSAGE counts deliveries). */
  readonly sent: Record<string, number> & { MESSAGE: number; ERROR: number } = {
    MESSAGE: 0,
    ERROR: 0,
  };
  /** ERROR frames sent, by error code. */
  readonly errors = new Map<string, number>();
  /** Bytes read from clients. */
  bytesIn = 0;
  /** Bytes handed to the transports for clients. */
  bytesOut = 0;
  /** Connections accepted, by transport (`websocket` or `tcp`; TLS counts under its base). */
  readonly accepted = { websocket: 0, tcp: 0 };
  /** Messages moved to a dead-letter destination. */
  deadLetters = 0;

  constructor() {
    for (const command of CLIENT_COMMANDS) this.received[command] = 0;
    for (const command of SERVER_COMMANDS) this.sent[command] = 0;
  }

  /** A frame came in. */
  frameIn(command: string): void {
    this.received[command] = (this.received[command] ?? 0) + 1;
  }

  /** A frame other than MESSAGE and ERROR went out (those two count themselves). */
  frameOut(command: string): void {
    this.sent[command] = (this.sent[command] ?? 0) + 1;
  }

  /** An ERROR frame with `code` went out. */
  error(code: string): void {
    this.sent.ERROR++;
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }
}

/** What a destination counts: messages that arrived there, and deliveries made from it. */
export interface DestinationCounters {
  /** Messages that arrived (from the bus, or a SEND to a queue). */
  messagesIn: number;
  /** MESSAGE frames delivered from it. */
  messagesOut: number;
}
