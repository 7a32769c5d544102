/** Limits and policies of the destinations (one place for each default). */
export interface BrokerOptions {
  /** Most messages one queue holds (waiting, not yet delivered). Default 10,000. */
  maxQueueMessages: number;
  /** Deliveries of one message before it is dead-lettered. Default 5. */
  maxDeliveries: number;
  /** Where dead letters go; empty drops them. Default `/queue/DLQ`. */
  deadLetterQueue: string;
  /** Most unacknowledged messages one subscription may hold (topics; user queues before `prefetch-count`). Default 10,000. */
  maxPendingAcks: number;
  /** History kept per topic (and user topic) destination for resumes: most messages. Default 2,000. */
  historyMaxMessages: number;
  /** History kept per destination: oldest message, ms. Default 10 minutes. */
  historyMaxAgeMs: number;
  /** Messages kept per user for their user queues until consumed: most messages. Default 1,000. */
  offlineMaxMessages: number;
  /** Messages kept per user: oldest message, ms. Default 24 hours. */
  offlineMaxAgeMs: number;
}

/** The defaults of {@link BrokerOptions}. */
export const DEFAULT_BROKER_OPTIONS: Readonly<BrokerOptions> = Object.freeze({
  maxQueueMessages: 10_000,
  maxDeliveries: 5,
  deadLetterQueue: '/queue/DLQ',
  maxPendingAcks: 10_000,
  historyMaxMessages: 2_000,
  historyMaxAgeMs: 10 * 60_000,
  offlineMaxMessages: 1_000,
  offlineMaxAgeMs: 24 * 60 * 60_000,
});
