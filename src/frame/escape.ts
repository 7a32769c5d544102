import { StompError } from '../errors.js';

/**
 * Which header escaping a session uses. STOMP 1.0 has none, 1.1 defines
 * `\n \c \\`, 1.2 adds `\r` ("Value Encoding").
 */
export type EscapeMode = '1.0' | '1.1' | '1.2';

/**
 * Whether `command` escapes its headers. STOMP 1.2 "Value Encoding": CONNECT
 * and CONNECTED frames do not escape, for compatibility with STOMP 1.0.
 */
export function commandEscapes(command: string, mode: EscapeMode): boolean {
  return mode !== '1.0' && command !== 'CONNECT' && command !== 'CONNECTED';
}

const NEEDS_ESCAPE_12 = /[\\\r\n:]/;
const NEEDS_ESCAPE_11 = /[\\\n:]/;

/**
 * A header name or value for a frame that is not escaped (STOMP 1.0, CONNECT,
 * CONNECTED). An LF, or a CR ending a value, cannot be represented there: it
 * would end the header (or the head) early and let a sender inject headers or
 * body text into what a 1.0 subscriber receives. Such characters become spaces.
 */
export function plainHeader(text: string, isValue = true): string {
  let out = text.includes('\n') ? text.replaceAll('\n', ' ') : text;
  if (isValue && out.endsWith('\r')) out = `${out.slice(0, -1)} `;
  return out;
}

/** Escapes a header name or value for the wire (nothing to do in most headers). */
export function escapeHeader(text: string, mode: EscapeMode, isValue = true): string {
  if (mode === '1.0') return plainHeader(text, isValue);
  if (mode === '1.2') {
    if (!NEEDS_ESCAPE_12.test(text)) return text;
  } else if (!NEEDS_ESCAPE_11.test(text)) {
    return text;
  }
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 92) out += '\\\\';
    else if (c === 10) out += '\\n';
    else if (c === 58) out += '\\c';
    else if (c === 13 && mode === '1.2') out += '\\r';
    else out += text[i];
  }
  return out;
}

/**
 * Decodes the escapes of a header name or value. Throws a coded
 * `STOMP_ERR_INVALID_ESCAPE` for an undefined escape: STOMP 1.2 "Value
 * Encoding" says undefined escape sequences must be treated as a fatal
 * protocol error. Called only when the text contains a backslash.
 */
export function unescapeHeader(text: string, mode: EscapeMode): string {
  let out = '';
  let start = 0;
  let i = text.indexOf('\\');
  while (i !== -1) {
    out += text.slice(start, i);
    const next = text.charCodeAt(i + 1);
    if (next === 110) out += '\n';
    else if (next === 99) out += ':';
    else if (next === 92) out += '\\';
    else if (next === 114 && mode === '1.2') out += '\r';
    else {
      throw new StompError('STOMP_ERR_INVALID_ESCAPE', {
        detail: JSON.stringify(text.slice(i, i + 2)),
      });
    }
    start = i + 2;
    i = text.indexOf('\\', start);
  }
  return out + text.slice(start);
}
