/**
 * The records of cluster-wide queues (docs/cluster-queues.md) on the queues
 * topic (`<topic>.queues`). Every record of one queue is keyed by the queue's
 * name, so one partition holds all of it, in one order: the messages sent to
 * it, its consumers coming and going, which consumer the partition's owner
 * gave each message to, and what the consumers did with them.
 */
import { messageHeaders, type Outgoing } from '../broker/message.js';
import type { Header } from '../frame/frame.js';
import type { ConsumedRecord, ProducedRecord } from './kafka-client.js';
import { partitionFor } from './partitioner.js';

/** The record header naming what a queues-topic record is. */
export const QUEUE_OP_HEADER = 'stompbus-queue-op';
/** On `send` and `assign` records: the broker's `message-id`. */
export const QUEUE_ID_HEADER = 'stompbus-queue-id';
/** On `assign` records: the consumer the message is given to. */
export const QUEUE_CONSUMER_HEADER = 'stompbus-queue-consumer';
/** On `assign` records: how many times the message has been given out, this time included. */
export const QUEUE_DELIVERIES_HEADER = 'stompbus-queue-deliveries';

/** Headers only this code writes on the queues topic; a SEND's own copies are dropped. */
const OWN = new Set([
  QUEUE_OP_HEADER,
  QUEUE_ID_HEADER,
  QUEUE_CONSUMER_HEADER,
  QUEUE_DELIVERIES_HEADER,
]);

/** A consumer as the owner knows it: its id, its instance and how many messages it may hold. */
export interface ConsumerInfo {
  readonly consumer: string;
  readonly instance: string;
  readonly queue: string;
  readonly credit: number;
}

/** What one queues-topic record says. */
export type QueueOp =
  | { readonly op: 'send'; readonly queue: string; readonly message: Outgoing }
  | {
      readonly op: 'assign';
      readonly queue: string;
      readonly consumer: string;
      readonly deliveries: number;
      readonly message: Outgoing;
    }
  | { readonly op: 'join'; readonly queue: string; readonly info: ConsumerInfo }
  | { readonly op: 'leave'; readonly queue: string; readonly consumer: string }
  | {
      readonly op: 'alive';
      readonly instance: string;
      /** Every consumer the instance has in the queues of this partition. */
      readonly consumers: readonly ConsumerInfo[];
    }
  | {
      readonly op: 'ack' | 'nack';
      readonly queue: string;
      readonly consumer: string;
      readonly ids: readonly string[];
    }
  | { readonly op: 'drop'; readonly queue: string; readonly ids: readonly string[] }
  | { readonly op: 'full'; readonly queue: string; readonly full: boolean };

const EMPTY = Buffer.alloc(0);

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** Encodes queue operations as records of one queues topic. */
export class QueueRecords {
  /** Per partition: a key that lands there (for the `alive` records, which name no queue). */
  private readonly partitionKeys: string[] = [];

  constructor(
    readonly topic: string,
    readonly partitions: number,
  ) {
    for (let p = 0, n = 0; p < partitions; p++) {
      let key = `#alive-${n}`;
      while (partitionFor(key, partitions) !== p) key = `#alive-${++n}`;
      this.partitionKeys.push(key);
    }
  }

  /** The partition a queue's records are in. */
  partitionOf(queue: string): number {
    return partitionFor(queue, this.partitions);
  }

  send(message: Outgoing): ProducedRecord {
    return this.messageRecord('send', message.destination, message, []);
  }

  assign(queue: string, consumer: string, deliveries: number, message: Outgoing): ProducedRecord {
    return this.messageRecord('assign', queue, message, [
      [QUEUE_CONSUMER_HEADER, consumer],
      [QUEUE_DELIVERIES_HEADER, String(deliveries)],
    ]);
  }

  join(info: ConsumerInfo): ProducedRecord {
    const { consumer, instance, credit } = info;
    return this.control('join', info.queue, { c: consumer, i: instance, credit });
  }

  leave(queue: string, consumer: string): ProducedRecord {
    return this.control('leave', queue, { c: consumer });
  }

  settle(
    queue: string,
    consumer: string,
    ids: readonly string[],
    consumed: boolean,
  ): ProducedRecord {
    return this.control(consumed ? 'ack' : 'nack', queue, { c: consumer, ids });
  }

  drop(queue: string, ids: readonly string[]): ProducedRecord {
    return this.control('drop', queue, { ids });
  }

  /** The owner says a queue is full (SENDs to it are refused everywhere) or no longer is. */
  full(queue: string, full: boolean): ProducedRecord {
    return this.control('full', queue, { full });
  }

  /** The instance's consumers in the queues of `partition` (its heart-beat there). */
  alive(partition: number, instance: string, consumers: readonly ConsumerInfo[]): ProducedRecord {
    const cs = consumers.map((c) => [c.consumer, c.queue, c.credit]);
    return {
      topic: this.topic,
      key: this.partitionKeys[partition] as string,
      value: json({ i: instance, cs }),
      headers: [[QUEUE_OP_HEADER, 'alive']],
    };
  }

  private messageRecord(
    op: 'send' | 'assign',
    queue: string,
    message: Outgoing,
    extra: Header[],
  ): ProducedRecord {
    const headers: Array<[string, string]> = [
      [QUEUE_OP_HEADER, op],
      [QUEUE_ID_HEADER, message.id],
    ];
    headers.push(...extra);
    for (const header of message.headers)
      if (!OWN.has(header[0])) headers.push([header[0], header[1]]);
    const { body } = message;
    return {
      topic: this.topic,
      key: queue,
      value: body.byteLength ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : EMPTY,
      headers,
    };
  }

  private control(op: string, queue: string, value: unknown): ProducedRecord {
    return { topic: this.topic, key: queue, value: json(value), headers: [[QUEUE_OP_HEADER, op]] };
  }
}

/** The operation a record's header names, without decoding the rest; undefined when none. */
export function opOf(record: ConsumedRecord): string | undefined {
  const first = record.headers[0];
  if (first && first[0] === QUEUE_OP_HEADER) return first[1].toString();
  for (const [name, value] of record.headers) if (name === QUEUE_OP_HEADER) return value.toString();
  return undefined;
}

/** On an `assign` record: the consumer it names (cheap: read before decoding the rest). */
export function assignedTo(record: ConsumedRecord): string | undefined {
  for (const [name, value] of record.headers) {
    if (name === QUEUE_CONSUMER_HEADER) return value.toString();
  }
  return undefined;
}

/** Decodes a queues-topic record; undefined for one that is not ours or is malformed. */
export function decodeQueueRecord(record: ConsumedRecord): QueueOp | undefined {
  const op = opOf(record);
  const queue = record.key?.toString() ?? '';
  try {
    switch (op) {
      case 'send':
      case 'assign': {
        let id: string | undefined;
        let consumer: string | undefined;
        let deliveries = 0;
        const headers: Header[] = [];
        for (const [name, raw] of record.headers) {
          const value = raw.toString();
          if (name === QUEUE_ID_HEADER) id = value;
          else if (name === QUEUE_CONSUMER_HEADER) consumer = value;
          else if (name === QUEUE_DELIVERIES_HEADER) deliveries = Number(value);
          else if (name !== QUEUE_OP_HEADER) headers.push([name, value]);
        }
        if (!id || !queue) return undefined;
        const message: Outgoing = {
          id,
          destination: queue,
          headers: messageHeaders(headers),
          body: record.value ? Buffer.from(record.value) : EMPTY,
        };
        if (op === 'send') return { op, queue, message };
        if (!consumer || !(deliveries >= 1)) return undefined;
        return { op, queue, consumer, deliveries, message };
      }
      case 'join': {
        const v = JSON.parse(String(record.value)) as { c: string; i: string; credit: number };
        return { op, queue, info: { consumer: v.c, instance: v.i, queue, credit: v.credit } };
      }
      case 'leave':
        return { op, queue, consumer: (JSON.parse(String(record.value)) as { c: string }).c };
      case 'ack':
      case 'nack': {
        const v = JSON.parse(String(record.value)) as { c: string; ids: string[] };
        return { op, queue, consumer: v.c, ids: v.ids };
      }
      case 'drop':
        return { op, queue, ids: (JSON.parse(String(record.value)) as { ids: string[] }).ids };
      case 'full':
        return { op, queue, full: (JSON.parse(String(record.value)) as { full: boolean }).full };
      case 'alive': {
        const v = JSON.parse(String(record.value)) as {
          i: string;
          cs: Array<[string, string, number]>;
        };
        const consumers = v.cs.map(([consumer, q, credit]) => ({
          consumer,
          instance: v.i,
          queue: q,
          credit,
        }));
        return { op, instance: v.i, consumers };
      }
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}
