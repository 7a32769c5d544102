import { type EscapeMode, escapeHeader } from '../frame/escape.js';
import type { Header } from '../frame/frame.js';
import { shownDestination } from './destination.js';

/**
 * Where a message stands in its destination's order. `epoch` names the
 * sequence (a process start in embedded mode, a Kafka partition in cluster
 * mode); `n` grows within it.
 */
export interface Position {
  readonly epoch: string;
  readonly n: number;
}

/** The MESSAGE header that carries a message's {@link Position} (an opaque, ordered token). */
export const POSITION_HEADER = 'x-position';
/** The header (on a resume's RECEIPT and first MESSAGE) telling whether it missed nothing. */
export const RESUME_HEADER = 'x-resume';

/** A position as the token clients see and send back. */
export function positionToken(position: Position): string {
  return `${position.epoch}-${position.n}`;
}

/** The position a token names; undefined when it is not one of ours. */
export function parsePosition(token: string): Position | undefined {
  const dash = token.lastIndexOf('-');
  if (dash <= 0 || !/^[0-9]{1,16}$/.test(token.slice(dash + 1))) return undefined;
  return { epoch: token.slice(0, dash), n: Number(token.slice(dash + 1)) };
}

/**
 * A message accepted from a SEND (or, in cluster mode, from Kafka). Immutable
 * once created; every delivery shares it.
 */
export interface Message {
  /** The `message-id` every delivery carries. */
  readonly id: string;
  /** The destination it was sent to. */
  readonly destination: string;
  /** Headers that travel with it: the sender's own, minus transport headers. */
  readonly headers: Header[];
  /** The body bytes. */
  readonly body: Uint8Array;
  /** Its place in the destination's order (topics and user destinations); set by the fan-out. */
  position?: Position;
  /** When it was accepted, ms since 1970 (cluster mode: the Kafka record's timestamp). */
  at?: number;
  /** Read back from Kafka's history at start-up: kept for resumes, not delivered live. */
  replayed?: boolean;
  /** Cache of {@link messageTail} by escape mode. */
  tails?: Partial<Record<EscapeMode, Buffer>>;
}

/** SEND headers that describe the SEND itself, not the message; never passed on. */
const TRANSPORT_HEADERS = new Set([
  'destination',
  'receipt',
  'transaction',
  'content-length',
  'message-id',
  'subscription',
  'ack',
  'redelivered',
  POSITION_HEADER,
  RESUME_HEADER,
]);

/** The headers of a SEND that a MESSAGE passes on (user headers, content-type). */
export function messageHeaders(headers: Header[]): Header[] {
  const out: Header[] = [];
  for (const header of headers) {
    if (!TRANSPORT_HEADERS.has(header[0])) out.push(header);
  }
  return out;
}

/**
 * The encoded end of every MESSAGE frame carrying `message`: message-id,
 * destination, user headers, content-length, blank line, body and NUL. Built once per
 * message and escape mode; only the per-delivery headers are encoded each time.
 */
export function messageTail(message: Message, mode: EscapeMode): Buffer {
  message.tails ??= {};
  const byMode = message.tails;
  const cached = byMode[mode];
  if (cached) return cached;
  const esc = (text: string, isValue = true) => escapeHeader(text, mode, isValue);
  let head = `message-id:${esc(message.id)}\ndestination:${esc(shownDestination(message.destination))}\n`;
  if (message.position) head += `${POSITION_HEADER}:${esc(positionToken(message.position))}\n`;
  for (const [name, value] of message.headers) head += `${esc(name, false)}:${esc(value)}\n`;
  head += `content-length:${message.body.length}\n\n`;
  const headLength = Buffer.byteLength(head);
  const tail = Buffer.allocUnsafe(headLength + message.body.length + 1);
  tail.write(head, 0, headLength, 'utf8');
  tail.set(message.body, headLength);
  tail[tail.length - 1] = 0;
  byMode[mode] = tail;
  return tail;
}
