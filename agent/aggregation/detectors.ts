/**
 * Fault detectors: they FLAG readings (the values stay in the window statistics); the flags
 * are counted per window and per sensor. All pure or self-contained per series.
 *
 * - range:   value outside the sensor's physical range (configured `range`, in °C, for
 *            temperature; otherwise the chip's datasheet range; humidity 0..100 %RH).
 * - stuck:   the same value N times in a row (`stuckCount`); the N-th and every further
 *            repetition is flagged. A dead ADC or a frozen bus often repeats one reading.
 * - spike:   modified z-score (Iglewicz & Hoaglin) of the value against the median and the
 *            median absolute deviation (MAD) of the previous K values (`spikeHistory`):
 *            z = 0.6745 · |x − median| / MAD, flagged when z > `spikeZ`. Needs at least 5
 *            previous values. When MAD is 0 (more than half the history identical, common
 *            with quantised sensors) no spike is judged: a mean-absolute-deviation fallback
 *            would flag every one-LSB step of a quiet sensor.
 * - powerOn: a DS18B20 reads 85.0 °C (its power-on reset value of the scratchpad) when a
 *            conversion did not happen, e.g. after a brown-out on parasitic power.
 */

export const FLAG_RANGE = 1;
export const FLAG_STUCK = 2;
export const FLAG_SPIKE = 4;
export const FLAG_POWER_ON = 8;

export interface Range {
  min: number;
  max: number;
}

/** Datasheet operating ranges of the temperature sensors (°C). */
const TEMPERATURE_RANGES: Readonly<Record<string, Range>> = {
  tmp102: { min: -55, max: 150 },
  mcp9808: { min: -40, max: 125 },
  lm75: { min: -55, max: 125 },
  sht3x: { min: -40, max: 125 },
  bme280: { min: -40, max: 85 },
  si7021: { min: -40, max: 125 },
  ds18b20: { min: -55, max: 125 },
};
/** Physically possible, whatever the chip. */
const PHYSICAL: Readonly<Record<string, Range>> = {
  temperature: { min: -273.15, max: Number.POSITIVE_INFINITY },
  humidity: { min: 0, max: 100 },
  // BME280: 300..1100 hPa operating range.
  pressure: { min: 30_000, max: 110_000 },
};

/** The range a value of this sensor and quantity must lie in. */
export function rangeFor(driver: string, quantity: string, configured?: Range): Range {
  if (quantity === 'temperature') {
    return configured ?? TEMPERATURE_RANGES[driver] ?? PHYSICAL.temperature;
  }
  return PHYSICAL[quantity] ?? { min: Number.NEGATIVE_INFINITY, max: Number.POSITIVE_INFINITY };
}

export function outOfRange(value: number, range: Range): boolean {
  return value < range.min || value > range.max;
}

/** The DS18B20 power-on reset value read back as if it were a temperature. */
export const DS18B20_POWER_ON_C = 85;
export function isPowerOnValue(driver: string, quantity: string, value: number): boolean {
  return driver === 'ds18b20' && quantity === 'temperature' && value === DS18B20_POWER_ON_C;
}

/** Median of an ascending array's first n entries. */
export function sortedMedian(sorted: ArrayLike<number>, n: number): number {
  const h = n >> 1;
  return n % 2 === 1 ? sorted[h] : (sorted[h - 1] + sorted[h]) / 2;
}

/**
 * MAD of an ascending array's first n entries around its median, in O(n/2): deviations
 * grow outward from the median on both sides, so merging the two sides walks them in order.
 */
export function sortedMad(sorted: ArrayLike<number>, n: number, median: number): number {
  let r = 0;
  while (r < n && sorted[r] < median) r++;
  let l = r - 1;
  const want = n >> 1; // index (0-based) of the upper middle deviation
  let prev = 0;
  let cur = 0;
  for (let k = 0; k <= want; k++) {
    const dl = l >= 0 ? median - sorted[l] : Number.POSITIVE_INFINITY;
    const dr = r < n ? sorted[r] - median : Number.POSITIVE_INFINITY;
    prev = cur;
    if (dl <= dr) {
      cur = dl;
      l--;
    } else {
      cur = dr;
      r++;
    }
  }
  return n % 2 === 1 ? cur : (prev + cur) / 2;
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
 */
export class SeriesDetectors {
  private readonly range: Range;
  private readonly powerOnCheck: boolean;
  private last = Number.NaN;
  private run = 0;
  private readonly order: Float64Array; // insertion order (ring)
  private readonly sorted: Float64Array;
  private size = 0;
  private next = 0;

  constructor(
    private readonly settings: DetectorSettings,
    driver: string,
    quantity: string,
    configured?: Range,
  ) {
    this.range = rangeFor(driver, quantity, configured);
    this.powerOnCheck = driver === 'ds18b20' && quantity === 'temperature';
    this.order = new Float64Array(settings.spikeHistory);
    this.sorted = new Float64Array(settings.spikeHistory);
  }

  check(value: number): number {
    let flags = 0;
    if (value < this.range.min || value > this.range.max) flags |= FLAG_RANGE;
    if (this.powerOnCheck && value === DS18B20_POWER_ON_C) flags |= FLAG_POWER_ON;
    if (value === this.last) {
      if (++this.run >= this.settings.stuckCount) flags |= FLAG_STUCK;
    } else {
      this.last = value;
      this.run = 1;
    }
    const n = this.size;
    if (n >= MIN_SPIKE_HISTORY) {
      const median = sortedMedian(this.sorted, n);
      const z = robustZ(value, median, sortedMad(this.sorted, n, median));
      if (z > this.settings.spikeZ) flags |= FLAG_SPIKE;
    }
    this.remember(value);
    return flags;
  }

  private remember(value: number): void {
    const k = this.order.length;
    if (this.size === k) {
      this.removeSorted(this.order[this.next]);
      this.size--;
    }
    this.order[this.next] = value;
    this.next = this.next + 1 === k ? 0 : this.next + 1;
    this.insertSorted(value);
    this.size++;
  }

  private insertSorted(value: number): void {
    const s = this.sorted;
    let i = this.size;
    while (i > 0 && s[i - 1] > value) {
      s[i] = s[i - 1];
      i--;
    }
    s[i] = value;
  }

  private removeSorted(value: number): void {
    const s = this.sorted;
    const n = this.size;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid] < value) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < n - 1; i++) s[i] = s[i + 1];
  }
}
