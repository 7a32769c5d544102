// An Express 5 app that embeds stompbus: ONE port serves the page, a REST API
// that publishes to the broker, and STOMP over WebSocket at /stomp.
//
//   npm install && npm run build              # at the repo root, once
//   node examples/express/server.mjs          # then open http://127.0.0.1:3000/
//
// --port N (or PORT; default 3000, 0 picks a free one).
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import express from 'express';
import { attachWebSocket, createBroker, StompError } from 'stompbus';

const { values: args } = parseArgs({
  options: { port: { type: 'string', default: process.env.PORT ?? '3000' } },
});
const here = dirname(fileURLToPath(import.meta.url));
// The browser bundle of @stomp/stompjs, served to the page from node_modules.
const stompjsBundles = dirname(createRequire(import.meta.url).resolve('@stomp/stompjs'));

// The broker lives in this process: no other server to run. Anyone may connect
// and claim a login; pass `users` or `authenticate` to check them.
const broker = createBroker();
broker.on('connect', ({ user, transport }) =>
  console.log(`stomp: ${user ?? 'anonymous'} (${transport})`),
);

const app = express();
app.use(express.static(join(here, 'public')));
app.use('/vendor', express.static(stompjsBundles));
app.use(express.json());

/** The text of a body `{ "text": "..." }`, trimmed; undefined when missing or blank. */
const textOf = (body) => (typeof body?.text === 'string' && body.text.trim()) || undefined;

// Every page subscribed to /topic/announcements gets it. Express 5 passes a
// rejected promise (say, Kafka down in cluster mode) to the error handler.
app.post('/api/announcements', async (req, res) => {
  const text = textOf(req.body);
  if (!text) return res.status(400).json({ error: 'text is required' });
  await broker.publish('/topic/announcements', text, { 'content-type': 'text/plain' });
  res.status(202).json({ published: true });
});

// Only the sessions logged in as :name get it, on their /user/queue/notifications.
app.post('/api/users/:name/notify', async (req, res) => {
  const text = textOf(req.body);
  if (!text) return res.status(400).json({ error: 'text is required' });
  await broker.sendToUser(req.params.name, '/queue/notifications', text, {
    'content-type': 'text/plain',
  });
  res.status(202).json({ published: true });
});

// A bad destination (a user name with a slash) is the client's fault.
app.use((error, _req, res, next) => {
  if (!(error instanceof StompError)) return next(error);
  res.status(400).json({ error: error.code });
});

// STOMP over WebSocket on the same http.Server. Upgrades to other paths are
// left alone, for the app's own WebSockets; this app has none, so it refuses
// them (a socket no listener answers would stay open).
const server = createServer(app);
const stomp = attachWebSocket(broker, { server, path: '/stomp' });
server.on('upgrade', (req, socket) => {
  if (!stomp.matches(req)) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
});

server.listen(Number(args.port), '127.0.0.1', () => {
  console.log(`express example listening on http://127.0.0.1:${server.address().port}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await broker.close(1000); // ERROR STOMP_ERR_SHUTDOWN to every page, then stops
    server.close(() => process.exit(0));
    server.closeAllConnections(); // idle keep-alive connections would hold close() up
  });
}
