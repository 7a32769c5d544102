export { encodeFrame, HEARTBEAT } from './encoder.js';
export { commandEscapes, type EscapeMode, escapeHeader, unescapeHeader } from './escape.js';
export {
  bodyText,
  CLIENT_COMMANDS,
  createFrame,
  type Frame,
  getHeader,
  type Header,
  SERVER_COMMANDS,
} from './frame.js';
export { DEFAULT_FRAME_LIMITS, type FrameLimits } from './limits.js';
export { FrameParser, type FrameParserOptions } from './parser.js';
