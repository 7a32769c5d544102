import { describe, expect, it } from 'vitest';
import { StompError } from '../../src/errors.js';
import { createFrame, encodeFrame, getHeader } from '../../src/frame/index.js';
import { chunked, parseChunks, plain } from '../helpers/parse.js';
import { type ExpectedFrame, type Fixture, INVALID, VALID } from './fixtures.js';

const bytesOf = (wire: string | number[]) =>
  typeof wire === 'string' ? Buffer.from(wire, 'utf8') : Buffer.from(wire);

const expectedEvents = (fixture: Fixture) =>
  fixture.events.map((e) =>
    e === 'heartbeat'
      ? e
      : { command: e.command, headers: e.headers, body: Array.from(bytesOf(e.body ?? '')) },
  );

const toFrame = (e: ExpectedFrame) => createFrame(e.command, e.headers, bytesOf(e.body ?? ''));

describe('frame fixtures: parse', () => {
  it.each(VALID)('parses $name', (fixture) => {
    const events = parseChunks([bytesOf(fixture.wire)], { escapes: fixture.escapes });
    expect(plain(events)).toEqual(expectedEvents(fixture));
  });

  it.each(VALID)('parses $name one byte at a time', (fixture) => {
    const events = parseChunks(chunked(bytesOf(fixture.wire), 1), { escapes: fixture.escapes });
    expect(plain(events)).toEqual(expectedEvents(fixture));
  });
});

describe('frame fixtures: encode', () => {
  const mirrored = VALID.filter((f) => f.mirror);

  it.each(mirrored)('encodes $name to the same bytes', (fixture) => {
    const frames = fixture.events.filter((e) => e !== 'heartbeat') as ExpectedFrame[];
    const wire = Buffer.concat(frames.map((e) => encodeFrame(toFrame(e), fixture.escapes)));
    expect(wire.toString('latin1')).toBe(bytesOf(fixture.wire).toString('latin1'));
  });

  it.each(mirrored)('mirrors $name: parse then encode gives the input back', (fixture) => {
    const events = parseChunks([bytesOf(fixture.wire)], { escapes: fixture.escapes });
    const wire = Buffer.concat(
      events.map((e) => {
        if (e === 'heartbeat') return Buffer.from('\n');
        if (e instanceof StompError) throw e;
        return encodeFrame(e, fixture.escapes);
      }),
    );
    expect(wire.equals(bytesOf(fixture.wire))).toBe(true);
  });
});

describe('frame fixtures: errors', () => {
  it.each(INVALID)('reports $code for $name', ({ wire, frames, code, limits }) => {
    for (const chunks of [[Buffer.from(wire)], chunked(Buffer.from(wire), 1)]) {
      const events = parseChunks(chunks, limits);
      const errors = events.filter((e) => e instanceof StompError);
      expect(errors).toHaveLength(1);
      expect((errors[0] as StompError).code).toBe(code);
      expect(events.at(-1)).toBe(errors[0]);
      expect(
        events.filter((e) => typeof e === 'object' && !(e instanceof StompError)),
      ).toHaveLength(frames);
    }
  });

  it('ignores everything after the first error', () => {
    const events = parseChunks([
      Buffer.from('BOGUS\n\n\0'),
      Buffer.from('SEND\ndestination:/a\n\n\0'),
      Buffer.from('\n\n'),
    ]);
    expect(plain(events)).toEqual([{ error: 'STOMP_ERR_INVALID_COMMAND' }]);
  });

  it('reports an unknown command at its EOL, before the rest of the frame arrives', () => {
    expect(plain(parseChunks([Buffer.from('GARBAGE\n')]))).toEqual([
      { error: 'STOMP_ERR_INVALID_COMMAND' },
    ]);
  });

  it('accepts only the commands it is given', () => {
    const events = parseChunks([Buffer.from('MESSAGE\n\n\0')], { commands: ['SEND'] });
    expect(plain(events)).toEqual([{ error: 'STOMP_ERR_INVALID_COMMAND' }]);
  });
});

describe('encodeFrame', () => {
  it('writes content-length for every non-empty body', () => {
    const wire = encodeFrame(createFrame('SEND', { destination: '/a' }, 'abc'));
    expect(wire.toString()).toBe('SEND\ndestination:/a\ncontent-length:3\n\nabc\0');
  });

  it('corrects a wrong content-length instead of trusting it', () => {
    const wire = encodeFrame(createFrame('SEND', [['content-length', '99']], 'ab'));
    expect(wire.toString()).toBe('SEND\ncontent-length:2\n\nab\0');
  });

  it('does not escape CONNECTED headers', () => {
    const wire = encodeFrame(createFrame('CONNECTED', { server: 'stompbus/1:x' }));
    expect(wire.toString()).toBe('CONNECTED\nserver:stompbus/1:x\n\n\0');
  });

  it('escapes \\r only from STOMP 1.2 on', () => {
    const frame = createFrame('MESSAGE', { a: 'x\ry' });
    expect(encodeFrame(frame, '1.2').toString()).toBe('MESSAGE\na:x\\ry\n\n\0');
    expect(encodeFrame(frame, '1.1').toString()).toBe('MESSAGE\na:x\ry\n\n\0');
  });

  it('cannot be made to inject headers or body text where headers are not escaped', () => {
    const frame = createFrame('MESSAGE', [['x', 'a\n\nEVIL\r']], 'hi');
    const [parsed] = parseChunks([encodeFrame(frame, '1.0')], { escapes: '1.0' });
    expect(plain([parsed!])).toEqual([
      {
        command: 'MESSAGE',
        headers: [
          ['x', 'a  EVIL '],
          ['content-length', '2'],
        ],
        body: [104, 105],
      },
    ]);
    const connected = encodeFrame(createFrame('CONNECTED', { server: 'x\ncontent-length:0' }));
    expect(connected.toString()).toBe('CONNECTED\nserver:x content-length:0\n\n\0');
  });

  it('round-trips a 64 KiB binary body split into TCP-sized chunks', () => {
    const body = Buffer.alloc(65536, 0);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const wire = encodeFrame(createFrame('SEND', { destination: '/a' }, body));
    const [frame] = parseChunks(chunked(wire, 1400));
    expect(Buffer.from((frame as { body: Uint8Array }).body).equals(body)).toBe(true);
  });
});

describe('getHeader', () => {
  it('returns the first of repeated headers', () => {
    const frame = createFrame('MESSAGE', [
      ['foo', 'World'],
      ['foo', 'Hello'],
    ]);
    expect(getHeader(frame, 'foo')).toBe('World');
    expect(getHeader(frame, 'bar')).toBeUndefined();
  });
});
