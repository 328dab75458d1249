import { describe, expect, it } from 'vitest';
import { SeqTracker } from '../../../agent/publish/seq-tracker.js';

describe('SeqTracker', () => {
  it('classifies next, gap, late and duplicate per gateway', () => {
    const t = new SeqTracker();
    const kinds = [1, 2, 2, 5, 3, 3, 6, 4].map((s) => t.observe('a', s));
    expect(kinds.map((k) => k.kind)).toEqual([
      'first',
      'next',
      'duplicate',
      'gap',
      'late',
      'duplicate',
      'next',
      'late',
    ]);
    expect(kinds[3]).toEqual({ kind: 'gap', from: 3, to: 4 });
    expect(t.missingOf('a')).toEqual([]);
    // Another gateway has its own sequence.
    expect(t.observe('b', 1).kind).toBe('first');
    expect(t.observe('b', 3)).toEqual({ kind: 'gap', from: 2, to: 2 });
    expect(t.missingOf('b')).toEqual([2]);
  });
});

describe('SeqTracker with split batches', () => {
  it('keys on (gateway, seq, part): new parts are not duplicates, repeated parts are', () => {
    const t = new SeqTracker();
    const of3 = (part: number) => ({ part, parts: 3 });
    const kinds = [
      t.observe('a', 1),
      t.observe('a', 2, of3(1)),
      t.observe('a', 2, of3(2)),
      t.observe('a', 2, of3(2)),
      t.observe('a', 2, of3(3)),
      t.observe('a', 3),
      t.observe('a', 2, of3(1)),
      t.observe('a', 5, of3(2)),
      t.observe('a', 4, { part: 1, parts: 2 }),
      t.observe('a', 4, { part: 2, parts: 2 }),
    ].map((k) => k.kind);
    expect(kinds).toEqual([
      'first',
      'next',
      'part',
      'duplicate',
      'part',
      'next',
      'duplicate',
      'gap',
      'late',
      'part',
    ]);
    expect(t.missingOf('a')).toEqual([]);
  });
});
