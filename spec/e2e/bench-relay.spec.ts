/**
 * The relay of `bench/cluster.bench.ts --relay` (bench/load/relay.mjs), on a real Kafka: the
 * benchmark reads its rows as the cluster path without stompbus, so it must forward every
 * SEND once, in order, to the subscribers of both relays, with the SEND's headers and body.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { kafkaBrokers, skipKafka, uniqueName } from '../helpers/cluster.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RELAY = join(ROOT, 'bench', 'load', 'relay.mjs');
/** kafkajs' fixes as the benchmark hands them to the relays (dist/ is built before the specs). */
const FIXES = join(ROOT, 'dist', 'cluster', 'kafkajs-fixes.js');

const started: ChildProcess[] = [];
afterEach(() => {
  for (const child of started.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

/**
 * Starts a relay on `topic` with the benchmark's arguments (kafkajs' fixes, a 5 ms fetch
 * interval) and resolves with its URL once it prints its ready line.
 */
function startRelay(topic: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [RELAY, kafkaBrokers, topic, FIXES, '5'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  started.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    // Read to the end: the pipe stays drained after the ready line.
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const url = /"ws":"(ws:\/\/127\.0\.0\.1:\d+\/)"/.exec(out)?.[1];
      if (url) resolve({ url, child });
    });
    child.once('close', () => reject(new Error(`relay exited before its ready line: ${out}`)));
  });
}

/** A raw STOMP client: the frames it got, one string each (a WebSocket message may hold several). */
async function client(url: string): Promise<{ ws: WebSocket; frames: string[] }> {
  const ws = new WebSocket(url, ['v12.stomp']);
  const frames: string[] = [];
  ws.on('message', (data: Buffer) => {
    for (const frame of data.toString('latin1').split('\0')) if (frame) frames.push(frame);
  });
  await once(ws, 'open');
  ws.send('CONNECT\naccept-version:1.2\nhost:localhost\n\n\0');
  await until(() => frames.some((f) => f.startsWith('CONNECTED\n')));
  return { ws, frames };
}

async function until(done: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const messages = (frames: string[]) => frames.filter((f) => f.startsWith('MESSAGE\n'));
const seqOf = (frame: string) => /\nx-seq:([^\n]+)/.exec(frame)?.[1];

describe.skipIf(skipKafka)('the benchmark relay (bench/load/relay.mjs)', () => {
  it('forwards every SEND once, in order, with its headers and body, to the subscribers of both relays', async () => {
    const topic = uniqueName('stompbus-spec-relay');
    const admin = new Kafka({
      clientId: 'spec-relay',
      brokers: kafkaBrokers.split(','),
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    try {
      await admin.createTopics({
        topics: [{ topic, numPartitions: 3, replicationFactor: 1 }],
        waitForLeaders: true,
      });
      const [one, two] = [await startRelay(topic), await startRelay(topic)];
      const far = await client(two.url);
      const near = await client(one.url);
      for (const [c, id] of [
        [far, 'far'],
        [near, 'near'],
      ] as const) {
        c.ws.send(`SUBSCRIBE\nid:${id}\ndestination:/topic/relay\nreceipt:r-${id}\n\n\0`);
        await until(() => c.frames.some((f) => f.startsWith(`RECEIPT\nreceipt-id:r-${id}\n`)));
      }
      const pub = await client(one.url);
      const send = (seq: string) =>
        pub.ws.send(`SEND\ndestination:/topic/relay\nx-seq:${seq}\ncontent-length:4\n\nbody\0`);
      // The relays read from the live end: probe until both subscribers get one.
      for (let i = 0; !(messages(far.frames).length && messages(near.frames).length); i++) {
        if (i > 200) throw new Error('no probe came through');
        send(`probe-${i}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const count = 200;
      for (let i = 0; i < count; i++) send(String(i));
      const expected = Array.from({ length: count }, (_, i) => String(i));
      for (const [c, id] of [
        [far, 'far'],
        [near, 'near'],
      ] as const) {
        await until(
          () => messages(c.frames).filter((f) => !seqOf(f)?.startsWith('probe')).length >= count,
        );
        await new Promise((r) => setTimeout(r, 200)); // nothing more may come
        const got = messages(c.frames).filter((f) => !seqOf(f)?.startsWith('probe'));
        expect(got.map(seqOf)).toEqual(expected);
        for (const f of got) {
          expect(f).toMatch(new RegExp(`^MESSAGE\\nsubscription:${id}\\nmessage-id:\\d+\\n`));
          expect(f).toContain('\ndestination:/topic/relay\n');
          expect(f.endsWith('\n\nbody')).toBe(true);
        }
      }
      // The publisher subscribed to nothing: the relay sends it nothing but CONNECTED.
      expect(pub.frames.filter((f) => !f.startsWith('CONNECTED\n'))).toEqual([]);
      for (const c of [far, near, pub]) c.ws.close();
      for (const r of [one, two]) {
        const exited = once(r.child, 'exit');
        r.child.kill('SIGTERM');
        const [code] = await exited;
        expect(code).toBe(0);
      }
    } finally {
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    }
  }, 90_000);
});
