import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { bodyText, type Frame, getHeader } from '../../src/frame/index.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer } from '../helpers/server.js';

/**
 * The same scripted conversations against stompbus and against RabbitMQ
 * Web-STOMP (the reference), comparing what each client receives. Volatile
 * headers (ids, server names) are left out of the comparison; any other
 * difference must be listed in DIFFERENCES below and in docs/protocol.md.
 */

const RABBIT_URL = process.env.RABBITMQ_WEB_STOMP_URL ?? 'ws://127.0.0.1:15674/ws';

async function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    socket.setTimeout(1000);
    socket.on('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

const rabbitUp = await reachable(RABBIT_URL);
if (!rabbitUp) {
  console.warn(
    `\n!! SKIPPED: differential spec — RabbitMQ Web-STOMP is not reachable at ${RABBIT_URL}` +
      ' (enable it with scripts/rabbitmq-stomp.sh)\n',
  );
}

/** One step of a conversation, run by one client. */
type Step =
  | { by: string; send: string }
  | { by: string; receipt: string }
  | { by: string; messages: number }
  | { by: string; closed: true }
  | { by: string; ackLast: 'ACK' | 'NACK'; index: number };

interface Conversation {
  name: string;
  clients: string[];
  steps: Step[];
  /**
   * A documented difference: turns what RabbitMQ did into what stompbus does,
   * with the reason (also listed in docs/protocol.md).
   */
  difference?: { why: string; adjust: (theirs: Seen[]) => Seen[] };
}

/** What one client saw, reduced to what two brokers must agree on. */
type Seen = { frames: string[]; closed: boolean };

const COMPARED = [
  'destination',
  'subscription',
  'content-type',
  'receipt-id',
  'redelivered',
  'x-app',
];

function describeFrame(frame: Frame): string {
  if (frame.command === 'ERROR') {
    // The text of an ERROR is the server's own; whether it names the receipt is compared.
    return `ERROR receipt-id=${getHeader(frame, 'receipt-id') ?? '-'}`;
  }
  if (frame.command === 'CONNECTED') return `CONNECTED version=${getHeader(frame, 'version')}`;
  const headers = COMPARED.flatMap((name) => {
    let value = getHeader(frame, name);
    if (name === 'redelivered' && value === 'false') value = undefined;
    return value === undefined ? [] : [`${name}=${value}`];
  });
  return `${frame.command} ${headers.join(' ')} |${bodyText(frame)}|`;
}

async function run(url: string, conversation: Conversation, tag: string): Promise<Seen[]> {
  const clients = new Map<string, RawClient>();
  const sub = (text: string) => text.replaceAll('$', tag);
  for (const name of conversation.clients) {
    const client = await RawClient.ws(url);
    await client.connect({ login: 'guest', passcode: 'guest', host: '/' });
    clients.set(name, client);
  }
  for (const step of conversation.steps) {
    const client = clients.get(step.by) as RawClient;
    if ('send' in step) client.send(sub(step.send));
    else if ('receipt' in step) await client.receipt(step.receipt);
    else if ('messages' in step) {
      await client.waitFor(() => client.all('MESSAGE').length >= step.messages || undefined);
    } else if ('closed' in step) {
      await Promise.race([client.closed, new Promise((r) => setTimeout(r, 3000))]);
    } else {
      const m = client.all('MESSAGE')[step.index] as Frame;
      client.send(`${step.ackLast}\nid:${getHeader(m, 'ack')}\n\n\0`);
    }
  }
  // Let stray frames arrive before comparing.
  await new Promise((resolve) => setTimeout(resolve, 150));
  const seen = [...clients.values()].map((c) => ({
    frames: c.frames.map(describeFrame).map((f) => f.replaceAll(tag, '$')),
    closed: c.isClosed,
  }));
  for (const c of clients.values()) c.destroy();
  return seen;
}

/**
 * STOMP orders frames of one kind (the MESSAGEs of a subscription, the
 * RECEIPTs), not a RECEIPT against a MESSAGE another frame caused: RabbitMQ
 * routes asynchronously. So each command's frames are compared in order.
 */
function grouped(seen: Seen[]): Seen[] {
  return seen.map(({ frames, closed }) => ({
    closed,
    frames: ['CONNECTED', 'RECEIPT', 'MESSAGE', 'ERROR'].flatMap((cmd) =>
      frames.filter((f) => f.startsWith(`${cmd} `)),
    ),
  }));
}

const CONVERSATIONS: Conversation[] = [
  {
    name: 'topic fan-out keeps content-type and user headers',
    clients: ['a', 'b'],
    steps: [
      { by: 'a', send: 'SUBSCRIBE\nid:s1\ndestination:/topic/news-$\nreceipt:a1\n\n\0' },
      { by: 'a', receipt: 'a1' },
      { by: 'b', send: 'SUBSCRIBE\nid:s2\ndestination:/topic/news-$\nreceipt:b1\n\n\0' },
      { by: 'b', receipt: 'b1' },
      {
        by: 'a',
        send: 'SEND\ndestination:/topic/news-$\ncontent-type:text/plain\nx-app:demo\nreceipt:a2\n\nhello\0',
      },
      { by: 'a', receipt: 'a2' },
      { by: 'a', messages: 1 },
      { by: 'b', messages: 1 },
    ],
  },
  {
    name: 'a queue round-robins between two consumers',
    clients: ['a', 'b', 'p'],
    steps: [
      { by: 'a', send: 'SUBSCRIBE\nid:1\ndestination:/queue/work-$\nreceipt:a1\n\n\0' },
      { by: 'a', receipt: 'a1' },
      { by: 'b', send: 'SUBSCRIBE\nid:1\ndestination:/queue/work-$\nreceipt:b1\n\n\0' },
      { by: 'b', receipt: 'b1' },
      ...[0, 1, 2, 3].map((i) => ({
        by: 'p',
        send: `SEND\ndestination:/queue/work-$\nreceipt:p${i}\n\nm${i}\0`,
      })),
      { by: 'p', receipt: 'p3' },
      { by: 'a', messages: 2 },
      { by: 'b', messages: 2 },
    ],
  },
  {
    name: 'a NACKed queue message comes back redelivered',
    clients: ['a'],
    steps: [
      {
        by: 'a',
        send: 'SUBSCRIBE\nid:1\ndestination:/queue/nack-$\nack:client-individual\nreceipt:a1\n\n\0',
      },
      { by: 'a', receipt: 'a1' },
      { by: 'a', send: 'SEND\ndestination:/queue/nack-$\n\njob\0' },
      { by: 'a', messages: 1 },
      { by: 'a', ackLast: 'NACK', index: 0 },
      { by: 'a', messages: 2 },
      { by: 'a', ackLast: 'ACK', index: 1 },
    ],
  },
  {
    name: 'unacknowledged messages of a consumer that leaves go to the next one',
    clients: ['a', 'b'],
    steps: [
      {
        by: 'a',
        send: 'SUBSCRIBE\nid:1\ndestination:/queue/leave-$\nack:client\nreceipt:a1\n\n\0',
      },
      { by: 'a', receipt: 'a1' },
      {
        by: 'a',
        send: 'SEND\ndestination:/queue/leave-$\n\nm1\0SEND\ndestination:/queue/leave-$\n\nm2\0',
      },
      { by: 'a', messages: 2 },
      { by: 'a', ackLast: 'ACK', index: 0 },
      { by: 'a', send: 'DISCONNECT\nreceipt:bye\n\n\0' },
      { by: 'a', closed: true },
      { by: 'b', send: 'SUBSCRIBE\nid:1\ndestination:/queue/leave-$\nack:auto\n\n\0' },
      { by: 'b', messages: 1 },
    ],
    difference: {
      why: 'RabbitMQ Web-STOMP closes without the RECEIPT a DISCONNECT asked for; STOMP 1.2 "DISCONNECT" requires it',
      adjust: ([a, b]) => [
        { ...(a as Seen), frames: [...(a as Seen).frames, 'RECEIPT receipt-id=bye ||'] },
        b as Seen,
      ],
    },
  },
  {
    name: 'a transaction delivers on COMMIT and drops on ABORT',
    clients: ['a'],
    steps: [
      { by: 'a', send: 'SUBSCRIBE\nid:1\ndestination:/topic/tx-$\nreceipt:a1\n\n\0' },
      { by: 'a', receipt: 'a1' },
      {
        by: 'a',
        send: 'BEGIN\ntransaction:t1\n\n\0SEND\ndestination:/topic/tx-$\ntransaction:t1\n\ndropped\0ABORT\ntransaction:t1\nreceipt:ab\n\n\0',
      },
      { by: 'a', receipt: 'ab' },
      {
        by: 'a',
        send: 'BEGIN\ntransaction:t2\n\n\0SEND\ndestination:/topic/tx-$\ntransaction:t2\n\nkept\0COMMIT\ntransaction:t2\nreceipt:co\n\n\0',
      },
      { by: 'a', receipt: 'co' },
      { by: 'a', messages: 1 },
    ],
  },
  {
    name: 'DISCONNECT answers its receipt, then closes',
    clients: ['a'],
    steps: [
      { by: 'a', send: 'DISCONNECT\nreceipt:bye-1\n\n\0' },
      { by: 'a', closed: true },
    ],
    difference: {
      why: 'RabbitMQ Web-STOMP closes without the RECEIPT a DISCONNECT asked for; STOMP 1.2 "DISCONNECT" requires it',
      adjust: ([a]) => [
        { ...(a as Seen), frames: [...(a as Seen).frames, 'RECEIPT receipt-id=bye-1 ||'] },
      ],
    },
  },
  {
    name: 'a SEND without destination gets ERROR with the receipt-id, then the close',
    clients: ['a'],
    steps: [
      { by: 'a', send: 'SEND\nreceipt:77\n\nlost\0' },
      { by: 'a', closed: true },
    ],
    difference: {
      why: 'RabbitMQ keeps the connection open after this ERROR and leaves out receipt-id; STOMP 1.2 "ERROR" says the server closes after it and includes receipt-id when the frame asked for a receipt',
      adjust: () => [{ closed: true, frames: ['CONNECTED version=1.2', 'ERROR receipt-id=77'] }],
    },
  },
];

describe.skipIf(!rabbitUp)('differential: stompbus vs RabbitMQ Web-STOMP', () => {
  it.each(CONVERSATIONS)('$name', async (conversation) => {
    const server = await startServer();
    const tag = Math.random().toString(36).slice(2, 10);
    const ours = await run(server.url, conversation, tag);
    const theirs = await run(RABBIT_URL, conversation, tag);
    const expected = conversation.difference ? conversation.difference.adjust(theirs) : theirs;
    expect(grouped(ours)).toEqual(grouped(expected));
    if (conversation.difference) {
      // The difference is real: RabbitMQ does not already behave like stompbus.
      expect(grouped(theirs)).not.toEqual(grouped(ours));
    }
  });
});
