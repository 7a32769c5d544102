import type { StompServer } from '../../src/server.js';
import { plainProducer } from './cluster.js';
import { Inbox, stompClient } from './stomp-client.js';

/**
 * Waits until Kafka records of the bridged `kafkaTopic` reach a subscriber of
 * `destination` on every instance: then every instance's consumer is in its
 * group and its producer is connected. An instance started right after Kafka
 * itself may still be joining (it serves connections meanwhile); a test that
 * needs the Kafka path from its first message waits here first. Probe records
 * have the body `probe <n>`.
 */
export async function untilBridged(
  instances: StompServer[],
  kafkaTopic: string,
  destination: string,
  timeoutMs = 20_000,
): Promise<void> {
  const inboxes: Inbox[] = [];
  for (const server of instances) {
    const client = await stompClient(server.url);
    const inbox = new Inbox();
    const receipt = 'probe-subscribed';
    const subscribed = new Promise<void>((resolve) => client.watchForReceipt(receipt, resolve));
    client.subscribe(destination, inbox.take, { receipt });
    await subscribed;
    inboxes.push(inbox);
  }
  const producer = await plainProducer();
  const deadline = Date.now() + timeoutMs;
  for (let n = 0; ; n++) {
    const probe = `probe ${n}`;
    await producer.send({ topic: kafkaTopic, acks: -1, messages: [{ value: probe }] });
    // The latest probe everywhere: the bridged topic has one partition, so no
    // earlier probe is still on its way after this.
    const until = Date.now() + 500;
    const arrived = () => inboxes.every((inbox) => inbox.messages.some((m) => m.body === probe));
    while (!arrived() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    if (arrived()) return;
    if (Date.now() > deadline) {
      const counts = inboxes.map((inbox) => inbox.messages.length).join(', ');
      throw new Error(`probes on ${kafkaTopic} did not reach every instance (got ${counts})`);
    }
  }
}
