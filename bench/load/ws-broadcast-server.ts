/**
 * The transport ceiling of the load benchmark: a bare `ws` server that speaks
 * just enough STOMP for the harness's clients (CONNECT, SUBSCRIBE with
 * receipt, SEND to topics) and does nothing per subscriber beyond the write.
 *
 * - One MESSAGE frame is encoded per SEND and the same bytes go to every
 *   subscriber of the destination; its `subscription` header is the constant
 *   `0` (the harness's clients use that id), which a real broker could not do.
 * - Writes are coalesced like stompbus's: the frames for one socket during one
 *   event-loop turn leave in one WebSocket message, flushed by one setImmediate.
 * - No acks, queues, limits, heart-beats, escaping or validation.
 *
 * Run: `npx tsx bench/load/ws-broadcast-server.ts [--port 0] [--host 127.0.0.1]`;
 * prints `ws-broadcast listening ws://host:port/` and stops on SIGTERM/SIGINT.
 */
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { type WebSocket, WebSocketServer } from 'ws';

const NUL = 0;
const LF = 10;

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});

const topics = new Map<string, Set<WebSocket>>();
const outbox = new Map<WebSocket, Buffer[]>();
let flushScheduled = false;
let messageSeq = 0;

function flush(): void {
  flushScheduled = false;
  for (const [ws, list] of outbox) {
    if (ws.readyState === ws.OPEN)
      ws.send(list.length === 1 ? (list[0] as Buffer) : Buffer.concat(list));
  }
  outbox.clear();
}

function write(ws: WebSocket, frame: Buffer): void {
  const list = outbox.get(ws);
  if (list) list.push(frame);
  else outbox.set(ws, [frame]);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

/** Header lines of a frame as name → value (first occurrence wins). */
function headers(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !out.has(line.slice(0, colon)))
      out.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return out;
}

function onSend(buf: Buffer, start: number, blank: number, end: number): void {
  const destination = headers(buf.toString('utf8', start, blank)).get('destination') ?? '';
  const subs = topics.get(destination);
  if (!subs) return;
  const body = buf.subarray(blank + 2, end);
  const head = Buffer.from(
    `MESSAGE\ndestination:${destination}\nmessage-id:${++messageSeq}\nsubscription:0\ncontent-length:${body.length}\n\n`,
  );
  const frame = Buffer.allocUnsafe(head.length + body.length + 1);
  head.copy(frame);
  body.copy(frame, head.length);
  frame[frame.length - 1] = NUL;
  for (const ws of subs) write(ws, frame);
}

function onFrame(ws: WebSocket, mine: Set<string>, buf: Buffer, start: number, end: number) {
  const blank = buf.indexOf('\n\n', start);
  const headEnd = blank < 0 || blank > end ? end : blank;
  const nl = buf.indexOf(LF, start);
  const command = buf.toString('latin1', start, nl < 0 || nl > headEnd ? headEnd : nl);
  if (command === 'SEND') return onSend(buf, start, headEnd, end);
  const h = headers(buf.toString('utf8', start, headEnd));
  if (command === 'CONNECT' || command === 'STOMP') {
    write(ws, Buffer.from('CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0'));
  } else if (command === 'SUBSCRIBE') {
    const destination = h.get('destination') ?? '';
    let subs = topics.get(destination);
    if (!subs) {
      subs = new Set();
      topics.set(destination, subs);
    }
    subs.add(ws);
    mine.add(destination);
  } else if (command === 'DISCONNECT') {
    ws.close();
  }
  const receipt = h.get('receipt');
  if (receipt !== undefined) write(ws, Buffer.from(`RECEIPT\nreceipt-id:${receipt}\n\n\0`));
}

const wss = new WebSocketServer({
  host: values.host,
  port: Number(values.port),
  perMessageDeflate: false,
  handleProtocols: (offered) => (offered.has('v12.stomp') ? 'v12.stomp' : false),
});

wss.on('connection', (ws, req) => {
  req.socket.setNoDelay(true);
  const mine = new Set<string>();
  ws.on('message', (data: Buffer) => {
    // Frames end at NUL (the harness's bodies never contain one); EOLs are heart-beats.
    let pos = 0;
    while (pos < data.length) {
      if (data[pos] === LF || data[pos] === 13) {
        pos++;
        continue;
      }
      const end = data.indexOf(NUL, pos);
      if (end < 0) break;
      onFrame(ws, mine, data, pos, end);
      pos = end + 1;
    }
  });
  ws.on('error', () => ws.terminate());
  ws.on('close', () => {
    for (const destination of mine) {
      const subs = topics.get(destination);
      subs?.delete(ws);
      if (subs?.size === 0) topics.delete(destination);
    }
    outbox.delete(ws);
  });
});

wss.on('listening', () => {
  const { port } = wss.address() as AddressInfo;
  console.log(`ws-broadcast listening ws://${values.host}:${port}/`);
});

const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
