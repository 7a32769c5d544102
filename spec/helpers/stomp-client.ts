import { Client, type IFrame, type IMessage, type StompConfig } from '@stomp/stompjs';
import { TCPWrapper } from '@stomp/tcp-wrapper';
import { afterEach } from 'vitest';
import WebSocket from 'ws';

const clients = new Set<Client>();

/**
 * A connected @stomp/stompjs client over WebSocket (`url`) or TCP (`port`);
 * `config` may replace anything, the WebSocket factory included.
 */
export async function stompClient(
  target: string | number,
  config: StompConfig = {},
): Promise<Client> {
  const client = new Client({
    webSocketFactory:
      typeof target === 'string'
        ? () => new WebSocket(target, ['v12.stomp', 'v11.stomp', 'v10.stomp'])
        : () => new TCPWrapper('127.0.0.1', target),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    ...config,
  });
  clients.add(client);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('stompjs did not connect')), 5000);
    client.onConnect = () => {
      clearTimeout(timer);
      resolve();
    };
    client.onStompError = (frame: IFrame) => {
      clearTimeout(timer);
      reject(new Error(`ERROR ${frame.headers.message}`));
    };
    client.onWebSocketError = (event: unknown) => {
      clearTimeout(timer);
      reject(new Error(`WebSocket failed: ${String((event as { message?: string }).message)}`));
    };
    client.activate();
  });
  return client;
}

/** Collects the messages of a subscription and lets a test wait for a count. */
export class Inbox {
  readonly messages: IMessage[] = [];
  private waiters: Array<() => void> = [];

  /** The callback to give to `client.subscribe`. */
  readonly take = (message: IMessage) => {
    this.messages.push(message);
    for (const w of this.waiters.splice(0)) w();
  };

  /** Waits until at least `count` messages arrived. */
  async waitFor(count: number, timeoutMs = 5000): Promise<IMessage[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`got ${this.messages.length} of ${count} messages`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.messages;
  }
}

/** Publishes with a receipt and waits for it. */
export function publishWithReceipt(
  client: Client,
  params: Parameters<Client['publish']>[0],
): Promise<void> {
  const receipt = `r-${Math.random().toString(36).slice(2)}`;
  const done = new Promise<void>((resolve) => client.watchForReceipt(receipt, () => resolve()));
  client.publish({ ...params, headers: { ...params.headers, receipt } });
  return done;
}

afterEach(async () => {
  const list = [...clients];
  clients.clear();
  await Promise.all(list.map((c) => c.deactivate({ force: true })));
});
