/** A header as it appears on the wire: name and (decoded) value. */
export type Header = [name: string, value: string];

/**
 * One STOMP frame. Headers keep their wire order and repetitions; STOMP 1.2
 * "Repeated Header Entries" says only the first occurrence counts, which is
 * what {@link getHeader} returns.
 */
export interface Frame {
  /** The command, case sensitive (`SEND`, `MESSAGE`, ...). */
  command: string;
  /** Ordered header entries, repeated names kept. */
  headers: Header[];
  /** The body bytes (empty when the frame has no body). */
  body: Uint8Array;
}

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/** Commands a client may send (STOMP 1.2 "Client Frames"). */
export const CLIENT_COMMANDS = [
  'CONNECT',
  'STOMP',
  'SEND',
  'SUBSCRIBE',
  'UNSUBSCRIBE',
  'ACK',
  'NACK',
  'BEGIN',
  'COMMIT',
  'ABORT',
  'DISCONNECT',
] as const;

/** Commands a server may send (STOMP 1.2 "Server Frames"). */
export const SERVER_COMMANDS = ['CONNECTED', 'MESSAGE', 'RECEIPT', 'ERROR'] as const;

/** Returns the value of the first header called `name`, or `undefined`. */
export function getHeader(frame: Frame, name: string): string | undefined {
  const headers = frame.headers;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i] as Header;
    if (h[0] === name) return h[1];
  }
  return undefined;
}

/**
 * Builds a frame from a command, headers (an object or ordered entries) and a
 * body (a string is encoded as UTF-8).
 */
export function createFrame(
  command: string,
  headers: Record<string, string> | Header[] = [],
  body: string | Uint8Array = EMPTY,
): Frame {
  return {
    command,
    headers: Array.isArray(headers) ? headers : Object.entries(headers),
    body: typeof body === 'string' ? encoder.encode(body) : body,
  };
}

/** Decodes a frame's body as UTF-8 text. */
export function bodyText(frame: Frame): string {
  return Buffer.from(frame.body.buffer, frame.body.byteOffset, frame.body.byteLength).toString(
    'utf8',
  );
}
