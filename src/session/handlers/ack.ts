import type { Subscription } from '../../broker/subscription.js';
import { StompError } from '../../errors.js';
import { type Frame, getHeader } from '../../frame/frame.js';
import type { SessionApi } from '../api.js';
import { bufferInTransaction, required } from './util.js';

/**
 * ACK (STOMP 1.2 "ACK"), or into the named transaction. Returns a promise
 * when the consumption is recorded asynchronously (cluster mode): the
 * RECEIPT waits until it is durable, and a failure to record it is an ERROR.
 */
export function ack(session: SessionApi, frame: Frame): void | Promise<void> {
  if (bufferInTransaction(session, frame)) return;
  return settle(session, frame, true);
}

/** NACK (STOMP 1.2 "NACK"), or into the named transaction; a promise as for ACK (dead letters). */
export function nack(session: SessionApi, frame: Frame): void | Promise<void> {
  if (bufferInTransaction(session, frame)) return;
  return settle(session, frame, false);
}

/** Applies an ACK or NACK now (also when COMMIT replays one); a promise while it is recorded. */
export function settle(session: SessionApi, frame: Frame, positive: boolean): void | Promise<void> {
  const [sub, ackId] = resolve(session, frame);
  const done = positive ? session.router.ack(sub, ackId) : session.router.nack(sub, ackId);
  if (done === false) throw new StompError('STOMP_ERR_UNKNOWN_ACK', { detail: ackId });
  if (done !== true) return done;
}

/**
 * Finds the subscription and ack id an ACK or NACK names. STOMP 1.2 uses the
 * MESSAGE's `ack` header as `id`; 1.1 sends `message-id` and `subscription`;
 * 1.0 sends `message-id` (and maybe `subscription`).
 */
export function resolve(session: SessionApi, frame: Frame): [Subscription, string] {
  if (session.version === '1.2') {
    const id = required(frame, 'id');
    for (const sub of session.subscriptions.values()) {
      if (sub.unacked.has(id)) return [sub, id];
    }
    throw new StompError('STOMP_ERR_UNKNOWN_ACK', { detail: `id:${id}` });
  }
  const messageId = required(frame, 'message-id');
  const subId =
    session.version === '1.1' ? required(frame, 'subscription') : getHeader(frame, 'subscription');
  for (const sub of session.subscriptions.values()) {
    if (subId !== undefined && sub.id !== subId) continue;
    for (const [ackId, pending] of sub.unacked) {
      if (pending.message.id === messageId) return [sub, ackId];
    }
  }
  throw new StompError('STOMP_ERR_UNKNOWN_ACK', { detail: `message-id:${messageId}` });
}
