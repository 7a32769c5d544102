import { Buffer } from 'node:buffer';
import { StompError } from '../errors.js';
import { commandEscapes, type EscapeMode, unescapeHeader } from './escape.js';
import { CLIENT_COMMANDS, type Frame, type Header, SERVER_COMMANDS } from './frame.js';
import { DEFAULT_FRAME_LIMITS, type FrameLimits } from './limits.js';

/** Options of {@link FrameParser}: limits, escaping, accepted commands and callbacks. */
export interface FrameParserOptions extends Partial<FrameLimits> {
  /** All four limits in one object, kept (not copied): parsers of one server share it. */
  limits?: Readonly<FrameLimits>;
  /** Header escaping in force; the session changes it after CONNECT. Default `'1.2'`. */
  escapes?: EscapeMode;
  /** Commands accepted; anything else is `STOMP_ERR_INVALID_COMMAND`. Default: all 15. A Set is kept, not copied. */
  commands?: Iterable<string>;
  /** Called with every complete frame, in order. */
  onFrame: (frame: Frame) => void;
  /** Called for every EOL between frames (a heart-beat). */
  onHeartbeat?: () => void;
  /** Called at most once; after it the parser ignores all input. */
  onError: (error: StompError) => void;
}

const LF = 10;
const CR = 13;
const NUL = 0;

// Parser states, numbered as in ws's receiver.
const IDLE = 0; // between frames: EOLs are heart-beats
const HEAD = 1; // command and header lines, up to the blank line
const BODY_COUNTED = 2; // content-length bytes, then a NUL
const BODY_TO_NUL = 3; // bytes up to the first NUL
const FAILED = 4;

const EMPTY_BODY = Buffer.alloc(0);
const DEFAULT_COMMANDS = new Set<string>([...CLIENT_COMMANDS, ...SERVER_COMMANDS]);
const DIGITS = /^[0-9]{1,16}$/;
/** Counted bodies up to this size (plus NUL) are allocated once when they span chunks. */
const DIRECT_COPY_MAX = 64 * 1024 + 1;

/**
 * A streaming STOMP 1.2 frame parser: push bytes in any chunking, get frames,
 * heart-beats and at most one coded error. It never throws at the caller for
 * bad input, and the bytes it retains stay bounded by its limits.
 *
 * Chunks are referenced (not copied) until the frame they belong to is
 * complete, so a caller must not reuse a pushed buffer.
 */
export class FrameParser {
  private readonly limits: Readonly<FrameLimits>;
  private readonly commands: ReadonlySet<string>;
  private readonly onFrame: (frame: Frame) => void;
  private readonly onHeartbeat: (() => void) | undefined;
  private readonly onError: (error: StompError) => void;
  private escapes: EscapeMode;
  private state = IDLE;

  // HEAD: bytes of the head kept from earlier chunks, and line bookkeeping in
  // "head offsets" (0 = first byte of the head).
  private acc: Buffer = EMPTY_BODY;
  private accLen = 0;
  private lineStart = 0;
  private lineCount = 0;
  private lastWasCR = false;

  // BODY_*: the frame being read, and the body pieces seen so far.
  private command = '';
  private headers: Header[] = [];
  private headSize = 0;
  private need = 0;
  private parts: Buffer[] = [];
  private got = 0;
  private body: Buffer = EMPTY_BODY;

  constructor(options: FrameParserOptions) {
    this.limits = options.limits ?? {
      maxFrameSize: options.maxFrameSize ?? DEFAULT_FRAME_LIMITS.maxFrameSize,
      maxBodySize: options.maxBodySize ?? DEFAULT_FRAME_LIMITS.maxBodySize,
      maxHeaders: options.maxHeaders ?? DEFAULT_FRAME_LIMITS.maxHeaders,
      maxHeaderLineLength: options.maxHeaderLineLength ?? DEFAULT_FRAME_LIMITS.maxHeaderLineLength,
    };
    // A Set is used as given (sessions share one); other iterables are copied.
    const commands = options.commands;
    this.commands = !commands
      ? DEFAULT_COMMANDS
      : commands instanceof Set
        ? commands
        : new Set(commands);
    this.escapes = options.escapes ?? '1.2';
    this.onFrame = options.onFrame;
    this.onHeartbeat = options.onHeartbeat;
    this.onError = options.onError;
  }

  /** True once an error was reported; further input is ignored. */
  get failed(): boolean {
    return this.state === FAILED;
  }

  /** Bytes currently held for an incomplete frame (bounded by the limits). */
  get retainedBytes(): number {
    return this.state === HEAD ? this.accLen : this.got;
  }

  /** Switches header escaping, e.g. to `'1.0'` after a 1.0 CONNECT. */
  setEscapes(mode: EscapeMode): void {
    this.escapes = mode;
  }

  /** Feeds bytes. Frames, heart-beats and errors are reported synchronously. */
  push(data: Uint8Array): void {
    const chunk = Buffer.isBuffer(data)
      ? data
      : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const len = chunk.length;
    let pos = 0;
    while (pos < len) {
      switch (this.state) {
        case IDLE:
          if (chunk[pos] === LF) {
            pos++;
            this.onHeartbeat?.();
          } else {
            this.state = HEAD;
          }
          break;
        case HEAD:
          pos = this.readHead(chunk, pos);
          break;
        case BODY_COUNTED:
          pos = this.readCountedBody(chunk, pos);
          break;
        case BODY_TO_NUL:
          pos = this.readBodyToNul(chunk, pos);
          break;
        default:
          return;
      }
    }
  }

  /** Scans head lines from `pos`; returns where it stopped. */
  private readHead(chunk: Buffer, pos: number): number {
    const { maxHeaderLineLength, maxHeaders } = this.limits;
    const start = pos; // first byte of this chunk that belongs to the head
    const base = this.accLen; // head offset of chunk[start]
    const len = chunk.length;
    for (;;) {
      const lf = chunk.indexOf(LF, pos);
      if (lf === -1) {
        const headLen = base + (len - start);
        // A line may end in CR that belongs to the EOL, hence the +1.
        const over = this.headOver(headLen, headLen - this.lineStart > maxHeaderLineLength + 1);
        if (over !== -1) return over;
        this.lastWasCR = len > start && chunk[len - 1] === CR;
        this.append(chunk, start, len);
        return len;
      }
      const lineEnd = base + (lf - start); // head offset of the LF
      const cr = lf > start ? chunk[lf - 1] === CR : this.lastWasCR;
      const lineLength = lineEnd - this.lineStart - (cr && lineEnd > this.lineStart ? 1 : 0);
      const over = this.headOver(lineEnd + 1, lineLength > maxHeaderLineLength);
      if (over !== -1) return over;
      pos = lf + 1;
      this.lineStart = lineEnd + 1;
      if (lineLength === 0) {
        if (this.lineCount === 0) {
          // STOMP 1.2 "Heart-beating": an EOL (here CR LF) between frames.
          this.resetHead();
          this.state = IDLE;
          this.onHeartbeat?.();
          return pos;
        }
        return this.headDone(chunk, start, pos);
      }
      if (++this.lineCount === 1) {
        // Reject an unknown command at its EOL: garbage fails fast, and the
        // error does not depend on where the input is split.
        const command = this.commandLine(chunk, start, lf - (cr && lf > start ? 1 : 0), lineLength);
        if (!this.commands.has(command)) {
          return this.fail(
            new StompError('STOMP_ERR_INVALID_COMMAND', { detail: JSON.stringify(command) }),
          );
        }
      } else if (this.lineCount > maxHeaders + 1) {
        return this.fail('STOMP_ERR_TOO_MANY_HEADERS');
      }
    }
  }

  /**
   * Reports the head limit crossed first when `headLen` head bytes are seen;
   * -1 when none is. Comparing where each limit was crossed (not which check
   * runs first) keeps the code independent of how the input is chunked.
   */
  private headOver(headLen: number, lineTooLong: boolean): number {
    const frameTooLarge = headLen > this.limits.maxFrameSize;
    if (!frameTooLarge && !lineTooLong) return -1;
    // Both checks treat a line as too long once it holds maxHeaderLineLength + 2 bytes.
    const lineCross = this.lineStart + this.limits.maxHeaderLineLength + 2;
    if (frameTooLarge && (!lineTooLong || this.limits.maxFrameSize + 1 <= lineCross)) {
      return this.fail('STOMP_ERR_FRAME_TOO_LARGE');
    }
    return this.fail('STOMP_ERR_HEADER_LINE_TOO_LONG');
  }

  /** The command line's text, from the chunk or from the accumulator and the chunk. */
  private commandLine(chunk: Buffer, start: number, end: number, length: number): string {
    if (this.accLen === 0) return chunk.toString('latin1', start, end);
    const line = Buffer.concat([this.acc.subarray(0, this.accLen), chunk.subarray(start, end)]);
    return line.toString('latin1', 0, length);
  }

  /** Copies head bytes into the accumulator, doubling its capacity as needed. */
  private append(chunk: Buffer, from: number, to: number): void {
    const n = to - from;
    if (this.accLen + n > this.acc.length) {
      const next = Buffer.allocUnsafe(Math.max(256, (this.accLen + n) * 2));
      this.acc.copy(next, 0, 0, this.accLen);
      this.acc = next;
    }
    chunk.copy(this.acc, this.accLen, from, to);
    this.accLen += n;
  }

  private resetHead(): void {
    this.acc = EMPTY_BODY;
    this.accLen = 0;
    this.lineStart = 0;
    this.lineCount = 0;
    this.lastWasCR = false;
  }

  /** The blank line was found: parses the head and sets up the body read. */
  private headDone(chunk: Buffer, start: number, end: number): number {
    let buf = chunk;
    let from = start;
    let to = end;
    if (this.accLen > 0) {
      this.append(chunk, start, end);
      buf = this.acc;
      from = 0;
      to = this.accLen;
    }
    const headSize = to - from;
    let contentLength: number;
    try {
      contentLength = this.parseHead(buf, from, to);
    } catch (error) {
      return this.fail(error as StompError);
    }
    this.resetHead();
    this.headSize = headSize;
    this.parts = [];
    this.got = 0;
    if (contentLength >= 0) {
      if (contentLength > this.limits.maxBodySize) return this.fail('STOMP_ERR_BODY_TOO_LARGE');
      if (headSize + contentLength + 1 > this.limits.maxFrameSize) {
        return this.fail('STOMP_ERR_FRAME_TOO_LARGE');
      }
      this.need = contentLength + 1;
      this.state = BODY_COUNTED;
    } else {
      this.state = BODY_TO_NUL;
    }
    return end;
  }

  /**
   * Parses command and header lines of a complete head in `buf[from, end)`
   * into this.command / this.headers. Returns the content-length, or -1.
   * The head is decoded once: LF, CR, `:` and `\\` are ASCII, and UTF-8 never
   * uses such bytes inside a multi-byte character, so splitting the decoded
   * text finds the same lines, names and values as splitting the bytes.
   */
  private parseHead(buf: Buffer, from: number, end: number): number {
    const text = buf.toString('utf8', from, end);
    let lf = text.indexOf('\n');
    let lineEnd = lf > 0 && text.charCodeAt(lf - 1) === CR ? lf - 1 : lf;
    const command = text.slice(0, lineEnd);
    if (!this.commands.has(command)) {
      throw new StompError('STOMP_ERR_INVALID_COMMAND', { detail: JSON.stringify(command) });
    }
    const escapes = commandEscapes(command, this.escapes) && text.includes('\\');
    const headers: Header[] = [];
    let contentLength = -1;
    let sawLength = false;
    let p = lf + 1;
    const n = text.length;
    while (p < n) {
      lf = text.indexOf('\n', p);
      lineEnd = lf > p && text.charCodeAt(lf - 1) === CR ? lf - 1 : lf;
      if (lineEnd === p) break; // the blank line ending the head
      const colon = text.indexOf(':', p);
      // STOMP 1.2 "Augmented BNF": header-name is 1*<any OCTET except CR, LF or ":">.
      if (colon === -1 || colon >= lineEnd || colon === p) {
        throw new StompError('STOMP_ERR_MALFORMED_HEADER', {
          detail: JSON.stringify(text.slice(p, Math.min(lineEnd, p + 64))),
        });
      }
      let name = text.slice(p, colon);
      let value = text.slice(colon + 1, lineEnd);
      if (escapes) {
        if (name.includes('\\')) name = unescapeHeader(name, this.escapes);
        if (value.includes('\\')) value = unescapeHeader(value, this.escapes);
      }
      headers.push([name, value]);
      // STOMP 1.2 "Repeated Header Entries": only the first occurrence counts.
      if (!sawLength && name === 'content-length') {
        sawLength = true;
        if (!DIGITS.test(value)) {
          throw new StompError('STOMP_ERR_INVALID_CONTENT_LENGTH', {
            detail: JSON.stringify(value.slice(0, 32)),
          });
        }
        contentLength = Number(value);
      }
      p = lf + 1;
    }
    this.command = command;
    this.headers = headers;
    return contentLength;
  }

  /** Reads a body of known length plus its NUL. */
  private readCountedBody(chunk: Buffer, pos: number): number {
    const avail = chunk.length - pos;
    if (this.got === 0 && avail >= this.need) {
      const nulAt = pos + this.need - 1;
      if (chunk[nulAt] !== NUL) return this.fail('STOMP_ERR_MISSING_NUL');
      this.emit(copyOf(chunk, pos, nulAt));
      return nulAt + 1;
    }
    const take = Math.min(avail, this.need - this.got);
    if (this.need <= DIRECT_COPY_MAX) {
      // Small enough to allocate up front: copy each piece straight in.
      if (this.got === 0) this.body = Buffer.allocUnsafe(this.need);
      chunk.copy(this.body, this.got, pos, pos + take);
    } else {
      this.parts.push(chunk.subarray(pos, pos + take));
    }
    this.got += take;
    if (this.got < this.need) return pos + take;
    const whole = this.need <= DIRECT_COPY_MAX ? this.body : Buffer.concat(this.parts, this.need);
    this.body = EMPTY_BODY;
    if (whole[this.need - 1] !== NUL) return this.fail('STOMP_ERR_MISSING_NUL');
    this.emit(whole.subarray(0, this.need - 1));
    return pos + take;
  }

  /** Reads a body that ends at the first NUL (no content-length). */
  private readBodyToNul(chunk: Buffer, pos: number): number {
    const nul = chunk.indexOf(NUL, pos);
    const end = nul === -1 ? chunk.length : nul;
    this.got += end - pos;
    const bodyOver = this.got > this.limits.maxBodySize;
    const frameOver = this.headSize + this.got + 1 > this.limits.maxFrameSize;
    if (bodyOver || frameOver) {
      // Whichever limit the body crossed first, whatever the chunking.
      const frameFirst = this.limits.maxFrameSize - this.headSize <= this.limits.maxBodySize + 1;
      return this.fail(
        frameOver && (!bodyOver || frameFirst)
          ? 'STOMP_ERR_FRAME_TOO_LARGE'
          : 'STOMP_ERR_BODY_TOO_LARGE',
      );
    }
    if (nul === -1) {
      this.parts.push(chunk.subarray(pos, end));
      return end;
    }
    if (this.parts.length === 0) {
      this.emit(copyOf(chunk, pos, end));
    } else {
      this.parts.push(chunk.subarray(pos, end));
      this.emit(Buffer.concat(this.parts, this.got));
    }
    return nul + 1;
  }

  private emit(body: Buffer): void {
    const frame: Frame = { command: this.command, headers: this.headers, body };
    this.state = IDLE;
    this.parts = [];
    this.got = 0;
    this.headers = [];
    this.onFrame(frame);
  }

  /** Reports one error, drops everything held and ignores further input. */
  private fail(error: StompError | ConstructorParameters<typeof StompError>[0]): number {
    this.state = FAILED;
    this.resetHead();
    this.body = EMPTY_BODY;
    this.parts = [];
    this.got = 0;
    this.headers = [];
    this.onError(typeof error === 'string' ? new StompError(error) : error);
    return Number.MAX_SAFE_INTEGER;
  }
}

/** A private copy of `chunk[from, to)`, so a body never pins a large chunk. */
function copyOf(chunk: Buffer, from: number, to: number): Buffer {
  const n = to - from;
  if (n === 0) return EMPTY_BODY;
  const out = Buffer.allocUnsafe(n);
  if (n <= 64) {
    // A loop beats the native copy call for tiny bodies.
    for (let i = 0; i < n; i++) out[i] = chunk[from + i] as number;
  } else {
    chunk.copy(out, 0, from, to);
  }
  return out;
}
