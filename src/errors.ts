/**
 * The catalog of stompbus error codes. Every failure the broker reports to a
 * client names one of these codes in the ERROR frame's `message` header; the
 * error-code table of docs/protocol.md lists them all (a spec keeps the two in
 * step).
 */
export const ErrorCodes = {
  // Frame layer: the bytes a client sent are not a STOMP 1.2 frame.
  STOMP_ERR_INVALID_COMMAND: 'the frame starts with an unknown or malformed command',
  STOMP_ERR_MALFORMED_HEADER: 'a header line has no colon or an empty name',
  STOMP_ERR_INVALID_ESCAPE: 'a header uses an escape sequence that STOMP does not define',
  STOMP_ERR_INVALID_CONTENT_LENGTH: 'the content-length header is not a non-negative integer',
  STOMP_ERR_MISSING_NUL: 'the body announced by content-length is not followed by a NUL octet',
  STOMP_ERR_FRAME_TOO_LARGE: 'the frame is larger than the maximum frame size',
  STOMP_ERR_BODY_TOO_LARGE: 'the body is larger than the maximum body size',
  STOMP_ERR_TOO_MANY_HEADERS: 'the frame has more headers than allowed',
  STOMP_ERR_HEADER_LINE_TOO_LONG: 'a command or header line is longer than allowed',

  // Session: the frames are well formed but break the protocol's rules.
  STOMP_ERR_NOT_CONNECTED: 'a frame other than CONNECT or STOMP arrived before CONNECT',
  STOMP_ERR_ALREADY_CONNECTED: 'CONNECT arrived on a connection that is already connected',
  STOMP_ERR_CONNECT_TIMEOUT: 'no CONNECT frame arrived in time',
  STOMP_ERR_UNSUPPORTED_VERSION: 'the client accepts no protocol version this server speaks',
  STOMP_ERR_AUTH_FAILED: 'the login, passcode or token was refused',
  STOMP_ERR_FORBIDDEN:
    "the session may not use this destination: not granted, another user's, or it needs a login",
  STOMP_ERR_TOKEN_EXPIRED: 'the token the session logged in with has expired',
  STOMP_ERR_HEARTBEAT_TIMEOUT: 'the client fell silent beyond the negotiated heart-beat',
  STOMP_ERR_INVALID_HEADER: 'a header has a value the server cannot accept',
  STOMP_ERR_MISSING_HEADER: 'a required header is missing',
  STOMP_ERR_INVALID_DESTINATION:
    'the destination is none of /topic/..., /queue/... and the /user/... forms',
  STOMP_ERR_DUPLICATE_SUBSCRIPTION: 'the subscription id is already in use on this connection',
  STOMP_ERR_UNKNOWN_SUBSCRIPTION: 'no subscription has this id on this connection',
  STOMP_ERR_TOO_MANY_SUBSCRIPTIONS:
    'the connection has reached its maximum number of subscriptions',
  STOMP_ERR_UNKNOWN_ACK: 'no unacknowledged message has this id on this connection',
  STOMP_ERR_DUPLICATE_TRANSACTION: 'a transaction with this id is already open',
  STOMP_ERR_UNKNOWN_TRANSACTION: 'no open transaction has this id',
  STOMP_ERR_TRANSACTION_TOO_LARGE: 'the transaction holds more frames than allowed',
  STOMP_ERR_TOO_MANY_TRANSACTIONS: 'the connection has reached its maximum of open transactions',
  STOMP_ERR_QUEUE_FULL: 'the destination queue holds its maximum of messages',
  STOMP_ERR_SLOW_CONSUMER: 'the client reads too slowly: its unsent output passed the limit',
  STOMP_ERR_TOO_MANY_CONNECTIONS: 'the server, or this address, has its maximum of connections',
  STOMP_ERR_SHUTDOWN: 'the server is shutting down',
  STOMP_ERR_CLUSTER_UNAVAILABLE:
    'Kafka did not take the record (cluster mode): a message sent was not delivered, one consumed may come again',
  STOMP_ERR_INTERNAL: 'the server failed to handle the frame (a bug: please report it)',
} as const;

/** One of the `STOMP_ERR_*` codes. */
export type ErrorCode = keyof typeof ErrorCodes;

/** Options accepted by {@link StompError}. */
export interface StompErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** Extra text for the ERROR frame body (the code's description is used when absent). */
  detail?: string;
}

/**
 * The one error class of stompbus: a code from {@link ErrorCodes}, a human
 * readable message and an optional cause.
 */
export class StompError extends Error {
  /** The catalog code, e.g. `STOMP_ERR_FRAME_TOO_LARGE`. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, options: StompErrorOptions = {}) {
    super(options.detail ? `${ErrorCodes[code]}: ${options.detail}` : ErrorCodes[code], {
      cause: options.cause,
    });
    this.name = 'StompError';
    this.code = code;
  }
}
