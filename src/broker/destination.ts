/**
 * Destination names. `/topic/…` fans out, `/queue/…` has competing consumers
 * (docs/protocol.md, "destinations"), as in RabbitMQ's STOMP plugin;
 * user destinations as in Spring and RabbitMQ Web-STOMP's conventions: a SEND
 * names the user (`/user/<name>/queue/<x>`), a SUBSCRIBE does not
 * (`/user/queue/<x>`) and binds to the session's own login.
 */

/** What a destination is, once resolved to its routing name. */
export type DestinationKind = 'topic' | 'queue' | 'user-topic' | 'user-queue';

const USER = '/user/';

/**
 * The kind of a routing name: `/topic/x`, `/queue/x`, or the user form a SEND
 * uses, `/user/<name>/topic/x` and `/user/<name>/queue/x`. Undefined for
 * anything else (including the `/user/queue/x` form of SUBSCRIBE).
 */
export function destinationKind(destination: string): DestinationKind | undefined {
  if (destination.startsWith('/topic/') && destination.length > 7) return 'topic';
  if (destination.startsWith('/queue/') && destination.length > 7) return 'queue';
  if (!destination.startsWith(USER)) return undefined;
  const slash = destination.indexOf('/', USER.length);
  if (slash <= USER.length) return undefined;
  const rest = destination.slice(slash);
  if (rest.startsWith('/topic/') && rest.length > 7) return 'user-topic';
  if (rest.startsWith('/queue/') && rest.length > 7) return 'user-queue';
  return undefined;
}

/** The user a user destination belongs to (`/user/<name>/…` gives `name`). */
export function destinationUser(destination: string): string {
  return destination.slice(USER.length, destination.indexOf('/', USER.length));
}

/**
 * The name a subscriber of a user destination sees on MESSAGE: what it
 * subscribed to, `/user/queue/x` for the routing name `/user/<name>/queue/x`.
 * Other destinations are shown as they are.
 */
export function shownDestination(destination: string): string {
  if (!destination.startsWith(USER)) return destination;
  const slash = destination.indexOf('/', USER.length);
  return slash < 0 ? destination : `/user${destination.slice(slash)}`;
}

/** Why a SUBSCRIBE destination cannot be served, or its routing name. */
export type Subscribable =
  | { readonly ok: true; readonly destination: string; readonly kind: DestinationKind }
  | { readonly ok: false; readonly reason: 'invalid' | 'no-login' | 'other-user' };

/**
 * Resolves a SUBSCRIBE destination. `/user/queue/x` and `/user/topic/x`
 * become the session's own `/user/<login>/…`; naming a user directly is
 * refused, so that nobody subscribes to another user's destinations.
 */
export function subscribable(destination: string, login: string | undefined): Subscribable {
  if (destination.startsWith(USER)) {
    const rest = destination.slice(USER.length - 1);
    const own = rest.startsWith('/queue/') || rest.startsWith('/topic/');
    if (!own || rest.length <= 7) {
      return destinationKind(destination)
        ? { ok: false, reason: 'other-user' }
        : { ok: false, reason: 'invalid' };
    }
    if (!login || login.includes('/')) return { ok: false, reason: 'no-login' };
    const routed = `${USER}${login}${rest}`;
    return { ok: true, destination: routed, kind: rest[1] === 'q' ? 'user-queue' : 'user-topic' };
  }
  const kind = destinationKind(destination);
  return kind ? { ok: true, destination, kind } : { ok: false, reason: 'invalid' };
}
