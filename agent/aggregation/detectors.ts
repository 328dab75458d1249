/**
 * Fault detectors: they FLAG readings (the values stay in the window statistics); the flags
 * are counted per window and per sensor. All pure or self-contained per series.
 *
 * - range:   value outside the sensor's physical range (for temperature the configured
 *            `range` in °C, else the chip's datasheet range; humidity 0..100 %RH).
 * - stuck:   the same value N times in a row (`stuckCount`); the N-th and every further
 *            repetition is flagged. A dead ADC or a frozen bus often repeats one reading.
 * - spike:   modified z-score (Iglewicz & Hoaglin) of the value against the median and the
 *            median absolute deviation (MAD) of the previous K values (`spikeHistory`):
 *            z = 0.6745 · |x − median| / MAD, flagged when z > `spikeZ`. Needs at least 5
 *            previous values. When MAD is 0 (more than half the history identical, common
 *            with quantised sensors) no spike is judged: a mean-absolute-deviation fallback
 *            would flag every one-LSB step of a quiet sensor.
 *
 * The power-on flag (FLAG_POWER_ON) is not a detector here: the driver that knows its chip
 * marks such a reading Suspect (the DS18B20's 85 °C power-on value, drivers/onewire/ds18b20.ts)
 * and the aggregator counts Suspect readings under it, outside the statistics and the
 * detectors' history, so the rule lives in one place.
 */

import type { Range } from '../../drivers/descriptor.js';

export const FLAG_RANGE = 1;
export const FLAG_STUCK = 2;
export const FLAG_SPIKE = 4;
export const FLAG_POWER_ON = 8;

/** Physically possible, whatever the chip. */
const PHYSICAL: Readonly<Record<string, Range>> = {
  temperature: { min: -273.15, max: Number.POSITIVE_INFINITY },
  humidity: { min: 0, max: 100 },
  // BME280: 300..1100 hPa operating range.
  pressure: { min: 30_000, max: 110_000 },
};

/**
 * The range a value of this quantity must lie in. A temperature has the sensor's own range
 * (configured, else its chip's datasheet range: the agent resolves it from the driver's
 * descriptor, so the worker need not load the drivers).
 */
export function rangeFor(quantity: string, temperatureRange?: Range): Range {
  if (quantity === 'temperature') return temperatureRange ?? PHYSICAL.temperature;
  return PHYSICAL[quantity] ?? { min: Number.NEGATIVE_INFINITY, max: Number.POSITIVE_INFINITY };
}

export function outOfRange(value: number, range: Range): boolean {
  return value < range.min || value > range.max;
}

/** Median of an ascending array's first n entries. */
export function sortedMedian(sorted: ArrayLike<number>, n: number): number {
  const h = n >> 1;
  return n % 2 === 1 ? sorted[h] : (sorted[h - 1] + sorted[h]) / 2;
}

/**
 * MAD of an ascending array's first n entries around its median, in O(log n): the
 * deviations left of the median (read leftwards) and right of it (read rightwards) are two
 * ascending sequences, so the middle deviation is the k-th smallest of two sorted lists.
 */
export function sortedMad(sorted: ArrayLike<number>, n: number, median: number): number {
  // r = first index with sorted[r] >= median.
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < median) lo = mid + 1;
    else hi = mid;
  }
  const r = lo;
  const h = n >> 1;
  const upper = kthDeviation(sorted, n, r, median, h);
  return n % 2 === 1 ? upper : (kthDeviation(sorted, n, r, median, h - 1) + upper) / 2;
}

/** k-th (0-based) smallest of A[j] = median − s[r−1−j] and B[j] = s[r+j] − median. */
function kthDeviation(s: ArrayLike<number>, n: number, r: number, median: number, k: number) {
  const na = r;
  const nb = n - r;
  let lo = Math.max(0, k + 1 - nb);
  let hi = Math.min(k + 1, na);
  while (lo < hi) {
    const i = (lo + hi) >> 1; // take i from A, k+1−i from B
    const a = median - s[r - 1 - i];
    const b = s[r + (k - i)] - median;
    if (a < b) lo = i + 1;
    else hi = i;
  }
  const i = lo;
  const j = k + 1 - i;
  const a = i > 0 ? median - s[r - i] : Number.NEGATIVE_INFINITY;
  const b = j > 0 ? s[r + j - 1] - median : Number.NEGATIVE_INFINITY;
  return a > b ? a : b;
}

/** Modified z-score; 0 when the spread is zero (no evidence either way). */
export function robustZ(x: number, median: number, mad: number): number {
  if (!(mad > 0)) return 0;
  return (0.6745 * Math.abs(x - median)) / mad;
}

/** Reference for tests: the straightforward median / MAD by sorting copies. */
export function referenceRobustZ(history: readonly number[], x: number): number {
  const s = [...history].sort((a, b) => a - b);
  const med = sortedMedian(s, s.length);
  const dev = s.map((v) => Math.abs(v - med)).sort((a, b) => a - b);
  return robustZ(x, med, sortedMedian(dev, dev.length));
}

export interface DetectorSettings {
  stuckCount: number;
  spikeZ: number;
  spikeHistory: number;
}

const MIN_SPIKE_HISTORY = 5;

/**
 * Detector state of one series (sensor × quantity). check() returns the flag bits for a
 * value and then remembers it. The spike history is kept sorted incrementally (insert and
 * remove by binary search), so a reading costs O(K) moves, not a sort.
 *
 * Hot path (once per reading in the worker): the settings and the range are copied into
 * own fields, and the sorted history and its insertion-order ring share one Float64Array
 * (sorted in [0, K), ring in [K, 2K)), so a reading touches one small object and one
 * contiguous block instead of three objects and two separate backing stores.
 */
export class SeriesDetectors {
  private readonly min: number;
  private readonly max: number;
  private readonly stuckCount: number;
  private readonly spikeZ: number;
  private readonly k: number;
  private last = Number.NaN;
  private run = 0;
  /** [0, k): the history, ascending; [k, 2k): the same values in insertion order (ring). */
  private readonly buf: Float64Array;
  private size = 0;
  /** Ring slot (k..2k−1) of the oldest value once full, of the next free one before. */
  private next: number;

  constructor(settings: DetectorSettings, quantity: string, temperatureRange?: Range) {
    const range = rangeFor(quantity, temperatureRange);
    this.min = range.min;
    this.max = range.max;
    this.stuckCount = settings.stuckCount;
    this.spikeZ = settings.spikeZ;
    this.k = settings.spikeHistory;
    this.buf = new Float64Array(2 * settings.spikeHistory);
    this.next = settings.spikeHistory;
  }

  check(value: number): number {
    let flags = 0;
    if (value < this.min || value > this.max) flags |= FLAG_RANGE;
    if (value === this.last) {
      if (++this.run >= this.stuckCount) flags |= FLAG_STUCK;
    } else {
      this.last = value;
      this.run = 1;
    }
    const n = this.size;
    if (n >= MIN_SPIKE_HISTORY && this.isSpike(value, n)) flags |= FLAG_SPIKE;
    this.remember(value, n);
    return flags;
  }

  private isSpike(value: number, n: number): boolean {
    const sorted = this.buf;
    const h = n >> 1;
    const odd = (n & 1) === 1;
    const median = odd ? sorted[h] : (sorted[h - 1] + sorted[h]) / 2;
    const dev = 0.6745 * Math.abs(value - median);
    if (odd) {
      // Cheap lower bound of the MAD (odd n = 2h+1): at least h+1 values lie within ±MAD
      // of the median, contiguous around index h, so they reach index h−c or h+c with
      // c = ⌈h/2⌉. Below that bound the value cannot be a spike: skip the exact MAD.
      const c = (h + 1) >> 1;
      const a = median - sorted[h - c];
      const b = sorted[h + c] - median;
      if (dev <= this.spikeZ * (a < b ? a : b)) return false;
    }
    return robustZ(value, median, sortedMad(sorted, n, median)) > this.spikeZ;
  }

  private remember(value: number, n: number): void {
    const buf = this.buf;
    const k = this.k;
    const at = this.next;
    if (n === k) this.replaceSorted(buf[at], value, n);
    else this.insertSorted(value, n);
    buf[at] = value;
    this.next = at + 1 === 2 * k ? k : at + 1;
  }

  private insertSorted(value: number, n: number): void {
    const s = this.buf;
    let i = n;
    while (i > 0 && s[i - 1] > value) {
      s[i] = s[i - 1];
      i--;
    }
    s[i] = value;
    this.size = n + 1;
  }

  /** Swaps the oldest value for the newest, moving only the entries between their ranks. */
  private replaceSorted(old: number, value: number, n: number): void {
    if (value === old) return; // a steady, quantised sensor: nothing moves
    const s = this.buf;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid] < old) lo = mid + 1;
      else hi = mid;
    }
    let j = lo;
    if (value >= old) {
      while (j + 1 < n && s[j + 1] < value) {
        s[j] = s[j + 1];
        j++;
      }
    } else {
      while (j > 0 && s[j - 1] > value) {
        s[j] = s[j - 1];
        j--;
      }
    }
    s[j] = value;
  }
}
