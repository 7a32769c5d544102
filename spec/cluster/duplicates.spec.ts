import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Duplicates, SEQUENCE_WINDOW } from '../../src/cluster/duplicates.js';

describe('Duplicates', () => {
  it('knows an id seen recently in the same partition, and only there', () => {
    const d = new Duplicates();
    expect(d.repeated('t', 0, 'a-1')).toBe(false);
    expect(d.repeated('t', 0, 'a-2')).toBe(false);
    expect(d.repeated('t', 0, 'a-1')).toBe(true);
    expect(d.repeated('t', 1, 'a-1')).toBe(false);
    expect(d.repeated('u', 0, 'a-1')).toBe(false);
  });

  it('forgets the oldest ids past its window', () => {
    const d = new Duplicates(3);
    for (const id of ['1', '2', '3', '4']) expect(d.repeated('t', 0, id)).toBe(false);
    expect(d.repeated('t', 0, '1')).toBe(false);
    expect(d.repeated('t', 0, '4')).toBe(true);
  });

  it('keeps exactly the latest window of ids however often it wraps', () => {
    const d = new Duplicates(3);
    for (let i = 0; i < 10; i++) expect(d.repeated('t', 0, String(i))).toBe(false);
    expect(d.repeated('t', 0, '9')).toBe(true);
    expect(d.repeated('t', 0, '7')).toBe(true);
    expect(d.repeated('t', 0, '6')).toBe(false);
    // '6' came back as new: it pushed '7' out.
    expect(d.repeated('t', 0, '7')).toBe(false);
  });
});

describe('Duplicates: ids of the form <writer>-<sequence>', () => {
  it('knows exactly the sequences seen within each writer’s window, in any order (property)', () => {
    const step = fc.record({
      writer: fc.constantFrom('a1b2', 'c3d4', 'x-y'),
      // Mostly forward, sometimes far ahead, sometimes back to an earlier one.
      move: fc.oneof(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 2 * SEQUENCE_WINDOW }),
        fc.integer({ min: -SEQUENCE_WINDOW - 50, max: 0 }),
      ),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 300 }), (steps) => {
        const d = new Duplicates();
        const model = new Map<string, { seen: Set<number>; high: number; at: number }>();
        for (const { writer, move } of steps) {
          const m = model.get(writer) ?? { seen: new Set<number>(), high: -1, at: 0 };
          model.set(writer, m);
          m.at = Math.max(0, m.at + move);
          const expected = m.seen.has(m.at) && m.at > m.high - SEQUENCE_WINDOW;
          expect(d.repeated('t', 0, `${writer}-${m.at}`)).toBe(expected);
          m.seen.add(m.at);
          m.high = Math.max(m.high, m.at);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('tells a copy within a retried request from new records, across wraps of the window', () => {
    const d = new Duplicates();
    let seq = 0;
    for (let request = 0; request < 40; request++) {
      const ids = Array.from({ length: 1_000 }, (_, i) => `w-${seq + 7 * (i + 1)}`);
      seq += 7_000;
      for (const id of ids) expect(d.repeated('t', 3, id)).toBe(false);
      // The request written again: every record a copy.
      for (const id of ids) expect(d.repeated('t', 3, id)).toBe(true);
    }
  });

  it('holds exactly the window: the oldest sequence in it is known, the one before it new', () => {
    const d = new Duplicates();
    const W = SEQUENCE_WINDOW;
    expect(d.repeated('t', 0, 'w-0')).toBe(false);
    expect(d.repeated('t', 0, 'w-1')).toBe(false);
    expect(d.repeated('t', 0, `w-${W}`)).toBe(false);
    // The window is now (0, W]: 1 is in it, 0 (in the slot of W) is not.
    expect(d.repeated('t', 0, 'w-1')).toBe(true);
    expect(d.repeated('t', 0, 'w-0')).toBe(false);
  });

  it('forgets what a slot held once its sequence left the window, though the new one skipped it', () => {
    const d = new Duplicates();
    const W = SEQUENCE_WINDOW;
    expect(d.repeated('t', 0, 'w-5')).toBe(false);
    expect(d.repeated('t', 0, `w-${W + 4}`)).toBe(false);
    // 5 is still in the window (4, W + 4].
    expect(d.repeated('t', 0, 'w-5')).toBe(true);
    expect(d.repeated('t', 0, `w-${W + 16}`)).toBe(false);
    // W + 5 shares 5's slot and never came: new, and then known.
    expect(d.repeated('t', 0, `w-${W + 5}`)).toBe(false);
    expect(d.repeated('t', 0, `w-${W + 5}`)).toBe(true);
  });

  it('treats other ids (a record’s position, a bare word) as before, by the set', () => {
    const d = new Duplicates(2);
    expect(d.repeated('t', 0, 'prices-2-7')).toBe(false);
    expect(d.repeated('t', 0, 'prices-2-7')).toBe(true);
    expect(d.repeated('t', 0, 'word')).toBe(false);
    expect(d.repeated('t', 0, 'word')).toBe(true);
    expect(d.repeated('t', 0, 'w-1x')).toBe(false);
    // Not the same id, though the same number.
    expect(d.repeated('t', 0, 'w-7')).toBe(false);
    expect(d.repeated('t', 0, 'w-07')).toBe(false);
    expect(d.repeated('t', 0, 'w-0')).toBe(false);
    expect(d.repeated('t', 0, 'w-0')).toBe(true);
    expect(d.repeated('t', 0, 'other')).toBe(false);
    // Past the set's window of 2: forgotten.
    expect(d.repeated('t', 0, 'word')).toBe(false);
  });

  it('forgets the writer seen least lately once a partition has had 256', () => {
    const d = new Duplicates();
    expect(d.repeated('t', 0, 'first-1')).toBe(false);
    for (let w = 0; w < 255; w++) expect(d.repeated('t', 0, `w${w}-1`)).toBe(false);
    // Seen again: now the latest, and w0 the least lately seen.
    expect(d.repeated('t', 0, 'first-1')).toBe(true);
    expect(d.repeated('t', 0, 'one-more-1')).toBe(false);
    expect(d.repeated('t', 0, 'first-1')).toBe(true);
    expect(d.repeated('t', 0, 'w0-1')).toBe(false);
  });
});
