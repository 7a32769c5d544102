/**
 * Fan-out inside one process, for security.bench.ts: two brokers, one with
 * authorization hooks and one without (in turn), their sessions on in-memory
 * connections (no sockets, no client processes), fed batches of SENDs in
 * turn and timed in pairs (see {@link round}). Without the sockets' cost a
 * delivery is cheaper, so what authorization costs per SEND weighs more here
 * than over a network: an upper bound of its share.
 */
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { AclRule, aclAuthorizer } from '../src/security/acl.js';
import type { createBroker, StompBroker, StompBrokerOptions } from '../src/stomp-broker.js';
import type { Connection } from '../src/transport/connection.js';
import { median } from './harness.js';
import { type Counting, countingConnection, turn } from './inproc.js';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** The stompbus code measured: this checkout's src/, or another's (`--src`). */
export interface Lib {
  createBroker: typeof createBroker;
  aclAuthorizer: typeof aclAuthorizer;
  Connection: typeof Connection;
}

/** Loads the broker, the ACL and the connection class from `<root>/src/`. */
export async function loadLib(root: string): Promise<Lib> {
  const load = (file: string) => import(pathToFileURL(`${root}/src/${file}`).href);
  const [broker, acl, connection] = await Promise.all([
    load('stomp-broker.ts'),
    load('security/acl.ts'),
    load('transport/connection.ts'),
  ]);
  return {
    createBroker: broker.createBroker,
    aclAuthorizer: acl.aclAuthorizer,
    Connection: connection.Connection,
  };
}

const CONNECT = 'CONNECT\naccept-version:1.2\nhost:localhost\nlogin:bench\npasscode:bench\n\n\0';
const DESTINATION = '/topic/bench.fanout';

/** A broker with its subscribers on DESTINATION and its publisher, and the batch it is fed. */
interface Side {
  broker: StompBroker;
  subs: Counting[];
  pub: Counting;
}

async function setUp(lib: Lib, subscribers: number) {
  const broker = lib.createBroker();
  const subs: Counting[] = [];
  for (let i = 0; i < subscribers; i++) {
    const c = countingConnection(lib.Connection);
    broker.accept(c);
    c.receive(`${CONNECT}SUBSCRIBE\nid:s\ndestination:${DESTINATION}\n\n\0`);
    subs.push(c);
  }
  const pub = countingConnection(lib.Connection);
  broker.accept(pub);
  pub.receive(CONNECT);
  await turn();
  return { broker, subs, pub };
}

const NO_HOOKS: Partial<StompBrokerOptions> = {
  authorizeSubscribe: undefined,
  authorizeSend: undefined,
};

/**
 * One round: `pairs` pairs of batches, one batch of each broker back to back
 * (A B, then B A, ...), the hooks on one broker for the first half of the
 * pairs and on the other for the second (so that neither broker's own
 * layout favours a side). A batch is timed from its SENDs to the flush of
 * their deliveries. On a shared machine a batch is now and then descheduled
 * or hit by a GC: the round gives each side's median batch and the median of
 * the per-pair ratios, which such outliers do not move.
 */
async function round(
  sides: Side[],
  hooks: Partial<StompBrokerOptions>,
  batch: string,
  perBatch: number,
  pairs: number,
) {
  const times = { none: [] as number[], hooked: [] as number[] };
  const ratios: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const hooked = i < pairs / 2 ? 1 : 0;
    if (i === 0 || i === pairs / 2) {
      Object.assign((sides[hooked] as Side).broker.options, NO_HOOKS, hooks);
      Object.assign((sides[1 - hooked] as Side).broker.options, NO_HOOKS);
    }
    const pair: number[] = [];
    for (const k of i % 2 ? [1, 0] : [0, 1]) {
      const { subs, pub } = sides[k] as Side;
      const before = subs[0]?.bytes ?? 0;
      const start = performance.now();
      pub.receive(batch);
      // The deliveries leave in the flush at the end of this turn.
      await turn();
      pair[k] = performance.now() - start;
      if ((subs[0]?.bytes ?? 0) - before < perBatch * 256) {
        throw new Error('a subscriber did not get every message');
      }
    }
    const [none, withHooks] = [pair[1 - hooked] as number, pair[hooked] as number];
    times.none.push(none);
    times.hooked.push(withHooks);
    ratios.push(none / withHooks);
  }
  const rate = (ms: number) => (perBatch * (sides[0] as Side).subs.length) / (ms / 1000);
  return {
    none: rate(median(times.none)),
    hooked: rate(median(times.hooked)),
    ratio: median(ratios),
  };
}

/** Deliveries per second of each side per round (median batch), and hooked ÷ none (median pair). */
export interface InProcessResult {
  none: number[];
  hooked: number[];
  ratios: number[];
}

/**
 * Runs `rounds` rounds of `pairs` pairs of batches of fan-out to
 * `subscribers`: a broker with `hooks` against one with none (`{}` against
 * none shows the comparison's own noise and bias).
 */
export async function inProcessFanout(
  lib: Lib,
  hooks: Partial<StompBrokerOptions>,
  subscribers: number,
  rounds: number,
  pairs = 100,
): Promise<InProcessResult> {
  const sides = [await setUp(lib, subscribers), await setUp(lib, subscribers)];
  const perBatch = Math.max(1, Math.round(10_000 / subscribers));
  const batch = `SEND\ndestination:${DESTINATION}\n\n${'x'.repeat(256)}\0`.repeat(perBatch);
  await round(sides, hooks, batch, perBatch, 20); // warm-up
  const result: InProcessResult = { none: [], hooked: [], ratios: [] };
  for (let r = 0; r < rounds; r++) {
    collectGarbage();
    const got = await round(sides, hooks, batch, perBatch, pairs);
    result.none.push(got.none);
    result.hooked.push(got.hooked);
    result.ratios.push(got.ratio);
  }
  await Promise.all(sides.map((s) => s.broker.close(100)));
  return result;
}

/** The comparisons of the in-process part: calibration, a bare hook, 1 rule, 1,000 rules. */
export function inProcessCases(
  lib: Lib,
  rules: AclRule[],
): Array<[string, Partial<StompBrokerOptions>]> {
  const hooks = (acl: ReturnType<typeof aclAuthorizer>) => ({
    authorizeSubscribe: acl.authorizeSubscribe,
    authorizeSend: acl.authorizeSend,
  });
  return [
    ["none vs none (the method's own bias)", {}],
    ['`() => true` hooks vs none', { authorizeSubscribe: () => true, authorizeSend: () => true }],
    ['1 rule vs none', hooks(lib.aclAuthorizer([{ user: '*', read: ['/**'], write: ['/**'] }]))],
    ['1,000 rules vs none', hooks(lib.aclAuthorizer(rules))],
  ];
}
