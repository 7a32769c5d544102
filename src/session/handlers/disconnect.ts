import type { Frame } from '../../frame/frame.js';
import type { SessionApi } from '../api.js';

/**
 * DISCONNECT (STOMP 1.2 "DISCONNECT"). The session sends the RECEIPT, if
 * asked for, after every earlier one, then flushes and closes. Its RECEIPT
 * means every earlier frame was processed: in cluster mode it also waits
 * until what this session's `auto` subscriptions consumed of user queues is
 * recorded in Kafka (an ERROR when it could not be).
 */
export function disconnect(session: SessionApi, _frame: Frame): void | Promise<void> {
  return session.recorded();
}
