import { describe, expect, it } from 'vitest';
import { Duplicates } from '../../src/cluster/duplicates.js';

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
