/** Types of floor-client.mjs (plain JavaScript, shared with the ceiling's floor processes). */
export declare const FLOOR_CONSUMER: Readonly<{
  sessionTimeout: number;
  heartbeatInterval: number;
  maxWaitTimeInMs: number;
  allowAutoTopicCreation: boolean;
}>;

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
