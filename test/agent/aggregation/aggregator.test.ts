import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  Aggregator,
  MAX_FILL_PERIODS,
  type AggregationSettings,
  type SensorSpec,
} from '../../../agent/aggregation/aggregator.js';
import { twoPassSummary } from '../../../agent/aggregation/stats.js';
import { HEADER_RESERVE } from '../../../agent/aggregation/encode.js';
import { QUANTITIES, ReadingStatus } from '../../../drivers/types.js';

interface WindowJson {
  sensor: string;
  quantity: string;
  unit: string;
  start: number;
  end: number;
  count: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  stddev: number | null;
  last: number | null;
  faults: number;
  state: string;
  flags: { range: number; stuck: number; spike: number; powerOn: number };
}
interface Body {
  windows: WindowJson[];
  readings?: Array<{ sensor: string; quantity: string; t: number; v: number }>;
}

const base: AggregationSettings = {
  windowMs: 10_000,
  stuckCount: 1000,
  spikeZ: 1e9,
  spikeHistory: 31,
  maxBytes: 256 * 1024,
  maxDelayMs: 10_000,
  raw: false,
  graceMs: 2000,
  coalesceMs: 500,
};
const sensors: SensorSpec[] = [
  { id: 'boiler-in', driver: 'tmp102' },
  { id: 'room', driver: 'sht3x' },
];

function collect(settings: Partial<AggregationSettings> = {}, list = sensors) {
  const texts: string[] = [];
  const agg = new Aggregator(list, { ...base, ...settings }, (b) => texts.push(b.text));
  const bodies = () => texts.map((t) => JSON.parse(t) as Body);
  const windows = () => bodies().flatMap((b) => b.windows);
  return { agg, texts, bodies, windows };
}

describe('Aggregator windows', () => {
  it('aligns tumbling windows to the wall clock, one per period of a series, matching a two-pass reference', () => {
    const reading = fc.record({
      sensor: fc.integer({ min: 0, max: 1 }),
      quantity: fc.integer({ min: 0, max: 1 }),
      dt: fc.integer({ min: 0, max: 4000 }),
      value: fc.double({ min: -40, max: 100, noNaN: true }),
      fault: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(reading, { maxLength: 200 }), (rs) => {
        const { agg, windows } = collect();
        let t = 1_700_000_003_000;
        type Group = { values: number[]; faults: number; lastFailed: boolean };
        const groups = new Map<string, Group>();
        // Per series: the period of its latest reading, and whether that reading failed.
        const seriesAt = new Map<string, { start: number; failed: boolean }>();
        for (const r of rs) {
          t += r.dt;
          const start = Math.floor(t / 10_000) * 10_000;
          const series = `${r.sensor}/${r.quantity}`;
          const before = seriesAt.get(series);
          // Periods the series passed without a reading get an empty window.
          for (let p = (before?.start ?? start) + 10_000; p < start; p += 10_000) {
            groups.set(`${series}/${p}`, { values: [], faults: 0, lastFailed: before!.failed });
          }
          seriesAt.set(series, { start, failed: r.fault });
          const key = `${series}/${start}`;
          const g = groups.get(key) ?? { values: [], faults: 0, lastFailed: false };
          groups.set(key, g);
          if (r.fault) {
            agg.add(r.sensor, r.quantity, t, NaN, ReadingStatus.Fault);
            g.faults++;
          } else {
            agg.add(r.sensor, r.quantity, t, r.value, ReadingStatus.Ok);
            g.values.push(r.value);
          }
        }
        agg.flush();
        const got = windows();
        expect(got.length).toBe(groups.size);
        for (const w of got) {
          expect(w.start % 10_000).toBe(0);
          expect(w.end - w.start).toBe(10_000);
          const si = sensors.findIndex((s) => s.id === w.sensor);
          const g = groups.get(
            `${si}/${QUANTITIES.indexOf(w.quantity as 'temperature')}/${w.start}`,
          );
          expect(g).toBeDefined();
          expect(w.count).toBe(g!.values.length);
          expect(w.faults).toBe(g!.faults);
          expect(w.state).toBe(
            g!.values.length > 0
              ? g!.faults > 0
                ? 'degraded'
                : 'ok'
              : g!.faults > 0
                ? 'failing'
                : g!.lastFailed
                  ? 'backoff'
                  : 'idle',
          );
          if (g!.values.length === 0) {
            expect([w.min, w.max, w.mean, w.stddev, w.last]).toEqual([
              null,
              null,
              null,
              null,
              null,
            ]);
            continue;
          }
          const ref = twoPassSummary(g!.values);
          // JSON has no -0: compare +0-normalised.
          expect(w.min).toBe(ref.min + 0);
          expect(w.max).toBe(ref.max + 0);
          expect(w.mean!).toBeCloseTo(ref.mean, 9);
          expect(w.stddev!).toBeCloseTo(ref.stddev, 9);
          expect(w.last).toBe(g!.values.at(-1)! + 0);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('encodes the window fields in the contract order, with the unit', () => {
    const { agg, texts } = collect();
    agg.add(0, 0, 20_000, 85, ReadingStatus.Suspect);
    agg.add(0, 0, 20_500, 21.5, ReadingStatus.Ok);
    agg.add(0, 0, 21_000, 22.5, ReadingStatus.Ok);
    agg.flush();
    expect(texts).toEqual([
      '{"windows":[{"sensor":"boiler-in","quantity":"temperature","unit":"Cel","start":20000,' +
        '"end":30000,"count":2,"min":21.5,"max":22.5,"mean":22,"stddev":0.5,"last":22.5,' +
        '"faults":0,"state":"ok","flags":{"range":0,"stuck":0,"spike":0,"powerOn":1}}]}',
    ]);
  });

  it('counts NaN, ±Infinity, Fault and impossible status codes as faults, not values', () => {
    const { agg, windows } = collect();
    agg.add(1, 1, 1000, 50, ReadingStatus.Ok);
    agg.add(1, 1, 1001, NaN, ReadingStatus.Ok);
    agg.add(1, 1, 1002, Infinity, ReadingStatus.Ok);
    agg.add(1, 1, 1003, 40, ReadingStatus.Fault);
    agg.add(1, 1, 1004, 40, 7);
    agg.add(0, 0, 1005, NaN, ReadingStatus.Fault);
    agg.flush();
    const room = windows().find((w) => w.sensor === 'room');
    const boiler = windows().find((w) => w.sensor === 'boiler-in');
    expect(room).toMatchObject({
      sensor: 'room',
      quantity: 'humidity',
      unit: '%RH',
      count: 1,
      faults: 4,
      mean: 50,
    });
    expect(boiler).toMatchObject({
      sensor: 'boiler-in',
      count: 0,
      faults: 1,
      min: null,
      stddev: null,
      last: null,
    });
    expect(agg.stats()).toMatchObject({ readings: 1, faults: 5 });
  });

  it('keeps values the detectors flag in the statistics and counts the flags per window', () => {
    const { agg, windows } = collect({ stuckCount: 3 }, [
      { id: 'w1', driver: 'ds18b20', range: { min: 0, max: 60 } },
    ]);
    const values = [20, 85, 70, 70, 70];
    // The driver marks its power-on values Suspect (drivers/onewire/ds18b20.ts).
    values.forEach((v, i) =>
      agg.add(0, 0, 5000 + i, v, v === 85 ? ReadingStatus.Suspect : ReadingStatus.Ok),
    );
    agg.flush();
    const [w] = windows();
    expect(w.count).toBe(4);
    expect(w.max).toBe(70);
    expect(w.flags).toEqual({ range: 3, stuck: 1, spike: 0, powerOn: 1 });
    expect(agg.stats().sensors[0].flags).toEqual({ range: 3, stuck: 1, spike: 0, powerOn: 1 });
  });

  it('keeps a Suspect reading (a power-on value) out of every statistic: counted in flags.powerOn, a window of only such readings has null statistics', () => {
    const { agg, windows } = collect({ spikeZ: 3.5 }, [{ id: 'w1', driver: 'ds18b20' }]);
    agg.add(0, 0, 5000, 85, ReadingStatus.Suspect);
    // A later window: a power-on value among measurements (a brown-out on parasite power).
    [21.5, 21.6, 21.5, 21.7, 21.6].forEach((v, i) => agg.add(0, 0, 15_000 + i, v, 0));
    agg.add(0, 0, 15_010, 85, ReadingStatus.Suspect);
    agg.add(0, 0, 15_020, 21.7, ReadingStatus.Ok);
    agg.flush();
    const [first, second] = windows();
    expect(first).toMatchObject({
      count: 0,
      min: null,
      max: null,
      mean: null,
      stddev: null,
      last: null,
      faults: 0,
      state: 'idle',
      flags: { range: 0, stuck: 0, spike: 0, powerOn: 1 },
    });
    expect(second).toMatchObject({
      count: 6,
      min: 21.5,
      max: 21.7,
      last: 21.7,
      faults: 0,
      state: 'ok',
      flags: { range: 0, stuck: 0, spike: 0, powerOn: 1 },
    });
    expect(second.mean).toBeCloseTo(21.6, 9);
    expect(agg.stats()).toMatchObject({ readings: 6, faults: 0 });
    expect(agg.stats().sensors[0]).toMatchObject({ readings: 6, flags: { powerOn: 2 } });
  });

  it('shows a Suspect reading in raw readings with v null, like a failed read', () => {
    const { agg, bodies } = collect({ raw: true }, [{ id: 'w1', driver: 'ds18b20' }]);
    agg.add(0, 0, 5000, 85, ReadingStatus.Suspect);
    agg.add(0, 0, 5001, 21.5, ReadingStatus.Ok);
    agg.flush();
    expect(bodies().flatMap((b) => b.readings ?? [])).toEqual([
      { sensor: 'w1', quantity: 'temperature', t: 5000, v: null },
      { sensor: 'w1', quantity: 'temperature', t: 5001, v: 21.5 },
    ]);
  });

  it('counts power-on values by the driver verdict alone: a real 85 °C the driver kept Ok is not flagged', () => {
    const { agg, windows } = collect({}, [{ id: 'w1', driver: 'ds18b20' }]);
    // The driver marks the first 85 °C after power-on Suspect; once it has read 84.5 °C, an
    // 85 °C is a real temperature and stays Ok.
    agg.add(0, 0, 5000, 85, ReadingStatus.Suspect);
    agg.add(0, 0, 5001, 84.5, ReadingStatus.Ok);
    agg.add(0, 0, 5002, 85, ReadingStatus.Ok);
    agg.flush();
    const [w] = windows();
    expect(w.count).toBe(2);
    expect(w.mean).toBe(84.75);
    expect(w.flags.powerOn).toBe(1);
  });

  it('closes a window when the series moves on and emits it after coalescing', () => {
    const { agg, windows } = collect();
    agg.add(0, 0, 1000, 1, 0);
    agg.add(0, 0, 11_000, 2, 0); // closes [0, 10 000)
    agg.tick(11_100);
    expect(windows()).toHaveLength(0); // still coalescing
    agg.tick(11_700);
    expect(windows().map((w) => [w.start, w.count])).toEqual([[0, 1]]);
  });

  it('closes a quiet window once the wall clock passes its end plus the grace', () => {
    const { agg, windows } = collect();
    agg.add(0, 0, 1000, 1, 0);
    agg.tick(11_000);
    expect(windows()).toHaveLength(0);
    agg.tick(12_000); // end 10 000 + grace 2000
    agg.tick(12_600); // + coalesce
    expect(windows().map((w) => w.count)).toEqual([1]);
  });

  it('puts a late reading in the current window of its series, counted', () => {
    const { agg, windows } = collect();
    agg.add(0, 0, 15_000, 2, 0);
    agg.add(0, 0, 5000, 1, 0); // late: its series is at [10 000, 20 000) already
    agg.flush();
    expect(windows().map((w) => [w.start, w.count, w.mean])).toEqual([[10_000, 2, 1.5]]);
    expect(agg.stats().late).toBe(1);
  });

  it('gives a quiet series an empty window per period, saying backoff after a fault and idle after a value', () => {
    const { agg, windows } = collect();
    agg.add(0, 0, 1000, 20, ReadingStatus.Ok); // [0, 10 000): ok
    agg.add(0, 0, 11_000, NaN, ReadingStatus.Fault); // [10 000, 20 000): failing
    for (let now = 12_000; now <= 52_600; now += 100) agg.tick(now);
    // [20 000, 50 000): nothing arrived after the fault. [50 000, 60 000) is not over yet.
    agg.add(0, 0, 61_000, 21, ReadingStatus.Ok); // fills [50 000, 60 000) on arrival
    agg.add(0, 0, 95_000, 22, ReadingStatus.Ok); // [70 000, 90 000): idle after a value
    agg.flush();
    expect(windows().map((w) => [w.start, w.count, w.faults, w.state])).toEqual([
      [0, 1, 0, 'ok'],
      [10_000, 0, 1, 'failing'],
      [20_000, 0, 0, 'backoff'],
      [30_000, 0, 0, 'backoff'],
      [40_000, 0, 0, 'backoff'],
      [50_000, 0, 0, 'backoff'],
      [60_000, 1, 0, 'ok'],
      [70_000, 0, 0, 'idle'],
      [80_000, 0, 0, 'idle'],
      [90_000, 1, 0, 'ok'],
    ]);
    expect(windows().every((w) => w.count > 0 || w.mean === null)).toBe(true);
  });

  it('with known quantities, every series has windows from the start, before its first reading', () => {
    const { agg, windows } = collect({}, [
      { id: 'room', driver: 'sht3x', quantities: ['temperature', 'humidity'] },
    ]);
    for (let now = 5000; now <= 32_600; now += 100) agg.tick(now);
    expect(windows().map((w) => [w.quantity, w.start, w.state])).toEqual([
      ['temperature', 0, 'idle'],
      ['humidity', 0, 'idle'],
      ['temperature', 10_000, 'idle'],
      ['humidity', 10_000, 'idle'],
      ['temperature', 20_000, 'idle'],
      ['humidity', 20_000, 'idle'],
    ]);
    // A sensor's quantities may change on a reload: the new series start, the old one closes.
    agg.updateSensors([{ id: 'room', driver: 'sht3x', quantities: ['temperature'] }]);
    agg.add(0, 0, 33_000, 20, ReadingStatus.Ok);
    agg.flush();
    expect(
      windows()
        .slice(6)
        .map((w) => [w.quantity, w.start, w.count]),
    ).toEqual([['temperature', 30_000, 1]]);
  });

  it('flush also emits the empty windows of periods that ended inside the grace', () => {
    const { agg, windows } = collect();
    agg.add(0, 0, 1000, NaN, ReadingStatus.Fault);
    agg.tick(21_000); // [0, 10 000) closed; [10 000, 20 000) ended but is within its grace
    agg.flush();
    expect(windows().map((w) => [w.start, w.state])).toEqual([
      [0, 'failing'],
      [10_000, 'backoff'],
    ]);
  });

  it('does not fill a clock jump: at most MAX_FILL_PERIODS empty windows, the rest counted', () => {
    const { agg, windows } = collect();
    agg.add(0, 0, 1000, 20, ReadingStatus.Ok);
    agg.tick(20_000);
    const jumped = 10_000 + 10_000 * (MAX_FILL_PERIODS + 500);
    agg.tick(jumped + 2600);
    const empty = windows().filter((w) => w.count === 0);
    expect(empty).toHaveLength(MAX_FILL_PERIODS);
    expect(empty.at(-1)!.end).toBe(jumped);
    expect(agg.stats().periodsSkipped).toBe(500);
  });

  it('a reading for a period its series already has a window for goes into its next window, counted', () => {
    const { agg, windows } = collect();
    agg.add(0, 0, 1000, 20, ReadingStatus.Ok);
    for (let now = 2000; now <= 22_600; now += 100) agg.tick(now); // [10 000, 20 000) filled
    agg.add(0, 0, 15_000, 21, ReadingStatus.Ok);
    agg.tick(32_000);
    agg.tick(32_600);
    // Each window (sensor, quantity, start) once: the straggler is in [20 000, 30 000).
    expect(windows().map((w) => [w.start, w.count])).toEqual([
      [0, 1],
      [10_000, 0],
      [20_000, 1],
    ]);
    expect(agg.stats().late).toBe(1);
  });

  it('splits large payloads into bodies under maxBytes, never dropping a window', () => {
    const many: SensorSpec[] = Array.from({ length: 200 }, (_, i) => ({
      id: `s-${i}`,
      driver: 'lm75',
    }));
    const { agg, texts, windows } = collect({ maxBytes: 2048 }, many);
    for (let i = 0; i < 200; i++) agg.add(i, 0, 1000, i, 0);
    agg.flush();
    expect(texts.length).toBeGreaterThan(10);
    for (const t of texts) {
      expect(Buffer.byteLength(t)).toBeLessThanOrEqual(2048 - HEADER_RESERVE);
      expect(t.startsWith('{"windows":[')).toBe(true);
    }
    expect(
      windows()
        .map((w) => w.sensor)
        .sort(),
    ).toEqual(many.map((s) => s.id).sort());
  });

  it('raw mode: readings travel too, and leave after maxDelayMs even inside a window', () => {
    const { agg, bodies } = collect({ raw: true, maxDelayMs: 1000 });
    agg.tick(100_000);
    agg.add(0, 0, 100_000, 20.5, 0);
    agg.add(0, 0, 100_500, NaN, ReadingStatus.Fault); // a failed read: v null
    agg.tick(100_900);
    expect(bodies()).toHaveLength(0);
    agg.tick(101_000);
    expect(bodies()).toEqual([
      {
        windows: [],
        readings: [
          { sensor: 'boiler-in', quantity: 'temperature', t: 100_000, v: 20.5 },
          { sensor: 'boiler-in', quantity: 'temperature', t: 100_500, v: null },
        ],
      },
    ]);
    agg.flush();
    expect(bodies()[1]).toMatchObject({ windows: [{ count: 1, faults: 1 }], readings: [] });
  });

  it('raw mode: split bodies keep every reading exactly once', () => {
    const { agg, bodies, texts } = collect({ raw: true, maxBytes: 1024 });
    for (let i = 0; i < 500; i++) agg.add(i % 2, 0, 1000 + i, i, 0);
    agg.flush();
    for (const t of texts) expect(Buffer.byteLength(t)).toBeLessThanOrEqual(1024);
    const ts = bodies().flatMap((b) => b.readings!.map((r) => r.v));
    expect(ts.sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(
      bodies()
        .flatMap((b) => b.windows)
        .reduce((n, w) => n + w.count, 0),
    ).toBe(500);
  });

  it('updateSensors: a changed sensor starts afresh, unchanged ones keep their window; unknown indices are counted', () => {
    const { agg, windows } = collect();
    agg.add(0, 0, 1000, 1, 0);
    agg.add(1, 0, 1000, 2, 0);
    agg.updateSensors([sensors[0], { id: 'attic', driver: 'sht3x' }]);
    // The replaced sensor's window was closed and emitted under its old id.
    expect(windows().map((w) => w.sensor)).toEqual(['room']);
    agg.add(0, 0, 2000, 3, 0);
    agg.add(1, 0, 2000, 4, 0);
    agg.add(5, 0, 2000, 4, 0);
    agg.flush();
    const byId = Object.fromEntries(windows().map((w) => [w.sensor, w.count]));
    expect(byId).toEqual({ room: 1, 'boiler-in': 2, attic: 1 });
    expect(agg.stats().unknownSensor).toBe(1);
  });
});
