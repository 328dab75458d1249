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
  robustZ,
  sortedMad,
  sortedMedian,
} from '../../../agent/aggregation/detectors.js';
import { temperatureRangeOf } from '../../../drivers/registry.js';

const settings = { stuckCount: 4, spikeZ: 8, spikeHistory: 11 };

describe('median / MAD', () => {
  it('sortedMad equals the MAD computed by sorting the deviations', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 1, maxLength: 60 }),
        (xs) => {
          const s = [...xs].sort((a, b) => a - b);
          const med = sortedMedian(s, s.length);
          const dev = s.map((v) => Math.abs(v - med)).sort((a, b) => a - b);
          expect(sortedMad(s, s.length, med)).toBeCloseTo(sortedMedian(dev, dev.length), 9);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('robust z of a textbook example', () => {
    // history 1..9: median 5, MAD 2 → z(20) = 0.6745 · 15 / 2.
    expect(referenceRobustZ([1, 2, 3, 4, 5, 6, 7, 8, 9], 20)).toBeCloseTo((0.6745 * 15) / 2, 12);
    expect(robustZ(10, 10, 0)).toBe(0);
  });
});

describe('range and power-on', () => {
  it('uses the configured range for temperature and physical bounds for humidity', () => {
    expect(rangeFor('temperature', temperatureRangeOf('tmp102'))).toEqual({ min: -55, max: 150 });
    expect(rangeFor('temperature', { min: 0, max: 50 })).toEqual({ min: 0, max: 50 });
    expect(outOfRange(101, rangeFor('humidity'))).toBe(true);
    expect(outOfRange(-0.1, rangeFor('humidity'))).toBe(true);
    expect(outOfRange(55, rangeFor('humidity'))).toBe(false);
    expect(outOfRange(-300, rangeFor('temperature', temperatureRangeOf('http-json')))).toBe(true);
  });
});

describe('SeriesDetectors', () => {
  it('flags a value out of range, keeping the rest clean (85 °C too: the driver judges that)', () => {
    const d = new SeriesDetectors(settings, 'temperature', temperatureRangeOf('ds18b20'));
    expect(d.check(21.5)).toBe(0);
    expect(d.check(85)).toBe(0);
    expect(d.check(130) & FLAG_RANGE).toBe(FLAG_RANGE);
  });

  it('flags the N-th and further repetitions of one value as stuck, exactly', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 200 }), (xs) => {
        const d = new SeriesDetectors({ ...settings, spikeZ: 1e9 }, 'temperature');
        let run = 0;
        let prev: number | undefined;
        for (const x of xs) {
          run = x === prev ? run + 1 : 1;
          prev = x;
          const stuck = (d.check(20 + x) & FLAG_STUCK) !== 0;
          expect(stuck).toBe(run >= settings.stuckCount);
        }
      }),
    );
  });

  it('flags a spike against noisy history and agrees with the reference z-score', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 19, max: 21, noNaN: true }), { minLength: 20, maxLength: 80 }),
        fc.double({ min: -50, max: 100, noNaN: true }),
        (noise, probe) => {
          const d = new SeriesDetectors({ ...settings, stuckCount: 1e9 }, 'temperature');
          const history: number[] = [];
          for (const x of noise) {
            const want = history.length >= 5 && referenceRobustZ(history, x) > settings.spikeZ;
            expect((d.check(x) & FLAG_SPIKE) !== 0).toBe(want);
            history.push(x);
            if (history.length > settings.spikeHistory) history.shift();
          }
          const z = referenceRobustZ(history, probe);
          expect((d.check(probe) & FLAG_SPIKE) !== 0).toBe(z > settings.spikeZ);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps the sorted history right with many repeated (quantised) values', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 150 }),
        (steps) => {
          const d = new SeriesDetectors({ ...settings, stuckCount: 1e9 }, 'temperature');
          const history: number[] = [];
          for (const k of steps) {
            // 0.0625 °C steps, with a rare big jump (k = 6).
            const x = k === 6 ? 40 : 20 + k * 0.0625;
            const want = history.length >= 5 && referenceRobustZ(history, x) > settings.spikeZ;
            expect((d.check(x) & FLAG_SPIKE) !== 0).toBe(want);
            history.push(x);
            if (history.length > settings.spikeHistory) history.shift();
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a 30 °C jump in a 20 ± 0.1 °C signal is a spike; the next normal value is not', () => {
    const d = new SeriesDetectors(settings, 'temperature');
    for (let i = 0; i < 20; i++) d.check(20 + (i % 3) * 0.1);
    expect(d.check(50) & FLAG_SPIKE).toBe(FLAG_SPIKE);
    expect(d.check(20.1) & FLAG_SPIKE).toBe(0);
  });
});
