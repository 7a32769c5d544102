/**
 * The clients of the Kafka restart scenario (spec/e2e/kafka-restart.spec.ts and
 * bench/kafka-restart.bench.ts): a publisher that sends with receipts at a steady pace
 * without waiting for them, as an application streaming events does, and a subscriber;
 * both record what they got and when, so that the outage can be measured as a client sees
 * it. No vitest here: the benchmark uses it too.
 */
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import { RawClient } from './raw-client.js';

/** A publisher sending `SEND`s with a receipt every `everyMs`; see {@link startPublisher}. */
export interface Publisher {
  readonly client: RawClient;
  /** Receipt ids (also the bodies) in the order sent. */
  readonly ids: string[];
  /** When each SEND was written, by receipt id. */
  readonly sentAt: Map<string, number>;
  /** Stops sending (what was sent still gets its answers). */
  stop(): void;
  /** Resolves once sending stopped (asked to, `maxSends` reached or the connection closed). */
  readonly stopped: Promise<void>;
}

/**
 * Connects to `url` and sends one SEND to `destination` every `everyMs` ms, each with
 * `receipt:<prefix>-<n>` and that id as body, until {@link Publisher.stop}, `maxSends`
 * SENDs, or the connection closing.
 */
export async function startPublisher(
  url: string,
  destination: string,
  options: { everyMs: number; maxSends: number; prefix?: string },
): Promise<Publisher> {
  const client = await RawClient.ws(url);
  await client.connect();
  const prefix = options.prefix ?? 'p';
  const ids: string[] = [];
  const sentAt = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let finish: () => void = () => {};
  const stopped = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const stop = () => {
    clearInterval(timer);
    finish();
  };
  timer = setInterval(() => {
    if (client.isClosed || ids.length >= options.maxSends) {
      stop();
      return;
    }
    const id = `${prefix}-${ids.length}`;
    ids.push(id);
    sentAt.set(id, Date.now());
    client.send(`SEND\ndestination:${destination}\nreceipt:${id}\n\n${id}\0`);
  }, options.everyMs);
  return { client, ids, sentAt, stop, stopped };
}

/** What became of a publisher's SENDs, as it saw them. */
export interface PublisherOutcome {
  sent: number;
  receipted: number;
  /** Sent, and neither RECEIPT nor ERROR for them (yet). */
  unanswered: string[];
  /** ERROR frames it got. */
  errors: Frame[];
  /** Receipt ids in the order the RECEIPTs came. */
  receiptOrder: string[];
  /** RECEIPT time minus SEND time, ms, per receipted SEND, in sending order. */
  delays: number[];
  /** The largest of {@link delays}, ms. */
  maxDelayMs: number;
  /** Whether its connection closed. */
  closed: boolean;
}

/** Reads a publisher's frames: receipts, their delays, errors. */
export function publisherOutcome(publisher: Publisher): PublisherOutcome {
  const { client, ids, sentAt } = publisher;
  const receiptAt = new Map<string, number>();
  const receiptOrder: string[] = [];
  const answered = new Set<string>();
  client.frames.forEach((frame, i) => {
    const id = getHeader(frame, 'receipt-id');
    if (id === undefined) return;
    answered.add(id);
    if (frame.command === 'RECEIPT') {
      receiptAt.set(id, client.frameTimes[i] as number);
      receiptOrder.push(id);
    }
  });
  const delays: number[] = [];
  for (const id of ids) {
    const at = receiptAt.get(id);
    if (at !== undefined) delays.push(at - (sentAt.get(id) as number));
  }
  return {
    sent: ids.length,
    receipted: receiptAt.size,
    unanswered: ids.filter((id) => !answered.has(id)),
    errors: client.all('ERROR'),
    receiptOrder,
    delays,
    maxDelayMs: delays.reduce((a, b) => Math.max(a, b), 0),
    closed: client.isClosed,
  };
}

/** A subscriber to `destination` on `url`. */
export async function startSubscriber(url: string, destination: string) {
  const client = await RawClient.ws(url);
  await client.connect();
  client.send(`SUBSCRIBE\nid:s\ndestination:${destination}\nreceipt:sub\n\n\0`);
  await client.receipt('sub');
  /** MESSAGE bodies in the order they came. */
  const bodies = () => client.all('MESSAGE').map((f) => bodyText(f));
  return { client, bodies };
}

/** Waits until `check()` is true, polling every 20 ms; throws after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
