import { subscribable } from '../../broker/destination.js';
import { parsePosition, RESUME_HEADER } from '../../broker/message.js';
import type { AckMode } from '../../broker/subscription.js';
import { StompError } from '../../errors.js';
import type { Header } from '../../frame/frame.js';
import { type Frame, getHeader } from '../../frame/frame.js';
import type { HandlerResult, SessionApi } from '../api.js';
import { integerHeader, required } from './util.js';

const ACK_MODES: readonly string[] = ['auto', 'client', 'client-individual'];

/** The SUBSCRIBE header asking for the retained messages after a position (docs/users-and-resume.md). */
export const RESUME_AFTER_HEADER = 'x-resume-after';

/**
 * SUBSCRIBE (STOMP 1.2 "SUBSCRIBE"): `destination` and `id` are required
 * (1.0 clients may leave out `id`; the destination stands in for it), `ack`
 * defaults to auto, and `prefetch-count` (as in RabbitMQ) bounds the
 * unacknowledged messages a queue gives this subscription. User destinations
 * (`/user/queue/x`) bind to the session's login; `x-resume-after` replays
 * what a topic retained after a position.
 */
export function subscribe(session: SessionApi, frame: Frame): HandlerResult {
  const destination = required(frame, 'destination');
  const id =
    session.version === '1.0' ? (getHeader(frame, 'id') ?? destination) : required(frame, 'id');
  const ack = getHeader(frame, 'ack') ?? 'auto';
  if (!ACK_MODES.includes(ack))
    throw new StompError('STOMP_ERR_INVALID_HEADER', { detail: `ack:${ack}` });
  const prefetch = integerHeader(frame, 'prefetch-count', 0);
  const target = subscribable(destination, session.user);
  if (!target.ok) {
    if (target.reason === 'invalid') {
      throw new StompError('STOMP_ERR_INVALID_DESTINATION', { detail: destination });
    }
    throw new StompError('STOMP_ERR_FORBIDDEN', {
      detail:
        target.reason === 'no-login'
          ? `${destination} needs a login (user destinations belong to the connected user)`
          : `${destination} names a user; subscribe to /user/queue/… or /user/topic/… instead`,
    });
  }
  const resumeToken = getHeader(frame, RESUME_AFTER_HEADER);
  const resumeAfter = resumeToken === undefined ? undefined : parsePosition(resumeToken);
  // Queues and user queues hand out what waits anyway: only topics resume.
  const resumable = session.router.resumable(target.destination);
  if (resumeToken !== undefined && (!resumeAfter || !resumable)) {
    throw new StompError('STOMP_ERR_INVALID_HEADER', {
      detail: `${RESUME_AFTER_HEADER}:${resumeToken} (a position from a topic MESSAGE)`,
    });
  }
  if (session.subscriptions.has(id)) {
    throw new StompError('STOMP_ERR_DUPLICATE_SUBSCRIPTION', { detail: `id:${id}` });
  }
  if (session.subscriptions.size >= session.options.maxSubscriptions) {
    throw new StompError('STOMP_ERR_TOO_MANY_SUBSCRIPTIONS', {
      detail: `limit ${session.options.maxSubscriptions}`,
    });
  }
  const spec = { id, destination: target.destination, ackMode: ack as AckMode, prefetch };
  const subscribe = () => {
    const replay = session.subscribe(spec, resumeAfter);
    const headers: Header[] = [[RESUME_HEADER, replay?.complete ? 'complete' : 'incomplete']];
    return replay ? headers : undefined;
  };
  return session.authorized('read', target.destination, frame.headers, () => {
    // Cluster interest: the destination's messages must reach this instance
    // (and a resume's be read back) before the subscription is made, so
    // that a SEND after the RECEIPT reaches it; the frames behind wait too.
    const reached = session.router.reach(target.destination, resumeAfter);
    if (!reached) return subscribe();
    const subscribed = reached.then(() => (session.connected ? subscribe() : undefined));
    session.holdUntil(subscribed, false);
    return subscribed;
  });
}

/** UNSUBSCRIBE (STOMP 1.2 "UNSUBSCRIBE"): by `id` (1.0: `id` or `destination`). */
export function unsubscribe(session: SessionApi, frame: Frame): void {
  const id =
    session.version === '1.0'
      ? (getHeader(frame, 'id') ?? required(frame, 'destination'))
      : required(frame, 'id');
  if (!session.unsubscribe(id)) {
    throw new StompError('STOMP_ERR_UNKNOWN_SUBSCRIPTION', { detail: `id:${id}` });
  }
}
