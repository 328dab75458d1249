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
