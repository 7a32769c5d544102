import WebSocket from 'ws';
import { connectFrame, FrameScanner, headerOf, Kind, subscribeFrame } from './stomp-wire.js';

/** Where and how the clients connect; the same for every target but the values. */
export interface Endpoint {
  /** `ws://127.0.0.1:<port>/<path>` */
  url: string;
  /** WebSocket sub-protocols offered. */
  protocols: string[];
  login: string;
  passcode: string;
  /** The CONNECT `host` header (RabbitMQ: the virtual host). */
  vhost: string;
}

/** What one client connection does with what it reads. */
export interface ClientHooks {
  /** Subscribe to this destination once connected (and wait for the RECEIPT). */
  subscribe?: string;
  /** A WebSocket message arrived (before its frames are handed on). */
  onWsMessage?: () => void;
  /** A MESSAGE frame, `buf[start, end)`. */
  onMessage?: (buf: Buffer, start: number, end: number) => void;
  /** An ERROR frame after the handshake, or the connection closed by the other side. */
  onTrouble?: (what: string) => void;
  /** Handshake deadline: WebSocket open, CONNECTED, RECEIPT. */
  timeoutMs: number;
}

/** One open STOMP-over-WebSocket connection. */
export interface Client {
  send(frame: Buffer): void;
  /** Bytes handed to the socket but not yet written. */
  readonly buffered: number;
  /** Closes without ceremony (the harness measures delivery, not DISCONNECT). */
  close(): void;
}

/**
 * Opens a WebSocket, sends CONNECT, waits for CONNECTED, then optionally
 * SUBSCRIBEs and waits for the RECEIPT. Rejects with a short reason on
 * ERROR, close or timeout.
 */
export function openClient(endpoint: Endpoint, hooks: ClientHooks): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(endpoint.url, endpoint.protocols, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      handshakeTimeout: hooks.timeoutMs,
    });
    let ready = false;
    let closing = false;
    const client: Client = {
      send: (frame) => ws.send(frame, { binary: false }),
      get buffered() {
        return ws.bufferedAmount;
      },
      close: () => {
        closing = true;
        ws.terminate();
      },
    };
    const fail = (why: string) => {
      if (ready) {
        if (!closing) hooks.onTrouble?.(why);
        return;
      }
      clearTimeout(timer);
      closing = true;
      ws.terminate();
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail('timeout'), hooks.timeoutMs);
    const becomeReady = () => {
      ready = true;
      clearTimeout(timer);
      resolve(client);
    };
    const scanner = new FrameScanner((buf, start, end) => {
      const kind = buf[start];
      if (kind === Kind.MESSAGE) hooks.onMessage?.(buf, start, end);
      else if (kind === Kind.CONNECTED && !ready) {
        if (hooks.subscribe === undefined) becomeReady();
        else ws.send(subscribeFrame(hooks.subscribe, '0', 'sub-0'), { binary: false });
      } else if (kind === Kind.RECEIPT && !ready) becomeReady();
      else if (kind === Kind.ERROR) fail(`ERROR ${headerOf(buf, start, end, 'message') ?? ''}`);
    });
    ws.on('open', () =>
      ws.send(connectFrame(endpoint.login, endpoint.passcode, endpoint.vhost), { binary: false }),
    );
    ws.on('message', (data: Buffer) => {
      hooks.onWsMessage?.();
      scanner.push(data);
    });
    ws.on('error', (error) => fail((error as NodeJS.ErrnoException).code ?? error.message));
    ws.on('close', (code) => fail(`closed ${code}`));
  });
}
