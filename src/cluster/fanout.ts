import type { Message } from '../broker/message.js';

/**
 * The seam between "a SEND to a topic was accepted" and "deliver it to the
 * local subscribers". The embedded broker delivers in-process
 * ({@link LocalFanout}); cluster mode goes through Kafka so that every
 * instance delivers every message in one order.
 */
export interface Fanout {
  /** Starts the fan-out; `deliver` hands a message to this instance's subscribers. */
  start(deliver: (message: Message) => void): Promise<void>;
  /**
   * Publishes a topic message to every instance, this one included. Returns
   * (or resolves) once the message is safe, i.e. when a RECEIPT may be sent.
   */
  publish(message: Message): void | Promise<void>;
  /** Stops; queued work is flushed where possible. */
  stop(): Promise<void>;
}
