import { StompError } from '../../errors.js';
import { type Frame, getHeader } from '../../frame/frame.js';
import type { SessionApi } from '../api.js';

/** The value of a header the command requires; a coded error when it is missing. */
export function required(frame: Frame, name: string): string {
  const value = getHeader(frame, name);
  if (value === undefined) {
    throw new StompError('STOMP_ERR_MISSING_HEADER', { detail: `${frame.command} needs ${name}` });
  }
  return value;
}

/** A non-negative integer header; `fallback` when absent, a coded error when malformed. */
export function integerHeader(frame: Frame, name: string, fallback: number): number {
  const value = getHeader(frame, name);
  if (value === undefined) return fallback;
  if (!/^[0-9]{1,9}$/.test(value)) {
    throw new StompError('STOMP_ERR_INVALID_HEADER', { detail: `${name}:${value}` });
  }
  return Number(value);
}

/**
 * Puts a SEND, ACK or NACK that names a transaction into it (STOMP 1.2
 * "BEGIN"). Returns false when the frame names no transaction.
 */
export function bufferInTransaction(session: SessionApi, frame: Frame): boolean {
  const tx = getHeader(frame, 'transaction');
  if (tx === undefined) return false;
  const frames = session.transaction(tx);
  if (!frames) throw new StompError('STOMP_ERR_UNKNOWN_TRANSACTION', { detail: tx });
  if (frames.length >= session.options.maxTransactionFrames) {
    throw new StompError('STOMP_ERR_TRANSACTION_TOO_LARGE', {
      detail: `limit ${session.options.maxTransactionFrames} frames`,
    });
  }
  frames.push(frame);
  return true;
}
