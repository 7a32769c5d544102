import { Buffer } from 'node:buffer';
import { commandEscapes, type EscapeMode, escapeHeader, plainHeader } from './escape.js';
import type { Frame } from './frame.js';

/**
 * Encodes a frame for the wire, sized once: the head is built as one string,
 * measured, and written with the body into a single buffer.
 *
 * The first `content-length` header is always written with the body's real
 * length, and one is added for every non-empty body (STOMP 1.2 "Header
 * content-length": frames SHOULD include it), so a body may contain NUL.
 * Headers are escaped per `escapes` except in CONNECT and CONNECTED.
 */
export function encodeFrame(frame: Frame, escapes: EscapeMode = '1.2'): Buffer {
  const { command, headers, body } = frame;
  const escaped = commandEscapes(command, escapes);
  let head = `${command}\n`;
  let sawLength = false;
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i] as [string, string];
    const name = header[0];
    let value = header[1];
    if (name === 'content-length' && !sawLength) {
      sawLength = true;
      value = String(body.length);
    }
    head += escaped
      ? `${escapeHeader(name, escapes, false)}:${escapeHeader(value, escapes)}\n`
      : `${plainHeader(name, false)}:${plainHeader(value)}\n`;
  }
  if (!sawLength && body.length > 0) head += `content-length:${body.length}\n`;
  head += '\n';
  const headLength = Buffer.byteLength(head, 'utf8');
  const out = Buffer.allocUnsafe(headLength + body.length + 1);
  out.write(head, 0, headLength, 'utf8');
  out.set(body, headLength);
  out[headLength + body.length] = 0;
  return out;
}

/** The bytes of one heart-beat: a single EOL (STOMP 1.2 "Heart-beating"). */
export const HEARTBEAT: Buffer = Buffer.from('\n');
