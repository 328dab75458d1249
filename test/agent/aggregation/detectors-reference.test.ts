/**
 * SeriesDetectors (incremental sorted history, O(log K) MAD, MAD lower-bound shortcut)
 * against the straightforward definition: keep the last K values in a plain array and, for
 * every reading, sort a copy for the median and sort the deviations for the MAD.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  FLAG_RANGE,
  FLAG_SPIKE,
  FLAG_STUCK,
  SeriesDetectors,
  outOfRange,
  rangeFor,
  referenceRobustZ,
  sortedMad,
  sortedMedian,
  type DetectorSettings,
} from '../../../agent/aggregation/detectors.js';
import type { Range } from '../../../drivers/descriptor.js';
import { temperatureRangeOf } from '../../../drivers/registry.js';

/** The detectors as the doc comment defines them, with no incremental state. */
function referenceFlags(
  settings: DetectorSettings,
  quantity: string,
  values: readonly number[],
  configured?: Range,
): number[] {
  const range = rangeFor(quantity, configured);
  const history: number[] = [];
  let last = Number.NaN;
  let run = 0;
  return values.map((x) => {
    let flags = 0;
    if (outOfRange(x, range)) flags |= FLAG_RANGE;
    run = x === last ? run + 1 : 1;
    last = x;
    if (run >= settings.stuckCount) flags |= FLAG_STUCK;
    if (history.length >= 5 && referenceRobustZ(history, x) > settings.spikeZ) flags |= FLAG_SPIKE;
    history.push(x);
    if (history.length > settings.spikeHistory) history.shift();
    return flags;
  });
}

/** Values as sensors produce them: noise, quantised steps, repeats, jumps, 85.0, junk. */
const reading = fc.oneof(
  { weight: 6, arbitrary: fc.double({ min: 19, max: 21, noNaN: true }) },
  { weight: 6, arbitrary: fc.integer({ min: -8, max: 8 }).map((k) => 20 + k * 0.0625) },
  { weight: 2, arbitrary: fc.constantFrom(20, 20.5, 85, 0, -0) },
  { weight: 1, arbitrary: fc.double({ min: -400, max: 400, noNaN: true }) },
);
const sequence = fc.oneof(
  fc.array(reading, { minLength: 1, maxLength: 300 }),
  // Long runs of one value (stuck sensors, MAD 0) broken by a few steps.
  fc
    .array(fc.tuple(reading, fc.integer({ min: 1, max: 40 })), { minLength: 1, maxLength: 20 })
    .map((runs) => runs.flatMap(([v, n]) => Array<number>(n).fill(v))),
);
const detectorSettings = fc.record({
  stuckCount: fc.integer({ min: 2, max: 8 }), // the config allows 2 and up
  spikeZ: fc.constantFrom(0.5, 1, 3, 3.5, 8, 50),
  spikeHistory: fc.integer({ min: 5, max: 40 }),
});
const series = fc.constantFrom(
  { driver: 'ds18b20', quantity: 'temperature' },
  { driver: 'lm75', quantity: 'temperature' },
  { driver: 'sht3x', quantity: 'humidity' },
  { driver: 'http-json', quantity: 'temperature' },
);

describe('SeriesDetectors against the sort-based reference', () => {
  it('gives the same flags for every reading of random sequences', () => {
    fc.assert(
      fc.property(
        detectorSettings,
        series,
        fc.option(fc.constant({ min: 0, max: 50 }), { nil: undefined }),
        sequence,
        (settings, { driver, quantity }, configured, values) => {
          // The sensor's range as the agent resolves it: configured, else its chip's.
          const range = configured ?? temperatureRangeOf(driver);
          const d = new SeriesDetectors(settings, quantity, range);
          const got = values.map((x) => d.check(x));
          expect(got).toEqual(referenceFlags(settings, quantity, values, range));
        },
      ),
      { numRuns: 400 },
    );
  });

  it('the O(log K) MAD equals the MAD by sorting, bit for bit', () => {
    fc.assert(
      fc.property(fc.array(reading, { minLength: 1, maxLength: 64 }), (xs) => {
        const s = [...xs].sort((a, b) => a - b);
        const med = sortedMedian(s, s.length);
        const dev = s.map((v) => Math.abs(v - med)).sort((a, b) => a - b);
        expect(sortedMad(s, s.length, med)).toBe(sortedMedian(dev, dev.length));
      }),
      { numRuns: 1000 },
    );
  });
});
