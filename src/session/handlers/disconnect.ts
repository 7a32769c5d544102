import type { Frame } from '../../frame/frame.js';
import type { SessionApi } from '../api.js';

/**
 * DISCONNECT (STOMP 1.2 "DISCONNECT"). Nothing to do here: the session sends
 * the RECEIPT, if asked for, after every earlier one, then flushes and closes.
 */
export function disconnect(_session: SessionApi, _frame: Frame): void {}
