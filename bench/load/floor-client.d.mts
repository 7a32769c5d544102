/** Types of floor-client.mjs (plain JavaScript, shared with the ceiling's floor processes). */
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';

export declare const LOG_APPEND_TIME: Readonly<{ name: string; value: string }>;

export declare function startFloorConsumer(
  kafka: Kafka,
  options: {
    groupId: string;
    topic: string;
    autoCommit: boolean;
    eachBatch: (payload: EachBatchPayload) => Promise<void>;
  },
): Promise<Consumer>;

export interface FloorRecord {
  key: string;
  value: string | Buffer;
  headers: Record<string, string>;
}

export interface FloorQueue {
  offer(message: FloorRecord): void;
  settled(): Promise<void>;
}

export declare function floorQueue(
  producer: { sendBatch(batch: object): Promise<unknown> },
  topic: string,
  maxBatch: number,
  onFailed: (count: number, error: unknown) => void,
): FloorQueue;
