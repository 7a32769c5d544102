import type { Frame } from '../../frame/frame.js';
import type { HandlerResult, SessionApi } from '../api.js';
import { ack, nack } from './ack.js';
import { connect } from './connect.js';
import { disconnect } from './disconnect.js';
import { send } from './send.js';
import { subscribe, unsubscribe } from './subscribe.js';
import { abort, begin, commit } from './transaction.js';

/**
 * A command handler: throws a coded error, or returns a promise the RECEIPT
 * waits for, or extra RECEIPT headers.
 */
export type Handler = (session: SessionApi, frame: Frame) => HandlerResult;

/** One handler per client command (STOMP 1.2 "Client Frames"). */
export const HANDLERS: Readonly<Record<string, Handler>> = {
  CONNECT: connect,
  STOMP: connect,
  SEND: send,
  SUBSCRIBE: subscribe,
  UNSUBSCRIBE: unsubscribe,
  ACK: ack,
  NACK: nack,
  BEGIN: begin,
  COMMIT: commit,
  ABORT: abort,
  DISCONNECT: disconnect,
};
