// A minimal @stomp/stompjs client for Node.js: subscribes to a topic, sends
// one message to it, prints what arrives and disconnects.
//
//   npm start                          # in one terminal: the broker
//   node examples/node-client.mjs      # in another
//
// STOMPBUS_URL picks another broker (default ws://127.0.0.1:61614/stomp).
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const url = process.env.STOMPBUS_URL ?? 'ws://127.0.0.1:61614/stomp';

const client = new Client({
  webSocketFactory: () => new WebSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
  reconnectDelay: 0,
  onConnect: (connected) => {
    console.log(`connected to ${connected.headers.server} (STOMP ${connected.headers.version})`);
    client.subscribe('/topic/hello', (message) => {
      console.log(`received on ${message.headers.destination}: ${message.body}`);
      client.deactivate();
    });
    client.publish({ destination: '/topic/hello', body: `hello at ${new Date().toISOString()}` });
  },
  onStompError: (frame) => {
    console.error(`ERROR ${frame.headers.message}: ${frame.body}`);
    process.exitCode = 1;
    client.deactivate();
  },
  onWebSocketError: () => {
    console.error(`cannot reach ${url}: is the broker running (npm start)?`);
    process.exitCode = 1;
    client.deactivate();
  },
});
client.activate();
