import WebSocket from 'ws';

/** How a WebSocket upgrade was answered. */
export interface Upgrade {
  /** 101 when it was upgraded, else the HTTP status (403, 503...). */
  status: number;
  /** The response body of a refusal. */
  body: string;
}

/** What an upgrade request carries besides the STOMP sub-protocols. */
export interface UpgradeOptions {
  /** The `Origin` header; none when left out (a non-browser client). */
  origin?: string;
  /** The local address to connect from (Linux: any 127.x.y.z is loopback). */
  localAddress?: string;
}

/**
 * Asks for a WebSocket upgrade and reports the answer; an accepted socket
 * is closed again at once.
 */
export function upgrade(url: string, options: UpgradeOptions = {}): Promise<Upgrade> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['v12.stomp'], options);
    const timer = setTimeout(() => reject(new Error(`no answer to the upgrade of ${url}`)), 5000);
    ws.on('open', () => {
      clearTimeout(timer);
      ws.terminate();
      resolve({ status: 101, body: '' });
    });
    ws.on('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on('end', () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, body });
      });
    });
    ws.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** A ws WebSocket offering the STOMP sub-protocols, with `options` (origin, localAddress). */
export function stompSocket(url: string, options: UpgradeOptions = {}): WebSocket {
  return new WebSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp'], options);
}
