#!/usr/bin/env node

// Probe how a STOMP broker (written against RabbitMQ's STOMP / Web-STOMP
// plugins) answers scripted conversations made of raw frames, over TCP and
// over a raw WebSocket, and print a Markdown transcript of every frame sent
// and received (command, header lines as on the wire, body), heart-beats and
// connection closes.
//
//   node scripts/probe-rabbitmq.mjs                 # all scenarios, tcp + ws
//   node scripts/probe-rabbitmq.mjs --only a,d,o    # some scenarios
//   node scripts/probe-rabbitmq.mjs --transport ws  # one transport
//   node scripts/probe-rabbitmq.mjs --out /tmp/probe.md
//
// Environment: PROBE_HOST (127.0.0.1), PROBE_TCP_PORT (61613),
// PROBE_WS_URL (ws://PROBE_HOST:15674/ws), PROBE_LOGIN / PROBE_PASSCODE
// (guest / guest), PROBE_VHOST (/).
//
// Only loopback addresses are accepted. Uses only `ws` and node:net.
// RabbitMQ set-up: scripts/rabbitmq-stomp.sh.

import { isUtf8 } from 'node:buffer';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { WebSocket } from 'ws';

const HOST = process.env.PROBE_HOST ?? '127.0.0.1';
const TCP_PORT = Number(process.env.PROBE_TCP_PORT ?? 61613);
const WS_URL = process.env.PROBE_WS_URL ?? `ws://${HOST}:15674/ws`;
const LOGIN = process.env.PROBE_LOGIN ?? 'guest';
const PASSCODE = process.env.PROBE_PASSCODE ?? 'guest';
const VHOST = process.env.PROBE_VHOST ?? '/';
const WS_PROTOCOL = 'v12.stomp';

function isLoopback(host) {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
if (!isLoopback(HOST) || !isLoopback(new URL(WS_URL).hostname.replace(/^\[|\]$/g, ''))) {
  console.error('probe-rabbitmq: refusing a non-loopback target');
  process.exit(2);
}

// ---------------------------------------------------------------- frames out

/** Raw frame bytes: headers are written verbatim (no escaping applied). */
function frame(command, headers = [], body = '', { nul = true } = {}) {
  const head = [command, ...headers.map(([k, v]) => `${k}:${v}`)].join('\n');
  const parts = [Buffer.from(`${head}\n\n`), Buffer.isBuffer(body) ? body : Buffer.from(body)];
  if (nul) parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

const connectHeaders = (extra = []) => [
  ['accept-version', '1.2'],
  ['host', VHOST],
  ['login', LOGIN],
  ['passcode', PASSCODE],
  ...extra,
];

// ----------------------------------------------------------------- frames in

/** Lenient streaming parser of server output; keeps header lines raw. */
class StreamParser {
  constructor(emit) {
    this.emit = emit;
    this.buf = Buffer.alloc(0);
  }

  push(chunk, meta = {}) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      const b = this.buf;
      if (b.length === 0) return;
      if (b[0] === 0x0a) {
        this.emit({ kind: 'heartbeat', bytes: '\\n', ...meta });
        this.buf = b.subarray(1);
        continue;
      }
      if (b[0] === 0x0d) {
        if (b.length < 2) return;
        if (b[1] === 0x0a) {
          this.emit({ kind: 'heartbeat', bytes: '\\r\\n', ...meta });
          this.buf = b.subarray(2);
          continue;
        }
      }
      const lines = [];
      let pos = 0;
      let headDone = false;
      for (;;) {
        const nl = b.indexOf(0x0a, pos);
        if (nl < 0) break;
        let end = nl;
        if (end > pos && b[end - 1] === 0x0d) end--;
        const line = b.subarray(pos, end).toString('utf8');
        pos = nl + 1;
        if (line === '' && lines.length > 0) {
          headDone = true;
          break;
        }
        lines.push(line);
      }
      if (!headDone) return;
      const [command, ...headers] = lines;
      const cl = headers.find((h) => h.startsWith('content-length:'));
      let body;
      let terminator;
      let next;
      if (cl !== undefined && /^\d+$/.test(cl.slice(15))) {
        const len = Number(cl.slice(15));
        if (b.length < pos + len + 1) return;
        body = b.subarray(pos, pos + len);
        terminator = b[pos + len];
        next = pos + len + 1;
      } else {
        const nul = b.indexOf(0, pos);
        if (nul < 0) return;
        body = b.subarray(pos, nul);
        terminator = 0;
        next = nul + 1;
      }
      // An EOL right after the NUL (in the same chunk) is shown with the frame.
      let trailing = '';
      if (b[next] === 0x0a) trailing = '\\n';
      else if (b[next] === 0x0d && b[next + 1] === 0x0a) trailing = '\\r\\n';
      next += trailing.length / 2;
      this.emit({
        kind: 'frame',
        command,
        headers,
        body: Buffer.from(body),
        terminator,
        trailing,
        ...meta,
      });
      this.buf = b.subarray(next);
    }
  }
}

// ----------------------------------------------------------------- transport

class Conn {
  constructor(name, transport) {
    this.name = name;
    this.transport = transport;
    this.events = [];
    this.cursor = 0;
    this.closed = false;
    this.wake = null;
    this.t0 = Date.now();
    this.parser = new StreamParser((ev) => this.record(ev));
  }

  record(ev) {
    ev.t = Date.now() - this.t0;
    this.events.push(ev);
    if (ev.kind === 'close') this.closed = true;
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  async waitEvent(timeoutMs) {
    if (this.closed) return false;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve(false);
      }, timeoutMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  /** Next received frame after the cursor (optionally with this command), or null. */
  async next(timeoutMs = 2000, command = undefined) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.events.length) {
        const ev = this.events[this.cursor++];
        if (ev.kind === 'frame' && (command === undefined || ev.command === command)) return ev;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) return null;
      await this.waitEvent(left);
    }
  }

  /** Collect received frames for a while (or until closed). */
  async gather(ms) {
    const out = [];
    const deadline = Date.now() + ms;
    for (;;) {
      const f = await this.next(Math.max(0, deadline - Date.now()));
      if (!f) return out;
      out.push(f);
    }
  }

  async waitClose(timeoutMs = 2000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.waitEvent(left);
    }
    return true;
  }

  send(data, note) {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
    this.record({ kind: 'sent', data: buf, note, closedAlready: this.closed });
    if (!this.closed) this.write(buf);
  }

  close() {
    return Promise.resolve(this.closed);
  }

  /** Log a verdict line into this connection's transcript. */
  note(text) {
    this.record({ kind: 'note', text });
  }
}

class TcpConn extends Conn {
  static open(name) {
    const c = new TcpConn(name, 'tcp');
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: HOST, port: TCP_PORT });
      c.sock = s;
      s.once('connect', () => resolve(c));
      s.once('error', (err) => {
        c.record({ kind: 'error', text: err.message });
        reject(err);
      });
      s.on('data', (d) => c.parser.push(d));
      s.on('end', () => c.record({ kind: 'eof', text: 'server sent FIN' }));
      s.on('close', () => {
        const rest = c.parser.buf.length ? ` (unparsed bytes left: ${show(c.parser.buf)})` : '';
        c.record({ kind: 'close', text: `TCP connection closed${rest}` });
      });
    });
  }

  write(buf) {
    this.sock.write(buf);
  }

  close() {
    if (!this.closed) {
      this.record({ kind: 'note', text: 'client closes the socket' });
      this.sock.end();
    }
    return this.waitClose(1000);
  }
}

class WsConn extends Conn {
  static open(name, { protocols = [WS_PROTOCOL] } = {}) {
    const c = new WsConn(name, 'ws');
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(WS_URL, protocols, { skipUTF8Validation: true });
      c.ws = ws;
      ws.on('open', () => {
        c.record({ kind: 'note', text: `WebSocket open, sub-protocol "${ws.protocol}"` });
        resolve(c);
      });
      ws.on('unexpected-response', (_req, res) => {
        c.record({ kind: 'error', text: `HTTP ${res.statusCode} on upgrade` });
        c.record({ kind: 'close', text: 'no WebSocket' });
        reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { conn: c }));
      });
      ws.on('error', (err) => {
        c.record({ kind: 'error', text: err.message });
        reject(Object.assign(err, { conn: c }));
      });
      ws.on('message', (data, isBinary) => {
        const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data);
        let type = isBinary ? 'binary' : 'text';
        if (!isBinary && !isUtf8(buf)) type = 'text (INVALID UTF-8)';
        c.parser.push(buf, { ws: type });
      });
      ws.on('close', (code, reason) => {
        const rest = c.parser.buf.length ? ` (unparsed bytes left: ${show(c.parser.buf)})` : '';
        c.record({
          kind: 'close',
          text: `WebSocket closed, code ${code}, reason ${JSON.stringify(reason.toString())}${rest}`,
        });
      });
    });
  }

  write(buf) {
    // Text message when the bytes are UTF-8 (as browsers send), else binary.
    this.ws.send(buf, { binary: !isUtf8(buf) });
  }

  close() {
    if (!this.closed) {
      this.record({ kind: 'note', text: 'client closes the WebSocket (1000)' });
      this.ws.close(1000);
    }
    return this.waitClose(1000);
  }
}

// ------------------------------------------------------------------ rendering

function show(buf) {
  if (isUtf8(buf)) return JSON.stringify(buf.toString('utf8'));
  return `hex ${buf.toString('hex').replace(/(..)/g, '$1 ').trim()}`;
}

const printable = (line) => (/[\x00-\x1f\x7f]/.test(line) ? JSON.stringify(line) : line);

function renderSent(buf) {
  const nl = buf.indexOf('\n\n');
  if (nl < 0 || !isUtf8(buf.subarray(0, nl))) return [`  ${show(buf)}`];
  const head = buf.subarray(0, nl).toString('utf8').split('\n');
  const rest = buf.subarray(nl + 2);
  return [
    ...head.map((l, i) => (i === 0 ? `  ${printable(l)}` : `    ${printable(l)}`)),
    `    body ${show(rest)}`,
  ];
}

function render(conn) {
  const out = [`${conn.name} (${conn.transport})`];
  let beats = [];
  let sentBeats = [];
  const flushBeats = () => {
    if (beats.length > 0) {
      const ts = beats.map((b) => b.t).join(', ');
      out.push(`  <<  heart-beat EOL ${beats[0].bytes} received x${beats.length} at ms [${ts}]`);
    }
    if (sentBeats.length > 0) {
      const ts = sentBeats.map((b) => b.t).join(', ');
      out.push(`  >>  heart-beat EOL \\n sent x${sentBeats.length} at ms [${ts}]`);
    }
    beats = [];
    sentBeats = [];
  };
  for (const ev of conn.events) {
    if (ev.kind === 'heartbeat') {
      beats.push(ev);
      continue;
    }
    if (ev.kind === 'sent' && ev.note === 'heart-beat') {
      sentBeats.push(ev);
      continue;
    }
    flushBeats();
    const t = `[${String(ev.t).padStart(5)} ms]`;
    switch (ev.kind) {
      case 'sent': {
        const lines = renderSent(ev.data);
        out.push(
          `${t} >> ${ev.note ? `(${ev.note}) ` : ''}${ev.closedAlready ? '(not sent: closed) ' : ''}${lines[0].trim()}`,
        );
        out.push(...lines.slice(1).map((l) => `             ${l}`));
        break;
      }
      case 'frame':
        out.push(`${t} << ${printable(ev.command)}${ev.ws ? `   [ws ${ev.ws} message]` : ''}`);
        for (const h of ev.headers) out.push(`               ${printable(h)}`);
        out.push(
          `               body (${ev.body.length} bytes) ${show(ev.body)}${ev.trailing ? `, NUL, then EOL ${ev.trailing}` : ''}`,
        );
        if (ev.terminator !== 0)
          out.push(`               !! byte after body is ${ev.terminator}, not NUL`);
        break;
      default:
        out.push(`${t} -- ${ev.kind}: ${ev.text}`);
    }
  }
  flushBeats();
  return out.join('\n');
}

// ------------------------------------------------------------------ scenarios

/** A run of one scenario on one transport: opens connections, keeps them for the report. */
class Ctx {
  constructor(transport) {
    this.transport = transport;
    this.conns = [];
  }

  async open(name, opts) {
    const c = this.transport === 'tcp' ? await TcpConn.open(name) : await WsConn.open(name, opts);
    this.conns.push(c);
    return c;
  }

  /** Open and CONNECT; returns the connection (CONNECTED expected). */
  async login(name, extra = []) {
    const c = await this.open(name);
    c.send(frame('CONNECT', connectHeaders(extra)));
    const f = await c.next(3000);
    if (f?.command !== 'CONNECTED')
      c.note(`!! expected CONNECTED, got ${f ? f.command : 'nothing'}`);
    return c;
  }

  async closeAll() {
    await Promise.all(this.conns.map((c) => c.close()));
  }
}

/** Report whether the connection got closed by the server within ms. */
async function closedWithin(c, ms) {
  const closed = await c.waitClose(ms);
  c.note(closed ? 'connection closed by server' : `connection still open after ${ms} ms`);
  return closed;
}

/** After an ERROR that left the connection open: is the session usable, can it CONNECT again? */
async function afterError(c) {
  c.send(
    frame('SUBSCRIBE', [
      ['id', '0'],
      ['destination', '/topic/z'],
      ['receipt', 'r-after'],
    ]),
  );
  await c.gather(500);
  if (c.closed) return;
  c.send(frame('CONNECT', connectHeaders()));
  await c.gather(500);
  await closedWithin(c, 200);
}

/** Subscribe with a receipt and wait for it. */
async function subscribe(c, id, destination, extra = []) {
  c.send(
    frame('SUBSCRIBE', [
      ['id', id],
      ['destination', destination],
      ...extra,
      ['receipt', `sub-${id}`],
    ]),
  );
  return c.next(2000, 'RECEIPT');
}

/** Remove leftovers of earlier runs from a queue. */
async function drain(ctx, destination) {
  const d = await ctx.login(`drain ${destination}`);
  await subscribe(d, 'drain', destination);
  const left = await d.gather(400);
  d.note(`drained ${left.length} leftover message(s)`);
  d.send(frame('DISCONNECT', [['receipt', 'bye']]));
  await d.next(1000, 'RECEIPT');
  await d.close();
}

const scenarios = {
  async a(ctx) {
    // CONNECT with accept-version 1.2, host /, guest/guest.
    const c = await ctx.open('A: CONNECT 1.2');
    c.send(frame('CONNECT', connectHeaders()));
    await c.next(2000);
    await closedWithin(c, 300);
    // Variants worth knowing.
    const variants = [
      ['A2: STOMP command', 'STOMP', connectHeaders()],
      ['A3: no host header', 'CONNECT', connectHeaders().filter(([k]) => k !== 'host')],
      [
        'A4: no login/passcode',
        'CONNECT',
        connectHeaders().filter(([k]) => k !== 'login' && k !== 'passcode'),
      ],
      [
        'A5: unknown vhost',
        'CONNECT',
        connectHeaders().map(([k, v]) => [k, k === 'host' ? 'nosuch' : v]),
      ],
      [
        'A6: accept-version 1.0,1.1,1.2',
        'CONNECT',
        connectHeaders().map(([k, v]) => [k, k === 'accept-version' ? '1.0,1.1,1.2' : v]),
      ],
      [
        'A7: no accept-version (1.0)',
        'CONNECT',
        connectHeaders().filter(([k]) => k !== 'accept-version'),
      ],
    ];
    for (const [name, cmd, headers] of variants) {
      const v = await ctx.open(name);
      v.send(frame(cmd, headers));
      const f = await v.next(2000);
      if (!(await closedWithin(v, 300)) && f?.command === 'ERROR') await afterError(v);
    }
  },

  async b(ctx) {
    const c = await ctx.open('B: wrong passcode');
    c.send(
      frame(
        'CONNECT',
        connectHeaders().map(([k, v]) => [k, k === 'passcode' ? 'wrong' : v]),
      ),
    );
    await c.next(3000);
    if (!(await closedWithin(c, 3000))) await afterError(c);
    // How long does a connection live without a successful CONNECT?
    const d = await ctx.open('B2: wrong passcode, then silence');
    const e = await ctx.open('B3: no frame at all');
    d.send(
      frame(
        'CONNECT',
        connectHeaders().map(([k, v]) => [k, k === 'passcode' ? 'wrong' : v]),
      ),
    );
    await Promise.all([closedWithin(d, 15000), closedWithin(e, 15000)]);
  },

  async c(ctx) {
    const c = await ctx.open('C: accept-version 1.3 only');
    c.send(
      frame(
        'CONNECT',
        connectHeaders().map(([k, v]) => [k, k === 'accept-version' ? '1.3' : v]),
      ),
    );
    const f = await c.next(3000);
    if (f?.command === 'CONNECTED') {
      // See whether the session is usable.
      c.send(
        frame('SUBSCRIBE', [
          ['id', '0'],
          ['destination', '/topic/c'],
          ['receipt', 'r-c'],
        ]),
      );
      await c.next(1000);
    }
    if (!(await closedWithin(c, 2000)) && f?.command === 'ERROR') await afterError(c);
  },

  async d(ctx) {
    const a = await ctx.login('D: subscriber+sender');
    const b = await ctx.login('D: second subscriber');
    await subscribe(a, 'sub-0', '/topic/a');
    await subscribe(b, 'sub-b', '/topic/a', [['ack', 'auto']]);
    a.send(
      frame(
        'SEND',
        [
          ['destination', '/topic/a'],
          ['content-type', 'text/plain;charset=utf-8'],
          ['x-custom', 'hello'],
          ['x-esc', 'a\\cb\\\\c\\nd'],
          ['x-dup', 'first'],
          ['x-dup', 'second'],
          ['x-utf8', 'h\u00e9llo \u2713'],
          ['persistent', 'true'],
          ['receipt', 'r-send-1'],
        ],
        'hello topic',
      ),
    );
    await a.gather(700);
    await b.gather(100);
    a.send(
      frame(
        'SEND',
        [
          ['destination', '/topic/a'],
          ['content-length', '5'],
          ['content-type', 'application/json'],
        ],
        '{"a":',
      ),
      'content-length, no receipt',
    );
    a.send(frame('SEND', [['destination', '/topic/a']], ''), 'empty body, no content-type');
    await a.gather(700);
    await b.gather(100);
    await ctx.closeAll();
  },

  async e(ctx) {
    await drain(ctx, '/queue/x');
    // e1: two auto-ack consumers on one queue.
    const c1 = await ctx.login('E1: consumer 1');
    const c2 = await ctx.login('E1: consumer 2');
    const p = await ctx.login('E: producer');
    await subscribe(c1, 'q1', '/queue/x');
    await subscribe(c2, 'q2', '/queue/x');
    for (let i = 1; i <= 6; i++) {
      p.send(
        frame(
          'SEND',
          [
            ['destination', '/queue/x'],
            ['receipt', `p${i}`],
          ],
          `m${i}`,
        ),
      );
      await p.next(1000, 'RECEIPT');
    }
    const got1 = await c1.gather(500);
    const got2 = await c2.gather(100);
    c1.note(`E1 consumer 1 got [${got1.map((f) => f.body.toString()).join(', ')}]`);
    c2.note(`E1 consumer 2 got [${got2.map((f) => f.body.toString()).join(', ')}]`);
    await c1.close();
    await c2.close();

    // e2: client-individual, NACK (default), NACK requeue:false, ACK.
    const q = await ctx.login('E2: client-individual consumer');
    await subscribe(q, 'ci', '/queue/x', [['ack', 'client-individual']]);
    p.send(
      frame(
        'SEND',
        [
          ['destination', '/queue/x'],
          ['receipt', 'pn1'],
        ],
        'n1',
      ),
    );
    let m = await q.next(2000, 'MESSAGE');
    const ackOf = (f) => f?.headers.find((h) => h.startsWith('ack:'))?.slice(4) ?? 'none';
    q.send(
      frame('NACK', [
        ['id', ackOf(m)],
        ['receipt', 'r-nack'],
      ]),
      'plain NACK',
    );
    m = await q.next(2000, 'MESSAGE');
    if (m) {
      q.note('redelivered after NACK (see headers above)');
      q.send(
        frame('NACK', [
          ['id', ackOf(m)],
          ['requeue', 'false'],
          ['receipt', 'r-nack-noreq'],
        ]),
        'NACK requeue:false',
      );
      const again = await q.gather(800);
      q.note(
        `after NACK requeue:false: ${again.filter((f) => f.command === 'MESSAGE').length} MESSAGE(s)`,
      );
    }
    p.send(
      frame(
        'SEND',
        [
          ['destination', '/queue/x'],
          ['receipt', 'pn2'],
        ],
        'n2',
      ),
    );
    m = await q.next(2000, 'MESSAGE');
    q.send(
      frame('ACK', [
        ['id', ackOf(m)],
        ['receipt', 'r-ack'],
      ]),
      'ACK',
    );
    await q.gather(500);
    q.send(
      frame('ACK', [
        ['id', ackOf(m)],
        ['receipt', 'r-ack-twice'],
      ]),
      'ACK same id again',
    );
    await q.gather(800);
    await closedWithin(q, 200);
    await q.close();

    const u = await ctx.login('E3: ACK unknown id');
    u.send(
      frame('ACK', [
        ['id', 'no-such-ack'],
        ['receipt', 'r-ack-unknown'],
      ]),
    );
    await u.gather(800);
    await closedWithin(u, 200);
    await u.close();

    // e4: prefetch-count 1 with ack:client.
    const r = await ctx.login('E4: prefetch-count 1, ack client');
    await subscribe(r, 'pf', '/queue/x', [
      ['ack', 'client'],
      ['prefetch-count', '1'],
    ]);
    for (const b of ['f1', 'f2', 'f3']) {
      p.send(
        frame(
          'SEND',
          [
            ['destination', '/queue/x'],
            ['receipt', `p-${b}`],
          ],
          b,
        ),
      );
      await p.next(1000, 'RECEIPT');
    }
    let batch = await r.gather(600);
    r.note(`before any ACK: ${batch.length} MESSAGE(s) outstanding`);
    for (let i = 0; i < 3 && batch.length; i++) {
      r.send(frame('ACK', [['id', ackOf(batch[batch.length - 1])]]), 'ACK last');
      batch = await r.gather(600);
      r.note(`after ACK: ${batch.length} more MESSAGE(s)`);
    }
    await r.close();

    // e5: unacked message of a closed connection is redelivered.
    const s1 = await ctx.login('E5: client-ack consumer that disconnects');
    await subscribe(s1, 'x1', '/queue/x', [['ack', 'client']]);
    p.send(
      frame(
        'SEND',
        [
          ['destination', '/queue/x'],
          ['receipt', 'p-u1'],
        ],
        'u1',
      ),
    );
    await s1.next(2000, 'MESSAGE');
    await s1.close();
    const s2 = await ctx.login('E5: next consumer');
    await subscribe(s2, 'x2', '/queue/x');
    await s2.gather(800);
    await ctx.closeAll();
  },

  async f(ctx) {
    const c = await ctx.login('F: SEND without destination');
    c.send(
      frame(
        'SEND',
        [
          ['receipt', 'r-f'],
          ['content-type', 'text/plain'],
        ],
        'no destination',
      ),
    );
    await c.next(2000);
    await closedWithin(c, 2000);
    const d = await ctx.login('F2: SEND to a bad destination');
    d.send(
      frame(
        'SEND',
        [
          ['destination', '/nosuchkind/x'],
          ['receipt', 'r-f2'],
        ],
        'x',
      ),
    );
    await d.next(2000);
    await closedWithin(d, 2000);
    const e = await ctx.login('F3: SUBSCRIBE to a missing exchange');
    e.send(
      frame('SUBSCRIBE', [
        ['id', '0'],
        ['destination', '/exchange/nosuch'],
        ['receipt', 'r-f3'],
      ]),
    );
    await e.gather(1000);
    await closedWithin(e, 1000);
  },

  async g(ctx) {
    for (const [name, f] of [
      [
        'G1: SEND before CONNECT',
        frame(
          'SEND',
          [
            ['destination', '/topic/a'],
            ['receipt', 'r-g1'],
          ],
          'x',
        ),
      ],
      [
        'G2: SUBSCRIBE before CONNECT',
        frame('SUBSCRIBE', [
          ['id', '0'],
          ['destination', '/topic/a'],
          ['receipt', 'r-g2'],
        ]),
      ],
      ['G3: DISCONNECT before CONNECT', frame('DISCONNECT', [['receipt', 'r-g3']])],
    ]) {
      const c = await ctx.open(name);
      c.send(f);
      await c.next(2000);
      await closedWithin(c, 2000);
    }
  },

  async h(ctx) {
    const garbage = Buffer.concat([
      Buffer.from([0xff, 0xfe, 0x01]),
      Buffer.from('garbage\n\n'),
      Buffer.from([0]),
    ]);
    const c = await ctx.open('H1: garbage before CONNECT');
    c.send(garbage);
    await c.next(2000);
    await closedWithin(c, 2000);
    const d = await ctx.login('H2: garbage after CONNECT');
    d.send(garbage);
    await d.next(2000);
    await closedWithin(d, 2000);
    const e = await ctx.login('H3: unknown command FOO after CONNECT');
    e.send(frame('FOO', [['receipt', 'r-h3']]));
    await e.next(2000);
    await closedWithin(e, 2000);
    const f = await ctx.login('H4: lower-case "send"');
    f.send(
      frame(
        'send',
        [
          ['destination', '/topic/a'],
          ['receipt', 'r-h4'],
        ],
        'x',
      ),
    );
    await f.next(2000);
    await closedWithin(f, 2000);
  },

  async i(ctx) {
    const c = await ctx.login('I1: SEND with header x-bad:a\\tb');
    await subscribe(c, 'i', '/topic/i');
    c.send(
      frame(
        'SEND',
        [
          ['destination', '/topic/i'],
          ['x-bad', 'a\\tb'],
          ['receipt', 'r-i1'],
        ],
        'tab',
      ),
    );
    await c.gather(800);
    await closedWithin(c, 1000);
    const d = await ctx.login('I2: SEND with header ending in a lone backslash');
    d.send(
      frame(
        'SEND',
        [
          ['destination', '/topic/i'],
          ['x-bad', 'a\\'],
          ['receipt', 'r-i2'],
        ],
        'x',
      ),
    );
    await d.gather(800);
    await closedWithin(d, 1000);
    const e = await ctx.open('I3: CONNECT with header x-foo:a\\tb');
    e.send(frame('CONNECT', connectHeaders([['x-foo', 'a\\tb']])));
    await e.next(2000);
    await closedWithin(e, 500);
  },

  async j(ctx) {
    const c = await ctx.login('J1: UNSUBSCRIBE unknown id');
    c.send(
      frame('UNSUBSCRIBE', [
        ['id', 'no-such-sub'],
        ['receipt', 'r-j1'],
      ]),
    );
    await c.gather(800);
    await closedWithin(c, 1000);
    const d = await ctx.login('J2: UNSUBSCRIBE without id');
    d.send(frame('UNSUBSCRIBE', [['receipt', 'r-j2']]));
    await d.gather(800);
    await closedWithin(d, 1000);
    const e = await ctx.login('J3: SUBSCRIBE twice with the same id');
    await subscribe(e, 'dup', '/topic/j');
    e.send(
      frame('SUBSCRIBE', [
        ['id', 'dup'],
        ['destination', '/topic/j2'],
        ['receipt', 'r-j3'],
      ]),
    );
    await e.gather(800);
    await closedWithin(e, 1000);
  },

  async k(ctx) {
    await drain(ctx, '/queue/tx');
    const s = await ctx.login('K: consumer of /queue/tx');
    await subscribe(s, 'tx', '/queue/tx');
    const t = await ctx.login('K: transactional producer');
    t.send(
      frame('BEGIN', [
        ['transaction', 'tx1'],
        ['receipt', 'r-begin1'],
      ]),
    );
    await t.next(1000);
    t.send(
      frame(
        'SEND',
        [
          ['destination', '/queue/tx'],
          ['transaction', 'tx1'],
          ['receipt', 'r-send-tx1'],
        ],
        't1',
      ),
    );
    await t.gather(500);
    s.note(`before COMMIT: ${(await s.gather(300)).length} MESSAGE(s)`);
    t.send(
      frame('COMMIT', [
        ['transaction', 'tx1'],
        ['receipt', 'r-commit1'],
      ]),
    );
    await t.gather(500);
    await s.gather(300);
    t.send(frame('BEGIN', [['transaction', 'tx2']]));
    t.send(
      frame(
        'SEND',
        [
          ['destination', '/queue/tx'],
          ['transaction', 'tx2'],
          ['receipt', 'r-send-tx2'],
        ],
        't2',
      ),
    );
    t.send(
      frame('ABORT', [
        ['transaction', 'tx2'],
        ['receipt', 'r-abort2'],
      ]),
    );
    await t.gather(500);
    s.note(`after ABORT: ${(await s.gather(300)).length} MESSAGE(s)`);
    await closedWithin(t, 100);

    const u = await ctx.login('K2: COMMIT unknown transaction');
    u.send(
      frame('COMMIT', [
        ['transaction', 'nosuch'],
        ['receipt', 'r-k2'],
      ]),
    );
    await u.gather(800);
    await closedWithin(u, 1000);
    const v = await ctx.login('K3: BEGIN the same transaction twice');
    v.send(frame('BEGIN', [['transaction', 'dup']]));
    v.send(
      frame('BEGIN', [
        ['transaction', 'dup'],
        ['receipt', 'r-k3'],
      ]),
    );
    await v.gather(800);
    await closedWithin(v, 1000);
    const w = await ctx.login('K4: SEND in an unknown transaction');
    w.send(
      frame(
        'SEND',
        [
          ['destination', '/queue/tx'],
          ['transaction', 'nosuch'],
          ['receipt', 'r-k4'],
        ],
        'k4',
      ),
    );
    await w.gather(800);
    await closedWithin(w, 1000);
    await s.gather(200);
    await ctx.closeAll();
  },

  async l(ctx) {
    const c = await ctx.login('L: DISCONNECT with receipt');
    c.send(frame('DISCONNECT', [['receipt', 'r-bye']]));
    await c.next(2000);
    await closedWithin(c, 2000);
    const d = await ctx.login('L2: DISCONNECT without receipt');
    d.send(frame('DISCONNECT'));
    await d.next(1000);
    await closedWithin(d, 2000);
  },

  async m(ctx) {
    const c = await ctx.login('M: content-length 100, 5 bytes + NUL, then silence');
    await subscribe(c, 'm', '/topic/m');
    c.send(
      frame(
        'SEND',
        [
          ['destination', '/topic/m'],
          ['content-length', '100'],
          ['receipt', 'r-m'],
        ],
        'short',
      ),
    );
    await c.gather(3000);
    c.note('no frame within 3 s; now sending the other 94 body bytes and a NUL');
    c.send(Buffer.concat([Buffer.alloc(94, 'y'), Buffer.from([0])]), 'rest of body');
    await c.gather(1000);
    await closedWithin(c, 200);
    await ctx.closeAll();
  },

  async n(ctx) {
    const c = await ctx.login('N: binary body with NULs');
    await subscribe(c, 'n', '/topic/bin');
    const body = Buffer.from([0x61, 0x00, 0x62, 0xff, 0xfe, 0x00, 0x0a, 0x63]);
    c.send(
      frame(
        'SEND',
        [
          ['destination', '/topic/bin'],
          ['content-type', 'application/octet-stream'],
          ['content-length', String(body.length)],
          ['receipt', 'r-n'],
        ],
        body,
      ),
    );
    await c.gather(1000);
    await closedWithin(c, 200);
    await ctx.closeAll();
  },

  async o(ctx) {
    const c = await ctx.login('O: heart-beat 1000,1000', [['heart-beat', '1000,1000']]);
    // The client sends an EOL every 1000 ms for 4 s, then goes silent.
    let last = Date.now();
    let count = 0;
    const timer = setInterval(() => {
      c.send('\n', 'heart-beat');
      last = Date.now();
      if (++count === 4) clearInterval(timer);
    }, 1000);
    await c.waitClose(4500);
    c.note('client is silent since its last heart-beat');
    const closed = await c.waitClose(10000);
    clearInterval(timer);
    c.note(
      closed
        ? `server closed ${Date.now() - last} ms after the client's last heart-beat`
        : 'still open 10 s after the client went silent',
    );
    // Client sends nothing at all after CONNECT.
    const q = await ctx.login('O: heart-beat 1000,1000, client never beats', [
      ['heart-beat', '1000,1000'],
    ]);
    const t = Date.now();
    const qClosed = await q.waitClose(10000);
    q.note(
      qClosed ? `server closed ${Date.now() - t} ms after CONNECTED` : 'still open after 10 s',
    );
    for (const hb of ['0,0', '100,100', '1500,2500', '0,5000', '5000,0']) {
      const v = await ctx.login(`O: heart-beat ${hb}`, [['heart-beat', hb]]);
      await v.close();
    }
  },
};

scenarios.w = async (ctx) => {
  if (ctx.transport !== 'ws') return;
  for (const protocols of [[], ['v10.stomp'], ['v11.stomp', 'v12.stomp'], ['stomp'], ['mqtt']]) {
    const name = `W: sub-protocols [${protocols.join(', ')}]`;
    try {
      const c = await ctx.open(name, { protocols });
      c.send(frame('CONNECT', connectHeaders()));
      await c.next(2000);
      await c.close();
    } catch (err) {
      const c = err.conn ?? new Conn(name, 'ws');
      c.note(`handshake failed: ${err.message}`);
      if (!(await c.waitClose(500))) c.record({ kind: 'close', text: 'no WebSocket' });
      ctx.conns.push(c);
    }
  }
};

const TITLES = {
  a: 'CONNECT accept-version 1.2, host /, guest/guest (and variants)',
  b: 'wrong passcode',
  c: 'accept-version 1.3 only',
  d: 'SUBSCRIBE /topic/a with receipt, SEND with custom headers',
  e: '/queue/x: round robin, client-individual, NACK, prefetch-count',
  f: 'SEND without destination',
  g: 'a frame before CONNECT',
  h: 'garbage bytes',
  i: 'undefined header escape \\t',
  j: 'UNSUBSCRIBE of an unknown id',
  k: 'BEGIN / COMMIT / ABORT with SEND inside',
  l: 'DISCONNECT with receipt',
  m: 'content-length larger than the data, then nothing',
  n: 'binary body with NUL and content-length',
  o: 'heart-beat negotiation',
  w: 'WebSocket sub-protocol negotiation (ws only)',
};

// ----------------------------------------------------------------------- main

function parseArgs(argv) {
  const opts = { only: Object.keys(scenarios), transports: ['tcp', 'ws'], out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--only') opts.only = argv[++i].split(',');
    else if (a === '--transport')
      opts.transports = argv[++i] === 'both' ? ['tcp', 'ws'] : [argv[i]];
    else if (a === '--out') opts.out = argv[++i];
    else {
      console.error(
        `usage: probe-rabbitmq.mjs [--only a,b,...] [--transport tcp|ws|both] [--out file]`,
      );
      process.exit(2);
    }
  }
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const out = [
    `# STOMP probe transcript`,
    '',
    `Target: tcp://${HOST}:${TCP_PORT}, ${WS_URL} (sub-protocol ${WS_PROTOCOL}); generated ${new Date().toISOString()} by scripts/probe-rabbitmq.mjs.`,
    '`>>` sent by the client, `<<` received (command, then header lines exactly as on the wire, then the body as a JSON string, or hex when not UTF-8), `--` events. Times are ms since the connection opened.',
    '',
  ];
  for (const key of opts.only) {
    const run = scenarios[key];
    if (!run) throw new Error(`no scenario ${key}`);
    out.push(`## (${key}) ${TITLES[key]}`, '');
    for (const transport of opts.transports) {
      const ctx = new Ctx(transport);
      try {
        await run(ctx);
      } catch (err) {
        out.push(`!! scenario failed on ${transport}: ${err.stack ?? err}`);
      }
      await ctx.closeAll();
      if (ctx.conns.length === 0) continue; // scenario not meant for this transport
      out.push(`### ${transport}`, '', '```', ctx.conns.map(render).join('\n\n'), '```', '');
      process.stderr.write(`probe: (${key}) ${transport} done\n`);
    }
  }
  const text = out.join('\n');
  if (opts.out) writeFileSync(opts.out, text);
  else process.stdout.write(`${text}\n`);
}

await main();
