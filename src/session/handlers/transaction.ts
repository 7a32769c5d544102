import { StompError } from '../../errors.js';
import type { Frame } from '../../frame/frame.js';
import type { SessionApi } from '../api.js';
import { resolve, settle } from './ack.js';
import { sendCommitted } from './send.js';
import { required } from './util.js';

/** BEGIN: opens a transaction. */
export function begin(session: SessionApi, frame: Frame): void {
  const tx = required(frame, 'transaction');
  if (session.transaction(tx)) {
    throw new StompError('STOMP_ERR_DUPLICATE_TRANSACTION', { detail: tx });
  }
  if (session.transactionCount >= session.options.maxTransactions) {
    throw new StompError('STOMP_ERR_TOO_MANY_TRANSACTIONS', {
      detail: `limit ${session.options.maxTransactions}`,
    });
  }
  session.begin(tx);
}

/**
 * COMMIT: applies the buffered frames in order. Asynchronous confirmations
 * (Kafka: SENDs taken, consumption of acked user-queue messages recorded)
 * are collected so that the COMMIT's RECEIPT waits for all of them.
 */
export function commit(session: SessionApi, frame: Frame): void | Promise<void> {
  const tx = required(frame, 'transaction');
  const frames = session.endTransaction(tx);
  if (!frames) throw new StompError('STOMP_ERR_UNKNOWN_TRANSACTION', { detail: tx });
  // The transaction applies as a whole where it can: an ACK or NACK naming
  // nothing pending refuses the COMMIT before any of its frames is applied.
  // (A SEND to a queue that fills up meanwhile still fails halfway.)
  for (const f of frames) if (f.command !== 'SEND') resolve(session, f);
  const waits: Promise<void>[] = [];
  for (const f of frames) {
    const result =
      f.command === 'SEND' ? sendCommitted(session, f) : settle(session, f, f.command === 'ACK');
    if (result) waits.push(result);
  }
  if (waits.length > 0) return Promise.all(waits).then(() => undefined);
}

/** ABORT: discards the buffered frames. */
export function abort(session: SessionApi, frame: Frame): void {
  const tx = required(frame, 'transaction');
  if (!session.endTransaction(tx)) {
    throw new StompError('STOMP_ERR_UNKNOWN_TRANSACTION', { detail: tx });
  }
}
