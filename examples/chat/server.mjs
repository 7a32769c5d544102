// The chat page's web server: serves examples/chat/public/, the @stomp/stompjs
// browser bundle from node_modules, and config.json, which tells the page where
// the broker is. The page talks to stompbus directly over WebSocket; this
// server carries no messages.
//
//   npm start                              # terminal 1: the broker
//   node examples/chat/server.mjs          # terminal 2: then open http://127.0.0.1:8000/
//
// Options (or environment): --port 8000 (CHAT_PORT; 0 picks a free one),
// --host 127.0.0.1 (CHAT_HOST), --broker ws://host:61614/stomp (STOMPBUS_URL;
// default: the page's own host name, port 61614), --reconnect-delay 1000 (ms),
// --no-private (for a broker without user destinations).
//
// Token mode (--token-secret S, CHAT_TOKEN_SECRET; the broker runs with
// --jwt-secret S): GET /token?user=alice signs a short-lived HS256 JWT
// (--token-ttl seconds, default 300) for that name, and the page logs in with
// it, fetching a fresh one before every (re)connect. A development stand-in
// for an identity provider: it signs whatever name it is asked for.
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';

const here = dirname(fileURLToPath(import.meta.url));
// The UMD bundle sits beside the CommonJS entry point of @stomp/stompjs.
const stompjsBundle = join(
  dirname(createRequire(import.meta.url).resolve('@stomp/stompjs')),
  'stomp.umd.min.js',
);

/** The only paths served: nothing else of the disk is reachable. */
const FILES = {
  '/': [join(here, 'public', 'index.html'), 'text/html; charset=utf-8'],
  '/chat.js': [join(here, 'public', 'chat.js'), 'text/javascript; charset=utf-8'],
  '/chat.css': [join(here, 'public', 'chat.css'), 'text/css; charset=utf-8'],
  '/stomp.umd.min.js': [stompjsBundle, 'text/javascript; charset=utf-8'],
};

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.CHAT_PORT ?? '8000' },
    host: { type: 'string', default: process.env.CHAT_HOST ?? '127.0.0.1' },
    broker: { type: 'string', default: process.env.STOMPBUS_URL },
    'reconnect-delay': { type: 'string', default: '1000' },
    'no-private': { type: 'boolean', default: false },
    'token-secret': { type: 'string', default: process.env.CHAT_TOKEN_SECRET },
    'token-ttl': { type: 'string', default: '300' },
  },
});

/** config.json: what the page needs to know, decided here so that the page has no settings. */
function pageConfig(request) {
  // Without --broker: the host the browser used for this page, stompbus's default port.
  const host = (request.headers.host ?? 'localhost').replace(/:\d+$/, '');
  return {
    brokerURL: args.broker ?? `ws://${host}:61614/stomp`,
    reconnectDelay: Number(args['reconnect-delay']),
    privateMessages: !args['no-private'],
    // Token mode: where the page gets its login token.
    tokenURL: tokenKey ? 'token' : null,
  };
}

const tokenKey = args['token-secret'] ? new TextEncoder().encode(args['token-secret']) : null;
if (tokenKey && tokenKey.length < 32) {
  // stompbus takes HS256 secrets of 32 bytes or more (RFC 7518 §3.2).
  console.error('chat: --token-secret needs at least 32 bytes');
  process.exit(2);
}

/**
 * /token?user=<name>: an HS256 JWT whose `sub` is the name and whose `scope`
 * grants what the page does (stompbus.read/write:<pattern>, as --acl-file
 * patterns), valid for --token-ttl seconds.
 */
async function token(request) {
  const user = new URL(request.url ?? '/', 'http://page').searchParams.get('user') ?? '';
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(user)) return [400, { error: 'user: letters, digits, _ or -' }];
  const scope = [
    'stompbus.read:/topic/chat.*',
    'stompbus.write:/topic/chat.*',
    'stompbus.read:/topic/prices',
    `stompbus.read:/user/${user}/queue/private`,
    'stompbus.write:/user/*/queue/private',
  ].join(' ');
  const ttl = Number(args['token-ttl']);
  const jwt = await new SignJWT({ scope })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
    .sign(tokenKey);
  return [200, { token: jwt }];
}

const headers = (type) => ({
  'content-type': type,
  'cache-control': 'no-store',
  // The page runs only its own scripts and talks only to the broker.
  'content-security-policy': "default-src 'self'; connect-src 'self' ws: wss:",
});

const server = createServer(async (request, response) => {
  const path = new URL(request.url ?? '/', 'http://page').pathname;
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, headers('text/plain')).end('GET only\n');
  } else if (path === '/token' && tokenKey) {
    const [status, body] = await token(request);
    response.writeHead(status, headers('application/json')).end(JSON.stringify(body));
  } else if (path === '/config.json') {
    response.writeHead(200, headers('application/json')).end(JSON.stringify(pageConfig(request)));
  } else if (Object.hasOwn(FILES, path)) {
    const [file, type] = FILES[path];
    try {
      response.writeHead(200, headers(type)).end(await readFile(file));
    } catch (error) {
      response.writeHead(500, headers('text/plain')).end(`cannot read ${path}: ${error.code}\n`);
    }
  } else {
    response.writeHead(404, headers('text/plain')).end('not found\n');
  }
});

server.on('error', (error) => {
  console.error(
    error.code === 'EADDRINUSE'
      ? `chat: port ${args.port} is taken; pick another with --port`
      : `chat: ${error.message}`,
  );
  process.exit(1);
});
server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  const broker = args.broker ?? `ws://<page host>:61614/stomp`;
  const mode = tokenKey ? `, token login, tokens live ${args['token-ttl']} s` : '';
  console.log(`chat on http://${args.host}:${port}/ (broker ${broker}${mode})`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    // Browsers keep idle connections open; they would hold close() up.
    server.closeAllConnections();
  });
}
