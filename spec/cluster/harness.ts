/**
 * Real {@link KafkaFanout}s on one {@link MemoryKafka}, with sinks that keep
 * what they were given, for the unit specs of cluster mode.
 */

import type { Message, Outgoing } from '../../src/broker/message.js';
import type { FanoutSink } from '../../src/broker/seams.js';
import type { ProducedRecord } from '../../src/cluster/kafka-client.js';
import { KafkaFanout, type KafkaFanoutOptions } from '../../src/kafka.js';
import { LogCapture } from '../helpers/log.js';
import { MemoryKafka } from '../helpers/memory-kafka.js';

/** A broker as far as a fan-out sees it: keeps every call. */
export class Sink implements FanoutSink {
  readonly delivered: Message[] = [];
  readonly consumedIds: Array<readonly [string, string]> = [];
  /** Users with a session "here"; the registry reads it. */
  readonly users = new Set<string>();

  deliver(message: Message): void {
    this.delivered.push(message);
  }

  consumed(destination: string, messageId: string): void {
    this.consumedIds.push([destination, messageId]);
  }

  localUsers(): Iterable<string> {
    return this.users;
  }

  /** What was delivered for `destination`, in order. */
  on(destination: string): Message[] {
    return this.delivered.filter((m) => m.destination === destination);
  }
}

/** A started (or created) fan-out and its sink. */
export interface Instance {
  readonly fanout: KafkaFanout;
  readonly sink: Sink;
}

let clusters = 0;

/** One memory Kafka, one cluster topic, the fan-outs on it and their log lines. */
export class Harness {
  readonly kafka = new MemoryKafka();
  readonly topic = `spec-${++clusters}`;
  /** Every log line of every fan-out. */
  readonly log = new LogCapture();
  private readonly fanouts: KafkaFanout[] = [];

  /** Every log line of every fan-out at info and above, `level: message`. */
  get lines(): string[] {
    return this.log.texts;
  }

  /** A fan-out on this cluster with quick retries, not started. */
  create(options: Partial<KafkaFanoutOptions> = {}): Instance {
    const fanout = new KafkaFanout({
      brokers: 'memory:9092',
      client: this.kafka,
      topic: this.topic,
      partitions: 3,
      retryInitialMs: 10,
      retryMaxMs: 50,
      startTimeoutMs: 2_000,
      stopTimeoutMs: 500,
      sendTimeoutMs: 2_000,
      // Long: a spec sees one announcement per instance unless it asks for more.
      presenceIntervalMs: 60_000,
      logger: this.log,
      ...options,
    });
    this.fanouts.push(fanout);
    return { fanout, sink: new Sink() };
  }

  /**
   * A started fan-out; when connected, also its first announcement is in
   * Kafka, so that no registry record is on its way during the spec.
   */
  async start(options: Partial<KafkaFanoutOptions> = {}): Promise<Instance> {
    const instance = this.create(options);
    await instance.fanout.start(instance.sink);
    if (instance.fanout.ready) {
      const presence = `${this.topic}.presence`;
      await until(() =>
        this.kafka.records(presence).some((r) => r.key?.toString() === instance.fanout.instanceId),
      );
    }
    return instance;
  }

  /** The produce requests with records for `topic` (default the cluster topic), those records only. */
  requestsTo(topic = this.topic): ProducedRecord[][] {
    return this.kafka.requests
      .map((request) => request.filter((r) => r.topic === topic))
      .filter((request) => request.length > 0);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.fanouts.map((f) => f.stop()));
  }
}

let ids = 0;

/** A SEND's message as the broker hands it to the bus. */
export function outgoing(
  destination: string,
  body = 'body',
  headers: ReadonlyArray<readonly [string, string]> = [],
): Outgoing {
  return {
    id: `m-${++ids}`,
    destination,
    headers: headers.map(([n, v]) => [n, v]),
    body: Buffer.from(body),
  };
}

/** Publishes and settles into 'ok' or the error's code (else its message). */
export function outcome(result: void | Promise<void>): Promise<string> {
  return Promise.resolve(result).then(
    () => 'ok',
    (error: { code?: string; message: string }) => error.code ?? error.message,
  );
}

/** Waits until `done()`; fails after `timeoutMs`. */
export async function until(done: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A message body as text. */
export function text(message: Message): string {
  return Buffer.from(message.body).toString();
}
