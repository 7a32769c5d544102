import { StompError } from '../../errors.js';
import { type Frame, getHeader } from '../../frame/frame.js';
import type { SessionApi } from '../api.js';

/** Versions spoken, best first. */
const VERSIONS = ['1.2', '1.1', '1.0'] as const;

/**
 * CONNECT and STOMP (STOMP 1.2 "Connecting"): version negotiation,
 * authentication (through the broker's `authenticate`, which may be
 * asynchronous: frames behind the CONNECT wait for it), heart-beat
 * negotiation, then CONNECTED.
 */
export function connect(session: SessionApi, frame: Frame): void {
  if (session.connected) throw new StompError('STOMP_ERR_ALREADY_CONNECTED');
  // STOMP 1.2 "Protocol Negotiation": no accept-version means STOMP 1.0.
  const offered = (getHeader(frame, 'accept-version') ?? '1.0').split(',');
  const version = VERSIONS.find((v) => offered.includes(v));
  if (!version) {
    // The ERROR must carry the versions the server supports.
    session.fail(new StompError('STOMP_ERR_UNSUPPORTED_VERSION'), undefined, [
      ['version', VERSIONS.join(',')],
    ]);
    return;
  }
  const [cx, cy] = parseHeartbeat(getHeader(frame, 'heart-beat'));
  const { heartbeat: offer, heartbeatMin } = session.options;
  const [sendEvery, expectEvery] = negotiateHeartbeat([cx, cy], offer, heartbeatMin);
  const heartbeat: [string, string] = ['heart-beat', `${sendEvery},${expectEvery}`];
  const identity = session.authenticate(
    getHeader(frame, 'login'),
    getHeader(frame, 'passcode'),
    frame.headers,
  );
  if (identity instanceof Promise) {
    session.holdUntil(identity.then((id) => session.connectedAs(version, id, heartbeat)));
  } else {
    session.connectedAs(version, identity, heartbeat);
  }
}

/**
 * STOMP 1.2 "Heart-beating", each direction: none if either side says 0 for
 * it, else the larger of what one side can do and the other wants. The
 * server's side is its offer raised to the floor `min`, so that with the
 * default offer (the floor itself) a client gets the intervals it asks for,
 * down to the floor: RabbitMQ, which has no preference of its own, likewise
 * answers with the client's values raised to a floor (1 s there). Returns
 * `[server sends every, server expects every]` in ms.
 */
export function negotiateHeartbeat(
  [cx, cy]: readonly [number, number],
  [sx, sy]: readonly [number, number],
  min: number,
): [number, number] {
  const side = (server: number, client: number) =>
    server === 0 || client === 0 ? 0 : Math.max(server, client, min);
  return [side(sx, cy), side(sy, cx)];
}

function parseHeartbeat(value: string | undefined): [number, number] {
  if (value === undefined) return [0, 0];
  const match = /^([0-9]{1,9}),([0-9]{1,9})$/.exec(value);
  if (!match) throw new StompError('STOMP_ERR_INVALID_HEADER', { detail: `heart-beat:${value}` });
  return [Number(match[1]), Number(match[2])];
}
