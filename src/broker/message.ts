import type { Header } from '../frame/frame.js';

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

/** A message as accepted from a SEND (or app code), before the bus places it in order. */
export interface Outgoing {
  /** The `message-id` every delivery carries. */
  readonly id: string;
  /** The routing name it was sent to (`/user/<name>/…` for user destinations). */
  readonly destination: string;
  /** Headers that travel with it: the sender's own, minus transport headers. */
  readonly headers: readonly Header[];
  /** The body bytes. */
  readonly body: Uint8Array;
}

/** A message as delivered: immutable; every delivery of it shares it. */
export interface Message extends Outgoing {
  /** Its place in the destination's order (topics and user destinations); set by the bus. */
  readonly position: Position | undefined;
  /** When it was accepted, ms since 1970 (cluster mode: the Kafka record's timestamp). */
  readonly at: number | undefined;
  /** Read back from the cluster's history at start-up: kept for resumes, not delivered live. */
  readonly replayed: boolean;
  /**
   * The message's STOMP 1.2 MESSAGE tail (from `message-id` through the NUL), when whoever
   * made the message had those bytes already (a cluster record whose header was written
   * in that form): the MESSAGE encoder sends it instead of encoding the message again. A
   * message made from another with some fields changed must leave it out (and read
   * `headers` and `body` by name: a message may compute them when asked).
   */
  readonly tail12?: Buffer;
}

/** A message with every field set, in one order: one object shape on the hot path. */
export function createMessage(
  outgoing: Outgoing,
  position?: Position,
  at?: number,
  replayed = false,
): Message {
  return newMessage(
    outgoing.id,
    outgoing.destination,
    outgoing.headers,
    outgoing.body,
    position,
    at,
    replayed,
  );
}

/** {@link createMessage} from its fields (a fetched record's, with no outgoing object between). */
export function newMessage(
  id: string,
  destination: string,
  headers: readonly Header[],
  body: Uint8Array,
  position: Position | undefined,
  at: number | undefined,
  replayed: boolean,
): Message {
  return { id, destination, headers, body, position, at, replayed };
}

/** SEND headers that describe the SEND itself, not the message; never passed on. */
export const TRANSPORT_HEADER_NAMES: readonly string[] = [
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
];
const TRANSPORT_HEADERS = new Set(TRANSPORT_HEADER_NAMES);

/** The headers of a SEND that a MESSAGE passes on (user headers, content-type). */
export function messageHeaders(headers: readonly Header[]): Header[] {
  const out: Header[] = [];
  for (const header of headers) {
    if (!TRANSPORT_HEADERS.has(header[0])) out.push(header);
  }
  return out;
}

/** Whether a header describes a SEND rather than its message ({@link messageHeaders} drops it). */
export function isTransportHeader(name: string): boolean {
  return TRANSPORT_HEADERS.has(name);
}
