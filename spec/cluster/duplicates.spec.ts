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
});
