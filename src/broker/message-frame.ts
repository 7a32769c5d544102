/**
 * The one MESSAGE encoder (STOMP 1.2 "MESSAGE"). A MESSAGE frame is three
 * pieces: the subscription's constant head (`MESSAGE`, `subscription`),
 * the per-delivery headers (`ack`, `redelivered`, `x-resume`), and the
 * message's tail (message-id, destination, position, user headers,
 * content-length, body, NUL), encoded once per message and escape mode and
 * shared by every delivery of one fan-out.
 */
import { type EscapeMode, escapeHeader } from '../frame/escape.js';
import { shownDestination } from './destination.js';
import { type Message, POSITION_HEADER, positionToken, RESUME_HEADER } from './message.js';

/** What every MESSAGE of one subscription starts with. */
export function subscriptionHead(subscriptionId: string, mode: EscapeMode): Buffer {
  return Buffer.from(`MESSAGE\nsubscription:${escapeHeader(subscriptionId, mode)}\n`);
}

/**
 * The headers of one delivery, or '' when it has none. `ackId` only shows in
 * 1.2: 1.0 and 1.1 clients ACK by message-id and subscription instead.
 */
export function deliveryHeaders(
  ackId: string | undefined,
  redelivered: boolean,
  resume: string | undefined,
  mode: EscapeMode,
): string {
  let out = ackId !== undefined && mode === '1.2' ? `ack:${ackId}\n` : '';
  if (redelivered) out += 'redelivered:true\n';
  if (resume !== undefined) out += `${RESUME_HEADER}:${resume}\n`;
  return out;
}

/**
 * A message on its way to subscribers, with its tail encoded at most once
 * per escape mode. Made per fan-out (or per queue delivery) and dropped
 * after it: kept messages hold no encoding.
 */
export class EncodedMessage {
  /** The STOMP 1.2 tail (nearly every client's), then the others by mode. */
  private tail12: Buffer | undefined;
  private others: Partial<Record<EscapeMode, Buffer>> | undefined;

  constructor(readonly message: Message) {}

  /** The encoded tail in `mode`. */
  tail(mode: EscapeMode): Buffer {
    if (mode === '1.2') {
      this.tail12 ??= this.message.tail12 ?? encodeTail(this.message, mode);
      return this.tail12;
    }
    this.others ??= {};
    const cached = this.others[mode];
    if (cached) return cached;
    const encoded = encodeTail(this.message, mode);
    this.others[mode] = encoded;
    return encoded;
  }
}

function encodeTail(message: Message, mode: EscapeMode): Buffer {
  const id = escapeHeader(message.id, mode);
  let head = `message-id:${id}\ndestination:${escapeHeader(shownDestination(message.destination), mode)}\n`;
  if (message.position) {
    head += `${POSITION_HEADER}:${escapeHeader(positionToken(message.position), mode)}\n`;
  }
  for (const [name, value] of message.headers) {
    head += `${escapeHeader(name, mode, false)}:${escapeHeader(value, mode)}\n`;
  }
  head += `content-length:${message.body.length}\n\n`;
  const headLength = Buffer.byteLength(head);
  const tail = Buffer.allocUnsafe(headLength + message.body.length + 1);
  tail.write(head, 0, headLength, 'utf8');
  tail.set(message.body, headLength);
  tail[tail.length - 1] = 0;
  return tail;
}
