import { expect } from 'vitest';
import { bodyText } from '../../src/frame/index.js';
import type { StompServer } from '../../src/server.js';
import { RawClient } from './raw-client.js';

/**
 * Shows that the server still serves others: a fresh client connects,
 * subscribes, sends to itself and receives, over WebSocket or TCP.
 */
export async function expectOthersUnaffected(server: StompServer, over: 'ws' | 'tcp' = 'ws') {
  const other =
    over === 'ws' ? await RawClient.ws(server.url) : await RawClient.tcp(server.tcpPort as number);
  await other.connect();
  other.send('SUBSCRIBE\nid:s\ndestination:/topic/still-alive\n\n\0');
  other.send('SEND\ndestination:/topic/still-alive\n\nfine\0');
  const message = await other.next('MESSAGE');
  expect(bodyText(message)).toBe('fine');
  other.destroy();
}
