import { destinationKind, destinationUser } from '../../broker/destination.js';
import { messageHeaders } from '../../broker/message.js';
import { StompError } from '../../errors.js';
import { type Frame, getHeader } from '../../frame/frame.js';
import type { SessionApi } from '../api.js';
import { bufferInTransaction, required } from './util.js';

/**
 * SEND (STOMP 1.2 "SEND"): to the router, or into the named transaction.
 * Returns a promise when the message is confirmed asynchronously (Kafka);
 * the RECEIPT waits for it.
 */
export function send(session: SessionApi, frame: Frame): void | Promise<void> {
  const destination = required(frame, 'destination');
  if (!destinationKind(destination)) {
    throw new StompError('STOMP_ERR_INVALID_DESTINATION', { detail: destination });
  }
  // A user destination must name a user the broker knows (when it knows
  // its users): nobody fills mailboxes for users that do not exist.
  if (destination.startsWith('/user/') && !session.knowsUser(destinationUser(destination))) {
    throw new StompError('STOMP_ERR_INVALID_DESTINATION', {
      detail: `${destination}: no user ${JSON.stringify(destinationUser(destination))}`,
    });
  }
  // Refused SENDs never reach a transaction or the router: nothing of them is delivered.
  return session.authorized('write', destination, frame.headers, () => {
    if (bufferInTransaction(session, frame)) return;
    return session.router.send(destination, messageHeaders(frame.headers), frame.body);
  });
}

/** SEND as replayed by COMMIT: the transaction header no longer applies. */
export function sendCommitted(session: SessionApi, frame: Frame): void | Promise<void> {
  const destination = getHeader(frame, 'destination') as string;
  return session.router.send(destination, messageHeaders(frame.headers), frame.body);
}
