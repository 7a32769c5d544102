import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startServer } from '../helpers/server.js';

const run = promisify(execFile);

describe('examples', () => {
  it('examples/node-client.mjs connects, sends and receives', async () => {
    const server = await startServer();
    const { stdout } = await run('node', ['examples/node-client.mjs'], {
      env: { ...process.env, STOMPBUS_URL: server.url },
      timeout: 15_000,
    });
    expect(stdout).toMatch(/connected to stompbus\/\S+ \(STOMP 1\.2\)/);
    expect(stdout).toMatch(/received on \/topic\/hello: hello at /);
  });
});
