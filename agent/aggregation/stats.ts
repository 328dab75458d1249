/**
 * Running statistics of one window: count, min, max, mean, population standard deviation,
 * last value. Welford's online update keeps the sum of squared deviations (m2) directly, so
 * values near 1e4 with a variance of 1e-6 do not cancel catastrophically the way
 * Σx² − n·mean² does.
 *
 * stddev is the POPULATION standard deviation, √(m2 / n): the window is the whole set we
 * describe, not a sample of a larger one. It is 0 for a single value and undefined (null in
 * the payload) for an empty window.
 */
export class Welford {
  count = 0;
  mean = 0;
  /** Sum of squared deviations from the running mean. */
  m2 = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  last = Number.NaN;

  add(x: number): void {
    const n = ++this.count;
    const delta = x - this.mean;
    this.mean += delta / n;
    this.m2 += delta * (x - this.mean);
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    this.last = x;
  }

  /** Population standard deviation; 0 for one value, NaN for none. */
  stddev(): number {
    if (this.count === 0) return Number.NaN;
    return Math.sqrt(Math.max(0, this.m2) / this.count);
  }

  reset(): void {
    this.count = 0;
    this.mean = 0;
    this.m2 = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.max = Number.NEGATIVE_INFINITY;
    this.last = Number.NaN;
  }
}

export interface Summary {
  count: number;
  min: number;
  max: number;
  mean: number;
  stddev: number;
}

/**
 * Reference for tests: two passes (compensated mean, then squared deviations from it, with
 * the classic correction term). Slow and exact enough to judge the online version.
 */
export function twoPassSummary(values: ArrayLike<number>): Summary {
  const n = values.length;
  if (n === 0) return { count: 0, min: NaN, max: NaN, mean: NaN, stddev: NaN };
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    if (values[i] < min) min = values[i];
    if (values[i] > max) max = values[i];
  }
  const mean = compensatedSum(values, (x) => x) / n;
  const ss = compensatedSum(values, (x) => (x - mean) ** 2);
  const correction = compensatedSum(values, (x) => x - mean);
  const m2 = ss - (correction * correction) / n;
  return { count: n, min, max, mean, stddev: Math.sqrt(Math.max(0, m2) / n) };
}

/** Neumaier's compensated summation of f(x) over values. */
function compensatedSum(values: ArrayLike<number>, f: (x: number) => number): number {
  let sum = 0;
  let c = 0;
  for (let i = 0; i < values.length; i++) {
    const v = f(values[i]);
    const t = sum + v;
    c += Math.abs(sum) >= Math.abs(v) ? sum - t + v : v - t + sum;
    sum = t;
  }
  return sum + c;
}

/** The textbook one-pass formula √(Σx²/n − mean²): what NOT to do (kept to show why). */
export function naiveStddev(values: ArrayLike<number>): number {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < values.length; i++) {
    s += values[i];
    s2 += values[i] * values[i];
  }
  const mean = s / values.length;
  return Math.sqrt(Math.max(0, s2 / values.length - mean * mean));
}
