/** stompbus public API. */
export { type ErrorCode, ErrorCodes, StompError, type StompErrorOptions } from './errors.js';
export * from './frame/index.js';
