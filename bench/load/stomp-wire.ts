/**
 * The few STOMP bytes the load clients write and read. Deliberately not the
 * project's parser: the clients must stay cheap so that the broker, not the
 * clients, is what the harness measures, and they must read whatever any of
 * the three targets sends (one frame per WebSocket message or many).
 *
 * Every message body starts with `<run> <seq> <sent-ms> ` (ASCII) and is
 * padded with `x` to the body size: the run id tells this run's messages from
 * leftovers (a RabbitMQ queue outlives a run), the sequence number finds lost
 * and duplicated deliveries, and the send time (ms, comparable across
 * processes, see `nowMs`) gives the latency.
 */

/** Length of a run id: 8 hex digits. */
export const RUN_ID_LENGTH = 8;

const NUL = 0;
const LF = 10;
const CR = 13;
const SPACE = 32;
const DOT = 46;
const BLANK_LINE = Buffer.from('\n\n');

/** CONNECT for STOMP 1.2, heart-beats off (an idle client must cost the broker nothing). */
export function connectFrame(login: string, passcode: string, vhost: string): Buffer {
  return Buffer.from(
    `CONNECT\naccept-version:1.2\nhost:${vhost}\nlogin:${login}\npasscode:${passcode}\nheart-beat:0,0\n\n\0`,
  );
}

/** SUBSCRIBE (auto ack) asking for a receipt, so the harness knows it is in place. */
export function subscribeFrame(destination: string, id: string, receipt: string): Buffer {
  return Buffer.from(
    `SUBSCRIBE\nid:${id}\ndestination:${destination}\nack:auto\nreceipt:${receipt}\n\n\0`,
  );
}

/** A SEND whose body is filled in per message by {@link stampSend}. */
export interface SendTemplate {
  bytes: Buffer;
  bodyOffset: number;
}

/** Builds the SEND template: headers, a body of `bodySize` bytes of `x`, NUL. */
export function sendTemplate(destination: string, bodySize: number): SendTemplate {
  const head = `SEND\ndestination:${destination}\ncontent-type:text/plain\ncontent-length:${bodySize}\n\n`;
  const bytes = Buffer.alloc(head.length + bodySize + 1, 'x');
  bytes.write(head, 0, 'latin1');
  bytes[bytes.length - 1] = NUL;
  return { bytes, bodyOffset: head.length };
}

/** A copy of the template carrying `run`, `seq` and `sentMs` at the start of its body. */
export function stampSend(t: SendTemplate, run: string, seq: number, sentMs: number): Buffer {
  const out = Buffer.allocUnsafe(t.bytes.length);
  t.bytes.copy(out);
  out.write(`${run} ${seq} ${sentMs.toFixed(3)} `, t.bodyOffset, 'latin1');
  return out;
}

/** What {@link readStamp} found in a MESSAGE body. */
export interface Stamp {
  /** True when the body carries the expected run id. */
  ours: boolean;
  seq: number;
  sentMs: number;
}

/**
 * Reads the stamp at the start of the body of the MESSAGE frame in
 * `buf[start, end)`, into `out` (reused, to keep the hot path free of garbage).
 */
export function readStamp(buf: Buffer, start: number, end: number, run: Buffer, out: Stamp): void {
  out.ours = false;
  const blank = buf.indexOf(BLANK_LINE, start);
  if (blank < 0 || blank >= end) return;
  let i = blank + 2;
  if (i + RUN_ID_LENGTH >= end || buf.compare(run, 0, RUN_ID_LENGTH, i, i + RUN_ID_LENGTH) !== 0)
    return;
  i += RUN_ID_LENGTH + 1;
  let seq = 0;
  for (let c = buf[i] as number; c !== SPACE && i < end; c = buf[++i] as number) {
    seq = seq * 10 + (c - 48);
  }
  let whole = 0;
  let frac = 0;
  let scale = 1;
  let inFraction = false;
  for (let c = buf[++i] as number; c !== SPACE && i < end; c = buf[++i] as number) {
    if (c === DOT) inFraction = true;
    else if (inFraction) {
      frac = frac * 10 + (c - 48);
      scale *= 10;
    } else whole = whole * 10 + (c - 48);
  }
  out.ours = true;
  out.seq = seq;
  out.sentMs = whole + frac / scale;
}

/** Frame kinds the clients care about, by first byte of the command. */
export const Kind = {
  MESSAGE: 77, // 'M'
  RECEIPT: 82, // 'R'
  CONNECTED: 67, // 'C'
  ERROR: 69, // 'E'
} as const;

/**
 * Splits WebSocket messages into frames. Our bodies never contain NUL, so a
 * frame ends at the first NUL; EOLs between frames are heart-beats. A frame
 * cut across messages (no target does that, but STOMP allows it) is kept.
 */
export class FrameScanner {
  private rest: Buffer | undefined;

  constructor(private readonly onFrame: (buf: Buffer, start: number, end: number) => void) {}

  push(data: Buffer): void {
    let buf = data;
    if (this.rest) {
      buf = Buffer.concat([this.rest, data]);
      this.rest = undefined;
    }
    const len = buf.length;
    let pos = 0;
    while (pos < len) {
      const c = buf[pos];
      if (c === LF || c === CR) {
        pos++;
        continue;
      }
      const end = buf.indexOf(NUL, pos);
      if (end < 0) {
        this.rest = buf.subarray(pos);
        return;
      }
      this.onFrame(buf, pos, end);
      pos = end + 1;
    }
  }
}

/** The value of header `name` in the frame `buf[start, end)`, for the rare frames that need it. */
export function headerOf(
  buf: Buffer,
  start: number,
  end: number,
  name: string,
): string | undefined {
  const text = buf.toString('utf8', start, end);
  const head = text.split('\n\n', 1)[0] ?? '';
  for (const line of head.split('\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon) === name) return line.slice(colon + 1).replace(/\r$/, '');
  }
  return undefined;
}
