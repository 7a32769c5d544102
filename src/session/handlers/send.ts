import { destinationKind, destinationUser } from '../../broker/destination.js';
import { messageHeaders } from '../../broker/message.js';
import { StompError } from '../../errors.js';
import { type Frame, getHeader } from '../../frame/frame.js';
import type { Session } from '../session.js';
import { bufferInTransaction } from './transaction.js';
import { required } from './util.js';

/**
 * SEND (STOMP 1.2 "SEND"): to the broker, or into the named transaction.
 * Returns a promise when the broker must confirm asynchronously (Kafka); the
 * RECEIPT waits for it.
 */
export function send(session: Session, frame: Frame): void | Promise<void> {
  const destination = required(frame, 'destination');
  const kind = destinationKind(destination);
  if (!kind) throw new StompError('STOMP_ERR_INVALID_DESTINATION', { detail: destination });
  // With users configured, a user destination must name one of them: nobody
  // fills mailboxes for users that do not exist.
  const { users } = session.options;
  if ((kind === 'user-queue' || kind === 'user-topic') && users.size > 0) {
    if (!users.has(destinationUser(destination))) {
      throw new StompError('STOMP_ERR_INVALID_DESTINATION', {
        detail: `${destination}: no user ${JSON.stringify(destinationUser(destination))}`,
      });
    }
  }
  if (bufferInTransaction(session, frame)) return;
  return session.broker.send(destination, messageHeaders(frame.headers), frame.body);
}

/** SEND as replayed by COMMIT: the transaction header no longer applies. */
export function sendCommitted(session: Session, frame: Frame): void | Promise<void> {
  const destination = getHeader(frame, 'destination') as string;
  return session.broker.send(destination, messageHeaders(frame.headers), frame.body);
}
