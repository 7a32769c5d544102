/**
 * A `@stomp/stompjs` client for the benchmarks that measure over real sockets: no
 * reconnect and no heart-beats, so that nothing but the benchmark's traffic flows.
 */
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

/** Connects to `url` (a stompbus WebSocket endpoint), with `login` if given; rejects on an ERROR frame. */
export async function connect(url: string, login?: string): Promise<Client> {
  const client = new Client({
    webSocketFactory: () => new WebSocket(url, ['v12.stomp']),
    ...(login ? { connectHeaders: { login, passcode: 'pw' } } : {}),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
  });
  await new Promise<void>((resolve, reject) => {
    client.onConnect = () => resolve();
    client.onStompError = (frame) => reject(new Error(frame.headers.message));
    client.activate();
  });
  return client;
}
