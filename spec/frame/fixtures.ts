import type { ErrorCode } from '../../src/errors.js';
import type { Header } from '../../src/frame/index.js';

/** An expected frame: command, headers, body as text or bytes. */
export interface ExpectedFrame {
  command: string;
  headers: Header[];
  body?: string | number[];
}

/** One wire fixture: its bytes and what parsing them yields. */
export interface Fixture {
  name: string;
  wire: string | number[];
  /** Frames and heart-beats expected, in order. */
  events: Array<ExpectedFrame | 'heartbeat'>;
  /** True when encoding the frames gives back exactly `wire`. */
  mirror: boolean;
  /** Escape mode in force, when not 1.2. */
  escapes?: '1.0' | '1.1';
}

/** Fixtures of valid input, tested by parse, encode and mirror. */
export const VALID: Fixture[] = [
  {
    // STOMP 1.2 "CONNECT or STOMP Frame" example.
    name: 'the CONNECT example of the specification',
    wire: 'CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0',
    events: [
      {
        command: 'CONNECT',
        headers: [
          ['accept-version', '1.2'],
          ['host', 'stomp.github.org'],
        ],
      },
    ],
    mirror: true,
  },
  {
    // STOMP 1.2 "Connected Frame" example.
    name: 'the CONNECTED example of the specification',
    wire: 'CONNECTED\nversion:1.2\n\n\0',
    events: [{ command: 'CONNECTED', headers: [['version', '1.2']] }],
    mirror: true,
  },
  {
    // STOMP 1.2 "SEND" example, with the content-length the encoder writes.
    name: 'the SEND example of the specification',
    wire: 'SEND\ndestination:/queue/a\ncontent-type:text/plain\ncontent-length:13\n\nhello queue a\0',
    events: [
      {
        command: 'SEND',
        headers: [
          ['destination', '/queue/a'],
          ['content-type', 'text/plain'],
          ['content-length', '13'],
        ],
        body: 'hello queue a',
      },
    ],
    mirror: true,
  },
  {
    name: 'a body without content-length, ending at the first NUL',
    wire: 'SEND\ndestination:/queue/a\n\nhello queue a\0',
    events: [{ command: 'SEND', headers: [['destination', '/queue/a']], body: 'hello queue a' }],
    mirror: false,
  },
  {
    // STOMP 1.2 "SUBSCRIBE" / "ACK" / "Transactions" examples.
    name: 'the SUBSCRIBE, BEGIN, ACK, COMMIT examples in one batch',
    wire: 'SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0BEGIN\ntransaction:tx1\n\n\0ACK\nid:12345\ntransaction:tx1\n\n\0COMMIT\ntransaction:tx1\n\n\0',
    events: [
      {
        command: 'SUBSCRIBE',
        headers: [
          ['id', '0'],
          ['destination', '/queue/foo'],
          ['ack', 'client'],
        ],
      },
      { command: 'BEGIN', headers: [['transaction', 'tx1']] },
      {
        command: 'ACK',
        headers: [
          ['id', '12345'],
          ['transaction', 'tx1'],
        ],
      },
      { command: 'COMMIT', headers: [['transaction', 'tx1']] },
    ],
    mirror: true,
  },
  {
    // STOMP 1.2 "STOMP Frames": lines may end in CR LF.
    name: 'a frame whose lines end in CR LF',
    wire: 'SEND\r\ndestination:/queue/a\r\nreceipt:77\r\n\r\nhi\0',
    events: [
      {
        command: 'SEND',
        headers: [
          ['destination', '/queue/a'],
          ['receipt', '77'],
        ],
        body: 'hi',
      },
    ],
    mirror: false,
  },
  {
    name: 'a counted body that contains NUL octets',
    wire: [...Buffer.from('MESSAGE\ncontent-length:5\n\n'), 1, 0, 2, 0, 3, 0],
    events: [{ command: 'MESSAGE', headers: [['content-length', '5']], body: [1, 0, 2, 0, 3] }],
    mirror: true,
  },
  {
    // STOMP 1.2 "Value Encoding": \r \n \c \\ are decoded in names and values.
    name: 'the four escapes in a header name and value',
    wire: 'MESSAGE\na\\cb\\\\c:x\\ny\\rz\\cw\\\\\n\n\0',
    events: [{ command: 'MESSAGE', headers: [['a:b\\c', 'x\ny\rz:w\\']] }],
    mirror: true,
  },
  {
    name: 'non-ASCII header text and body',
    wire: 'SEND\ndestination:/topic/чат\nemoji:☃ 🎉\ncontent-length:12\n\nпривет\0',
    events: [
      {
        command: 'SEND',
        headers: [
          ['destination', '/topic/чат'],
          ['emoji', '☃ 🎉'],
          ['content-length', '12'],
        ],
        body: 'привет',
      },
    ],
    mirror: true,
  },
  {
    // STOMP 1.2 "Value Encoding": CONNECT and CONNECTED are never escaped.
    name: 'a CONNECT whose passcode contains a backslash and a colon, taken literally',
    wire: 'CONNECT\nlogin:me\npasscode:a\\b:c\n\n\0',
    events: [
      {
        command: 'CONNECT',
        headers: [
          ['login', 'me'],
          ['passcode', 'a\\b:c'],
        ],
      },
    ],
    mirror: true,
  },
  {
    // STOMP 1.2 "Repeated Header Entries": all kept, the first one counts.
    name: 'repeated headers, kept in order',
    wire: 'MESSAGE\nfoo:World\nfoo:Hello\n\n\0',
    events: [
      {
        command: 'MESSAGE',
        headers: [
          ['foo', 'World'],
          ['foo', 'Hello'],
        ],
      },
    ],
    mirror: true,
  },
  {
    name: 'a repeated content-length: the first one sizes the body',
    wire: 'SEND\ncontent-length:3\ncontent-length:1\n\nabc\0',
    events: [
      {
        command: 'SEND',
        headers: [
          ['content-length', '3'],
          ['content-length', '1'],
        ],
        body: 'abc',
      },
    ],
    mirror: true,
  },
  {
    // STOMP 1.2 "Value Encoding": headers are not trimmed.
    name: 'header names and values with spaces, not trimmed',
    wire: 'SEND\n a : b \nempty:\n\n\0',
    events: [
      {
        command: 'SEND',
        headers: [
          [' a ', ' b '],
          ['empty', ''],
        ],
      },
    ],
    mirror: true,
  },
  {
    name: 'a raw colon in a value, split at the first colon',
    wire: 'SEND\nurl:http://x\n\n\0',
    events: [{ command: 'SEND', headers: [['url', 'http://x']] }],
    mirror: false,
  },
  {
    // STOMP 1.2 "Heart-beating": EOLs between frames.
    name: 'heart-beats before, between and after frames',
    wire: '\n\r\nDISCONNECT\n\n\0\n\n\r\nACK\nid:1\n\n\0\r\n',
    events: [
      'heartbeat',
      'heartbeat',
      { command: 'DISCONNECT', headers: [] },
      'heartbeat',
      'heartbeat',
      'heartbeat',
      { command: 'ACK', headers: [['id', '1']] },
      'heartbeat',
    ],
    mirror: false,
  },
  {
    name: 'a heart-beat stream alone',
    wire: '\n\n\n',
    events: ['heartbeat', 'heartbeat', 'heartbeat'],
    mirror: false,
  },
  {
    name: 'an empty counted body',
    wire: 'SEND\ndestination:/a\ncontent-length:0\n\n\0',
    events: [
      {
        command: 'SEND',
        headers: [
          ['destination', '/a'],
          ['content-length', '0'],
        ],
      },
    ],
    mirror: true,
  },
  {
    name: 'a STOMP 1.1 session: \\r is no escape, CR before LF still optional',
    wire: 'MESSAGE\na:x\\ny\\cz\n\n\0',
    events: [{ command: 'MESSAGE', headers: [['a', 'x\ny:z']] }],
    mirror: true,
    escapes: '1.1',
  },
  {
    name: 'a STOMP 1.0 session: backslashes are literal',
    wire: 'MESSAGE\na:x\\ty\\\n\n\0',
    events: [{ command: 'MESSAGE', headers: [['a', 'x\\ty\\']] }],
    mirror: true,
    escapes: '1.0',
  },
];

/** Fixtures of invalid input: what is parsed before the error, and its code. */
export const INVALID: Array<{
  name: string;
  wire: string;
  frames: number;
  code: ErrorCode;
  limits?: Record<string, number>;
}> = [
  { name: 'an unknown command', wire: 'HELLO\n\n\0', frames: 0, code: 'STOMP_ERR_INVALID_COMMAND' },
  {
    // STOMP 1.2 "STOMP Frames": commands are case sensitive.
    name: 'a lower-case command',
    wire: 'send\ndestination:/a\n\n\0',
    frames: 0,
    code: 'STOMP_ERR_INVALID_COMMAND',
  },
  {
    name: 'garbage after a valid frame',
    wire: 'SEND\ndestination:/a\n\nx\0\u0001\u0002garbage\n',
    frames: 1,
    code: 'STOMP_ERR_INVALID_COMMAND',
  },
  {
    name: 'a header line without a colon',
    wire: 'SEND\ndestination\n\n\0',
    frames: 0,
    code: 'STOMP_ERR_MALFORMED_HEADER',
  },
  {
    name: 'a header with an empty name',
    wire: 'SEND\n:value\n\n\0',
    frames: 0,
    code: 'STOMP_ERR_MALFORMED_HEADER',
  },
  {
    // STOMP 1.2 "Value Encoding": undefined escapes are a fatal protocol error.
    name: 'an undefined escape \\t',
    wire: 'SEND\ndestination:/a\\tb\n\n\0',
    frames: 0,
    code: 'STOMP_ERR_INVALID_ESCAPE',
  },
  {
    name: 'a backslash at the end of a value',
    wire: 'SEND\ndestination:/a\\\n\n\0',
    frames: 0,
    code: 'STOMP_ERR_INVALID_ESCAPE',
  },
  {
    name: 'a non-numeric content-length',
    wire: 'SEND\ncontent-length:12a\n\n\0',
    frames: 0,
    code: 'STOMP_ERR_INVALID_CONTENT_LENGTH',
  },
  {
    name: 'a negative content-length',
    wire: 'SEND\ncontent-length:-1\n\n\0',
    frames: 0,
    code: 'STOMP_ERR_INVALID_CONTENT_LENGTH',
  },
  {
    // STOMP 1.2 "Header content-length": the body must still end in NUL.
    name: 'a counted body not followed by NUL',
    wire: 'SEND\ncontent-length:2\n\nabc\0',
    frames: 0,
    code: 'STOMP_ERR_MISSING_NUL',
  },
  {
    name: 'a frame above maxFrameSize',
    wire: `SEND\ndestination:/a\n\n${'x'.repeat(200)}\0`,
    frames: 0,
    code: 'STOMP_ERR_FRAME_TOO_LARGE',
    limits: { maxFrameSize: 128 },
  },
  {
    name: 'a content-length above maxFrameSize, refused before the body arrives',
    wire: 'SEND\ncontent-length:1000\n\n',
    frames: 0,
    code: 'STOMP_ERR_FRAME_TOO_LARGE',
    limits: { maxFrameSize: 512 },
  },
  {
    name: 'a content-length above maxBodySize, refused before the body arrives',
    wire: 'SEND\ncontent-length:1000\n\n',
    frames: 0,
    code: 'STOMP_ERR_BODY_TOO_LARGE',
    limits: { maxBodySize: 100 },
  },
  {
    name: 'an uncounted body above maxBodySize',
    wire: `SEND\n\n${'x'.repeat(101)}`,
    frames: 0,
    code: 'STOMP_ERR_BODY_TOO_LARGE',
    limits: { maxBodySize: 100 },
  },
  {
    name: 'more headers than maxHeaders',
    wire: `SEND\n${'a:b\n'.repeat(5)}\n\0`,
    frames: 0,
    code: 'STOMP_ERR_TOO_MANY_HEADERS',
    limits: { maxHeaders: 4 },
  },
  {
    name: 'a header line above maxHeaderLineLength, refused before its EOL',
    wire: `SEND\na:${'b'.repeat(100)}`,
    frames: 0,
    code: 'STOMP_ERR_HEADER_LINE_TOO_LONG',
    limits: { maxHeaderLineLength: 64 },
  },
  {
    name: 'an endless command line',
    wire: 'S'.repeat(100),
    frames: 0,
    code: 'STOMP_ERR_HEADER_LINE_TOO_LONG',
    limits: { maxHeaderLineLength: 64 },
  },
];
