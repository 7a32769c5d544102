import { StompError } from '../../src/errors.js';
import { type Frame, FrameParser, type FrameParserOptions } from '../../src/frame/index.js';

/** What a parser reported, in order: frames, `'heartbeat'` markers and errors. */
export type ParseEvent = Frame | 'heartbeat' | StompError;

/** Feeds `chunks` to a fresh parser and returns everything it reported. */
export function parseChunks(
  chunks: Uint8Array[],
  options: Partial<Omit<FrameParserOptions, 'onFrame' | 'onError' | 'onHeartbeat'>> = {},
): ParseEvent[] {
  const events: ParseEvent[] = [];
  const parser = new FrameParser({
    ...options,
    onFrame: (frame) => events.push(frame),
    onHeartbeat: () => events.push('heartbeat'),
    onError: (error) => events.push(error),
  });
  for (const chunk of chunks) parser.push(chunk);
  return events;
}

/** Splits bytes into chunks of `size` (1 means one byte at a time). */
export function chunked(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

/** A comparable view of events: bodies as byte arrays, errors as their codes. */
export function plain(events: ParseEvent[]): unknown[] {
  return events.map((e) => {
    if (e === 'heartbeat') return e;
    if (e instanceof StompError) return { error: e.code };
    return { command: e.command, headers: e.headers, body: Array.from(e.body) };
  });
}
