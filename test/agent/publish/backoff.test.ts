import { describe, expect, it } from 'vitest';
import { Backoff } from '../../../agent/publish/backoff.js';

describe('Backoff', () => {
  it('doubles its ceiling up to the cap, with jitter between min and the ceiling', () => {
    const top = new Backoff(100, 1000, () => 1);
    expect([1, 2, 3, 4, 5, 6].map(() => top.next())).toEqual([100, 200, 400, 800, 1000, 1000]);
    const bottom = new Backoff(100, 1000, () => 0);
    expect([1, 2, 3].map(() => bottom.next())).toEqual([100, 100, 100]);
    const mid = new Backoff(100, 1000, () => 0.5);
    mid.next();
    expect(mid.next()).toBe(150);
  });

  it('starts over after reset and slows down by a factor for refusals', () => {
    const b = new Backoff(100, 1000, () => 1);
    b.next();
    b.next();
    b.reset();
    expect(b.next()).toBe(100);
    expect(b.next(4)).toBe(800);
  });
});
