/**
 * The catalog of stompbus error codes. Every failure the broker reports to a
 * client names one of these codes in the ERROR frame's `message` header; the
 * README lists them all (a spec keeps the two in step).
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
