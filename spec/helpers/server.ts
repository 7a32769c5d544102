import { afterEach } from 'vitest';
import { type ServerOptions, StompServer } from '../../src/server.js';

const running = new Set<StompServer>();

/** What every test server gets: loopback, free ports (the admin port too), short close timeouts. */
export const TEST_SERVER_OPTIONS: Partial<ServerOptions> = {
  host: '127.0.0.1',
  port: 0,
  tcpPort: 0,
  adminPort: 0,
  shutdownTimeoutMs: 500,
  closeTimeoutMs: 500,
};

/** Starts a stompbus on free loopback ports; it is stopped after the test. */
export async function startServer(options: Partial<ServerOptions> = {}): Promise<StompServer> {
  const server = new StompServer({ ...TEST_SERVER_OPTIONS, ...options });
  await server.start();
  running.add(server);
  return server;
}

afterEach(async () => {
  const servers = [...running];
  running.clear();
  await Promise.all(servers.map((s) => s.stop()));
});
