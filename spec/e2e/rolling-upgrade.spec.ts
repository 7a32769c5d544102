import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import {
  clusterTopics,
  deleteTopicsAfterTest,
  kafkaBrokers,
  readTopic,
  skipKafka,
  uniqueName,
} from '../helpers/cluster.js';
import {
  buildDist,
  type Instance,
  killAllChildren,
  ROOT,
  sleep,
  startInstance,
  terminateChild,
} from '../helpers/haproxy.js';
import { RawClient } from '../helpers/raw-client.js';

/**
 * docs/clustering.md "Record format": the rolling upgrade from a release that
 * reads and writes only the `each` record format, run with that release.
 * Commit 28b47e6, the last before the packed format, is built from git (cached
 * under .cache/releases/), and three of its instances share one Kafka topic.
 * Each is restarted on this checkout with `--kafka-headers each`, one at a
 * time, then once more without it. After every step, every instance publishes
 * and every instance's subscriber must get every message once, in order per
 * destination, with its headers (a `:` and escapes in values) and one
 * message-id on all instances; Kafka's records show which format each step
 * wrote. First, the step the procedure exists for is skipped once: an
 * instance on the new default (`packed`) next to old ones, whose old
 * instances cannot read its records.
 */

if (skipKafka) console.warn('!!! rolling-upgrade.spec.ts SKIPPED: no Kafka broker');

const run = promisify(execFile);
/** The release before the packed format (commit 90211ee introduced it). */
const OLD_RELEASE = '28b47e6';
const TIMEOUT_MS = 20_000;
const DESTINATIONS = ['/topic/upgrade-0', '/topic/upgrade-1', '/topic/upgrade-2'];
const PER_DESTINATION = 3;
/** The negative control's destination (its own subscribers, out of the main count). */
const CONTROL = '/topic/upgrade-control';
/** SIGTERM: no drain delay, every session closed at once (nothing to balance here). */
const QUICK_STOP = ['--drain-delay', '0', '--drain-time', '0'];
/** A header value with a colon, as the client writes it (STOMP 1.2 parsers split at the first). */
const NOTE = 'a:b';
/** A header value with STOMP 1.2 escapes, as the client writes it and as it reads. */
const ODD_WIRE = 'one\\ntwo\\\\three\\cfour';
const ODD = 'one\ntwo\\three:four';

const wsUrl = (port: number) => `ws://127.0.0.1:${port}/stomp`;

/** What runs an instance: the old release, or this checkout writing `each` or `packed`. */
type Build = 'old' | 'each' | 'packed';

/** A message a client sent, with the record format its instance wrote it in. */
interface Sent {
  destination: string;
  body: string;
  from: string;
  format: 'each' | 'packed';
}

/** A subscriber to every destination, and where in `sent` its subscription began. */
interface Subscriber {
  client: RawClient;
  on: string;
  since: number;
}

/** One of the three instances, its build and its clients. */
interface Node {
  readonly name: string;
  build: Build;
  instance: Instance;
  publisher: RawClient;
  subscriber: Subscriber;
}

/**
 * The old release's folder, built once per commit under .cache/releases/<sha>
 * (git archive, this checkout's node_modules linked, compiled with its tsc as
 * that commit's `npm run build` does). Fails when the commit is not in the
 * repository: CI runs on a full clone, where this spec must never be skipped.
 */
async function oldRelease(commit: string): Promise<string> {
  let sha: string;
  try {
    sha = (
      await run('git', ['-C', ROOT, 'rev-parse', '--verify', '--quiet', `${commit}^{commit}`])
    ).stdout.trim();
  } catch {
    throw new Error(
      `commit ${commit} (the release before the packed record format) is not in the repository ` +
        `at ${ROOT} (a shallow clone?): fetch the whole history (git fetch --unshallow) to run ` +
        'the rolling upgrade from it',
    );
  }
  const dir = join(ROOT, '.cache', 'releases', sha);
  const built = join(dir, '.built');
  if (existsSync(built)) return dir;
  const tmp = `${dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await run('bash', [
      '-c',
      'set -o pipefail; git -C "$0" archive "$1" | tar -x -C "$2"',
      ROOT,
      sha,
      tmp,
    ]);
    // .cache/releases/<sha>/node_modules -> the checkout's, wherever the checkout is.
    symlinkSync(join('..', '..', '..', 'node_modules'), join(tmp, 'node_modules'));
    const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
    await run(tsc, ['-p', join(tmp, 'tsconfig.build.json')], { timeout: 120_000 });
    writeFileSync(join(tmp, '.built'), `${sha}\n`);
  } catch (error) {
    rmSync(tmp, { recursive: true, force: true });
    throw error;
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}

/** The help text of a build's command. */
async function helpOf(root: string): Promise<string> {
  return (await run(process.execPath, ['bin/stompbus.js', '--help'], { cwd: root })).stdout;
}

async function raw(port: number): Promise<RawClient> {
  const client = await RawClient.ws(wsUrl(port));
  await client.connect();
  return client;
}

/** SIGTERM, then the instance drains and exits by itself. */
async function terminate(instance: Instance): Promise<void> {
  expect(await terminateChild(instance, TIMEOUT_MS), `${instance.name} exits on SIGTERM`).toBe(
    true,
  );
}

/** A SEND with the spec's headers: a colon in a value, escapes, and who sent it. */
function sendFrame(destination: string, from: string, body: string, receipt: string): string {
  return (
    `SEND\ndestination:${destination}\ncontent-type:text/plain\nx-note:${NOTE}\n` +
    `x-odd:${ODD_WIRE}\nx-from:${from}\nreceipt:${receipt}\n\n${body}\0`
  );
}

/** Subscribes to `destinations`; resolves once the broker confirmed. */
async function subscribe(client: RawClient, destinations: string[]): Promise<void> {
  for (const [i, destination] of destinations.entries()) {
    client.send(`SUBSCRIBE\nid:s${i}\ndestination:${destination}\nreceipt:s${i}\n\n\0`);
  }
  await client.receipt(`s${destinations.length - 1}`, TIMEOUT_MS);
}

/** Per destination, the bodies, in arrival order. */
function byDestination(items: Array<{ destination: string; body: string }>) {
  const out = new Map<string, string[]>();
  for (const { destination, body } of items)
    out.set(destination, [...(out.get(destination) ?? []), body]);
  return out;
}

const frameItem = (frame: Frame) => ({
  destination: getHeader(frame, 'destination') as string,
  body: bodyText(frame),
});

describe.skipIf(skipKafka)(
  'cluster: the rolling upgrade from the release before the packed record format (instances as processes)',
  () => {
    const topic = uniqueName('stompbus-upgrade');
    let oldRoot = '';

    beforeAll(async () => {
      await buildDist();
      oldRoot = await oldRelease(OLD_RELEASE);
      deleteTopicsAfterTest(clusterTopics(topic));
    }, 120_000);

    afterAll(killAllChildren);

    it('keeps every message once, in order, headers and ids intact at every step; packed next to an old instance is misread', async () => {
      // The builds are what they should be: only this checkout knows --kafka-headers.
      expect(await helpOf(oldRoot)).not.toContain('--kafka-headers');
      expect(await helpOf(ROOT)).toContain('--kafka-headers');

      const sent: Sent[] = [];
      /** Per body: the message-id and x-position every instance must show. */
      const seenAs = new Map<string, { id: string; position: string }>();

      const start = (name: string, build: Build, at?: Instance) =>
        startInstance(`${name}-${build}`, {
          kafkaBrokers,
          kafkaTopic: topic,
          timeoutMs: TIMEOUT_MS,
          ...(build === 'old' ? { root: oldRoot } : {}),
          ...(at ? { port: at.port, tcpPort: at.tcpPort, adminPort: at.adminPort } : {}),
          args: [...QUICK_STOP, ...(build === 'each' ? ['--kafka-headers', 'each'] : [])],
        });

      const connect = async (name: string, build: Build, instance: Instance): Promise<Node> => {
        const subscriber = await raw(instance.port);
        await subscribe(subscriber, DESTINATIONS);
        return {
          name,
          build,
          instance,
          publisher: await raw(instance.port),
          subscriber: { client: subscriber, on: `${name} (${build})`, since: sent.length },
        };
      };

      /** Stops a node with SIGTERM and starts it on `build`, at the same ports. */
      const restart = async (node: Node, build: Build): Promise<void> => {
        await terminate(node.instance);
        const instance = await start(node.name, build, node.instance);
        Object.assign(node, await connect(node.name, build, instance));
      };

      /** Every node publishes, one after the other, every SEND receipted. */
      const publishFromEach = async (nodes: Node[], phase: string): Promise<void> => {
        for (const node of nodes) {
          const from = `${node.name}-${node.build}`;
          const label = `${phase}-${node.name}`;
          let n = 0;
          for (let k = 0; k < PER_DESTINATION; k++) {
            for (const [d, destination] of DESTINATIONS.entries()) {
              const body = `${phase} ${from} ${d}.${k}`;
              node.publisher.send(sendFrame(destination, from, body, `${label}-${n++}`));
              sent.push({
                destination,
                body,
                from,
                format: node.build === 'packed' ? 'packed' : 'each',
              });
            }
          }
          await node.publisher.receipt(`${label}-${n - 1}`, TIMEOUT_MS);
          const receipts = node.publisher
            .all('RECEIPT')
            .filter((r) => getHeader(r, 'receipt-id')?.startsWith(`${label}-`));
          expect(receipts, `receipts of ${label}`).toHaveLength(n);
        }
      };

      /**
       * Every subscriber has every message sent since it subscribed, once, in order per
       * destination, with the SEND's headers and the message-id and position that every
       * other instance shows.
       */
      const expectDelivered = async (nodes: Node[], phase: string): Promise<void> => {
        for (const { subscriber } of nodes) {
          await subscriber.client.messages(sent.length - subscriber.since, undefined, TIMEOUT_MS);
        }
        await sleep(300);
        for (const { subscriber } of nodes) {
          const where = `${phase}: the subscriber on ${subscriber.on}`;
          const frames = subscriber.client.all('MESSAGE');
          const expected = sent.slice(subscriber.since);
          expect(frames.length, `${where}: messages`).toBe(expected.length);
          expect(byDestination(frames.map(frameItem)), where).toEqual(byDestination(expected));
          for (const frame of frames) {
            const body = bodyText(frame);
            const headers = { note: getHeader(frame, 'x-note'), odd: getHeader(frame, 'x-odd') };
            expect(headers, `${where}: ${body}`).toEqual({ note: NOTE, odd: ODD });
            expect(getHeader(frame, 'content-type')).toBe('text/plain');
            expect(body.split(' ')[1]).toBe(getHeader(frame, 'x-from'));
            expect(frame.headers.filter(([name]) => name.startsWith('stompbus-'))).toEqual([]);
            const as = {
              id: getHeader(frame, 'message-id') as string,
              position: getHeader(frame, 'x-position') as string,
            };
            expect(as.id).toMatch(/.+/);
            if (!seenAs.has(body)) seenAs.set(body, as);
            expect(as, `${where}: ${body}'s id and position`).toEqual(seenAs.get(body));
          }
        }
        const ids = [...seenAs.values()].map((v) => v.id);
        expect(new Set(ids).size, 'one message-id per message').toBe(ids.length);
      };

      const phase = async (nodes: Node[], name: string): Promise<void> => {
        await publishFromEach(nodes, name);
        await expectDelivered(nodes, name);
      };

      // Three instances of the old release.
      const a0 = await start('a', 'old');
      const [b0, c0] = await Promise.all([start('b', 'old'), start('c', 'old')]);
      const nodes = [
        await connect('a', 'old', a0),
        await connect('b', 'old', b0),
        await connect('c', 'old', c0),
      ];
      const [a, b] = nodes as [Node, Node, Node];
      await phase(nodes, 'old');

      // The negative control: A straight to the new default (packed) while B and C are old.
      await restart(a, 'packed');
      const control = await Promise.all(
        nodes.map(async (node) => {
          const client = await raw(node.instance.port);
          await subscribe(client, [CONTROL]);
          return client;
        }),
      );
      for (let k = 0; k < 2; k++) {
        a.publisher.send(sendFrame(CONTROL, 'a-packed', `control a ${k}`, `control-a-${k}`));
      }
      await a.publisher.receipt('control-a-1', TIMEOUT_MS);
      b.publisher.send(sendFrame(CONTROL, 'b-old', 'control b', 'control-b'));
      await b.publisher.receipt('control-b', TIMEOUT_MS);
      const [onNew, ...onOld] = await Promise.all(
        control.map((client) => client.messages(3, undefined, TIMEOUT_MS)),
      );
      await sleep(300);
      for (const client of control) expect(client.all('MESSAGE')).toHaveLength(3);
      // The new instance reads both formats: the packed records and the old one's each.
      expect((onNew as Frame[]).map(bodyText)).toEqual(['control a 0', 'control a 1', 'control b']);
      for (const frame of onNew as Frame[]) {
        expect(getHeader(frame, 'x-note')).toBe(NOTE);
        expect(getHeader(frame, 'x-odd')).toBe(ODD);
        expect(getHeader(frame, 'stompbus-headers')).toBeUndefined();
      }
      const [newA0, newA1, newB] = onNew as [Frame, Frame, Frame];
      for (const [i, frames] of onOld.entries()) {
        const where = `the old ${i === 0 ? 'b' : 'c'}`;
        expect(frames.map(bodyText), where).toEqual(['control a 0', 'control a 1', 'control b']);
        // The old instance's own record (each) is read as before.
        const fromB = frames[2] as Frame;
        expect(getHeader(fromB, 'message-id')).toBe(getHeader(newB, 'message-id'));
        expect(getHeader(fromB, 'x-note')).toBe(NOTE);
        // The packed records: delivered, body in order, but every STOMP header is lost into
        // one `stompbus-headers` header, and the id is made up from the record's position.
        for (const [k, frame] of frames.slice(0, 2).entries()) {
          const original = (k === 0 ? newA0 : newA1) as Frame;
          const id = getHeader(original, 'message-id') as string;
          const position = getHeader(frame, 'x-position') as string;
          expect(position).toBe(getHeader(original, 'x-position'));
          const [, partition, offset] = /^p(\d+)-(\d+)$/.exec(position) ?? [];
          expect(getHeader(frame, 'message-id'), where).toBe(`${topic}-${partition}-${offset}`);
          expect(getHeader(frame, 'message-id')).not.toBe(id);
          expect(getHeader(frame, 'x-note'), where).toBeUndefined();
          expect(getHeader(frame, 'x-odd'), where).toBeUndefined();
          expect(getHeader(frame, 'x-from'), where).toBeUndefined();
          expect(getHeader(frame, 'content-type'), where).toBeUndefined();
          expect(getHeader(frame, 'stompbus-headers'), where).toBe(
            `${id}\ncontent-type:text/plain\nx-note:a\\cb\nx-odd:one\\ntwo\\\\three\\cfour\nx-from:a-packed`,
          );
        }
      }
      for (const client of control) client.destroy();

      // The procedure: every instance on the new release with --kafka-headers each...
      for (const node of nodes) {
        await restart(node, 'each');
        await phase(nodes, `${node.name}-each`);
      }
      // ...then once more without it, one after the other.
      for (const node of nodes) {
        await restart(node, 'packed');
        await phase(nodes, `${node.name}-packed`);
      }

      // What Kafka holds: each message in the format its instance wrote at the time.
      const records = await readTopic(topic, sent.length + 3, TIMEOUT_MS);
      const formats = new Map(records.map((r) => [r.value, r.headers]));
      expect(formats.size).toBe(sent.length + 3);
      for (const { body, format } of sent) {
        const headers = formats.get(body);
        if (format === 'packed') {
          expect(Object.keys(headers ?? {}), body).toEqual(['stompbus-headers']);
        } else {
          expect(headers?.['stompbus-message-id'], body).toBe(seenAs.get(body)?.id);
          expect(headers?.['x-note'], body).toBe(NOTE);
          expect(headers?.['stompbus-headers'], body).toBeUndefined();
        }
      }
      expect(sent.filter((s) => s.format === 'packed')).toHaveLength(
        (1 + 2 + 3) * PER_DESTINATION * DESTINATIONS.length,
      );

      for (const node of nodes) {
        node.publisher.destroy();
        node.subscriber.client.destroy();
      }
      await Promise.all(nodes.map((node) => terminate(node.instance)));
    }, 120_000);
  },
);
