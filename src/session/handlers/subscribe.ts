import { destinationKind } from '../../broker/broker.js';
import { type AckMode, Subscription } from '../../broker/subscription.js';
import { StompError } from '../../errors.js';
import { type Frame, getHeader } from '../../frame/frame.js';
import type { Session } from '../session.js';
import { integerHeader, required } from './util.js';

const ACK_MODES: readonly string[] = ['auto', 'client', 'client-individual'];

/**
 * SUBSCRIBE (STOMP 1.2 "SUBSCRIBE"): `destination` and `id` are required
 * (1.0 clients may leave out `id`; the destination stands in for it), `ack`
 * defaults to auto, and `prefetch-count` (as in RabbitMQ) bounds the
 * unacknowledged messages a queue gives this subscription.
 */
export function subscribe(session: Session, frame: Frame): void {
  const destination = required(frame, 'destination');
  const id =
    session.version === '1.0' ? (getHeader(frame, 'id') ?? destination) : required(frame, 'id');
  const ack = getHeader(frame, 'ack') ?? 'auto';
  if (!ACK_MODES.includes(ack))
    throw new StompError('STOMP_ERR_INVALID_HEADER', { detail: `ack:${ack}` });
  const prefetch = integerHeader(frame, 'prefetch-count', 0);
  if (!destinationKind(destination)) {
    throw new StompError('STOMP_ERR_INVALID_DESTINATION', { detail: destination });
  }
  if (session.subscriptions.has(id)) {
    throw new StompError('STOMP_ERR_DUPLICATE_SUBSCRIPTION', { detail: `id:${id}` });
  }
  if (session.subscriptions.size >= session.options.maxSubscriptions) {
    throw new StompError('STOMP_ERR_TOO_MANY_SUBSCRIPTIONS', {
      detail: `limit ${session.options.maxSubscriptions}`,
    });
  }
  const sub = new Subscription(session, id, destination, ack as AckMode, prefetch);
  session.subscriptions.set(id, sub);
  session.broker.subscribe(sub);
}

/** UNSUBSCRIBE (STOMP 1.2 "UNSUBSCRIBE"): by `id` (1.0: `id` or `destination`). */
export function unsubscribe(session: Session, frame: Frame): void {
  const id =
    session.version === '1.0'
      ? (getHeader(frame, 'id') ?? required(frame, 'destination'))
      : required(frame, 'id');
  const sub = session.subscriptions.get(id);
  if (!sub) throw new StompError('STOMP_ERR_UNKNOWN_SUBSCRIPTION', { detail: `id:${id}` });
  session.subscriptions.delete(id);
  session.broker.unsubscribe(sub);
}
