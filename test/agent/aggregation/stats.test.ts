import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Welford, naiveStddev, twoPassSummary } from '../../../agent/aggregation/stats.js';

const welford = (xs: readonly number[]) => {
  const w = new Welford();
  for (const x of xs) w.add(x);
  return w;
};

const close = (a: number, b: number, rel: number) =>
  Math.abs(a - b) <= rel * Math.max(1, Math.abs(a), Math.abs(b));

describe('Welford', () => {
  it('matches a two-pass reference on random data', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true }), {
          minLength: 1,
          maxLength: 300,
        }),
        (xs) => {
          const w = welford(xs);
          const ref = twoPassSummary(xs);
          expect(w.count).toBe(ref.count);
          expect(w.min).toBe(ref.min);
          expect(w.max).toBe(ref.max);
          expect(w.last).toBe(xs.at(-1));
          expect(close(w.mean, ref.mean, 1e-9)).toBe(true);
          expect(close(w.stddev(), ref.stddev, 1e-7)).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('uses the population stddev: 0 for one value, NaN for none', () => {
    expect(welford([42]).stddev()).toBe(0);
    expect(new Welford().stddev()).toBeNaN();
    // {2,4,4,4,5,5,7,9}: population stddev exactly 2 (sample would be 2.138…).
    expect(welford([2, 4, 4, 4, 5, 5, 7, 9]).stddev()).toBe(2);
  });

  it('stays accurate on 1,000,000 values near 1e4 with tiny variance, where sum-of-squares fails', () => {
    const n = 1_000_000;
    const xs = new Float64Array(n);
    // Deterministic pseudo-random noise of amplitude 1e-3 around 1e4 (LCG).
    let seed = 12345;
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      xs[i] = 1e4 + (seed / 2147483648 - 0.5) * 2e-3;
    }
    const ref = twoPassSummary(xs);
    const w = new Welford();
    for (let i = 0; i < n; i++) w.add(xs[i]);
    // Uniform on ±1e-3: stddev ≈ 1e-3/√3 ≈ 5.77e-4.
    expect(ref.stddev).toBeGreaterThan(5.5e-4);
    expect(ref.stddev).toBeLessThan(6e-4);
    expect(Math.abs(w.stddev() - ref.stddev) / ref.stddev).toBeLessThan(1e-6);
    expect(Math.abs(w.mean - ref.mean)).toBeLessThan(1e-9);
    // The textbook formula loses it (shown so the test above means something).
    expect(Math.abs(naiveStddev(xs) - ref.stddev) / ref.stddev).toBeGreaterThan(1e-2);
  });
});
