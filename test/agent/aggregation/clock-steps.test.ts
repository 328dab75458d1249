/**
 * Windows across steps of the wall clock. The wall clock (Date) and the monotonic clock
 * (performance.now) are faked separately: vi.setSystemTime steps the first alone, as NTP or
 * `date -s` does, while advanceTimersByTime moves both. Readings are labelled by one
 * SteadyClock (the sampler's, on the main thread) and the aggregator runs on another, as in
 * the worker thread.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Aggregator, type AggregationSettings } from '../../../agent/aggregation/aggregator.js';
import { SLEW, SteadyClock } from '../../../drivers/steady-clock.js';
import { ReadingStatus } from '../../../drivers/types.js';
import { assembleTelemetry } from '../../../agent/publish/payload.js';
import { schemaErrors, validateTelemetry } from '../publish/schemas.js';

interface WindowJson {
  sensor: string;
  quantity: string;
  start: number;
  end: number;
  count: number;
  mean: number | null;
  clockStep?: boolean;
}

const settings: AggregationSettings = {
  windowMs: 1000,
  stuckCount: 1000,
  spikeZ: 1e9,
  spikeHistory: 31,
  maxBytes: 256 * 1024,
  maxDelayMs: 10_000,
  raw: false,
  graceMs: 1000,
  coalesceMs: 250,
};
const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 2, 1, 12, 0, 0);

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date', 'performance'], now: NOW });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Two sensors sampled every 250 ms, the worker ticking every 50 ms; value = sample number. */
function rig() {
  const windows: WindowJson[] = [];
  const bodies: string[] = [];
  const clock = new SteadyClock();
  const labels = new SteadyClock();
  const agg = new Aggregator(
    [
      { id: 'a', driver: 'tmp102', quantities: ['temperature'] },
      { id: 'b', driver: 'tmp102', quantities: ['temperature'] },
    ],
    settings,
    (b) => {
      bodies.push(b.text);
      windows.push(...(JSON.parse(b.text) as { windows: WindowJson[] }).windows);
    },
    clock,
  );
  let sample = 0;
  let ms = 0;
  /** Run for `duration` ms of monotonic time. */
  const run = (duration: number) => {
    for (const end = ms + duration; ms < end; ms += 50) {
      if (ms % 250 === 0) {
        sample++;
        agg.add(0, 0, labels.now(), sample, ReadingStatus.Ok);
        agg.add(1, 0, labels.now(), sample, ReadingStatus.Ok);
      }
      agg.tick(clock.now());
      vi.advanceTimersByTime(50);
    }
  };
  /** Every batch as published is valid under the shipped schema. */
  const expectValid = () => {
    for (const text of bodies) {
      const payload: unknown = JSON.parse(
        assembleTelemetry('gw', 1, Date.now(), Buffer.from(text)).toString('utf8'),
      );
      expect(schemaErrors(validateTelemetry, payload)).toBe('');
    }
  };
  return { agg, windows, run, labels, expectValid, samples: () => sample };
}

function keysOnce(windows: WindowJson[]): void {
  const seen = new Map<string, string>();
  for (const w of windows) {
    const key = `${w.sensor}/${w.quantity}/${w.start}`;
    expect(seen.has(key), `window ${key} emitted twice`).toBe(false);
    seen.set(key, JSON.stringify(w));
  }
}

function perSeries(windows: WindowJson[], sensor: string): WindowJson[] {
  return windows.filter((w) => w.sensor === sensor);
}

describe('windows across clock steps', () => {
  it('a step back of an hour for 30 s, then forward: every window once, times never go back', () => {
    const { agg, windows, run, samples, expectValid } = rig();
    run(20_000);
    vi.setSystemTime(Date.now() - HOUR);
    run(30_000);
    vi.setSystemTime(Date.now() + HOUR);
    run(20_000);
    agg.flush();

    keysOnce(windows);
    for (const sensor of ['a', 'b']) {
      const ws = perSeries(windows, sensor);
      for (let i = 1; i < ws.length; i++) expect(ws[i].start).toBeGreaterThanOrEqual(ws[i - 1].end);
      // Every reading is in exactly one window: nothing lost, nothing counted twice.
      expect(ws.reduce((n, w) => n + w.count, 0)).toBe(samples());
      // No burst of empty windows for the hour the clock went away and came back.
      expect(ws.length).toBeLessThanOrEqual(72);
      expect(ws.filter((w) => w.count === 0).length).toBeLessThanOrEqual(2);
      // The window of each step says so.
      expect(ws.filter((w) => w.clockStep).length).toBeGreaterThanOrEqual(2);
    }
    expect(agg.stats().clockSteps).toBe(2);
    expectValid();
  });

  it('while the clock stays behind, windows run at SLEW speed until it catches up, flagged', () => {
    const { agg, windows, run } = rig();
    run(5000);
    vi.setSystemTime(Date.now() - 10_000);
    // Catching up 10 s at (1 - SLEW) takes 100 s; run a little longer.
    run(Math.ceil(10_000 / (1 - SLEW)) + 10_000);
    agg.flush();
    keysOnce(windows);
    const ws = perSeries(windows, 'a');
    const last = ws.at(-1)!;
    // Caught up: the latest windows follow the wall clock again, and are not flagged.
    expect(Math.abs(last.end - Date.now())).toBeLessThanOrEqual(2000);
    expect(ws.slice(-5).some((w) => w.clockStep)).toBe(false);
    expect(ws.filter((w) => w.clockStep).length).toBeGreaterThan(50);
  });

  it('a step forward from 2020 to now: no empty windows for the years between, the first after it flagged', () => {
    vi.setSystemTime(Date.UTC(2020, 0, 1));
    const { agg, windows, run } = rig();
    run(10_000);
    vi.setSystemTime(NOW);
    run(10_000);
    agg.flush();
    keysOnce(windows);
    const ws = perSeries(windows, 'a');
    expect(ws.length).toBeLessThanOrEqual(22);
    const firstNow = ws.findIndex((w) => w.start >= NOW);
    expect(firstNow).toBeGreaterThan(0);
    expect(ws[firstNow].clockStep).toBe(true);
    expect(ws[firstNow - 1].start).toBeLessThan(Date.UTC(2020, 0, 2));
    expect(agg.stats().periodsSkipped).toBeGreaterThan(1000);
  });

  it('a reading labelled after a step forward that reaches the aggregator before its tick fills nothing', () => {
    vi.setSystemTime(Date.UTC(2020, 0, 1));
    const { agg, windows, run, labels } = rig();
    run(5000);
    vi.setSystemTime(NOW);
    agg.add(0, 0, labels.now(), 100, ReadingStatus.Ok);
    run(3000);
    agg.flush();
    keysOnce(windows);
    expect(perSeries(windows, 'a').length).toBeLessThanOrEqual(12);
  });
});

describe('SteadyClock', () => {
  it('follows the wall clock, never goes back, jumps forward with it, counts steps', () => {
    let wall = 1_000_000;
    let mono = 0;
    const c = new SteadyClock(
      () => wall,
      () => mono,
    );
    expect(c.now()).toBe(1_000_000);
    wall += 500;
    mono += 500;
    expect(c.now()).toBe(1_000_500);
    expect(c.steps).toBe(0);
    wall -= 60_000; // step back
    mono += 100;
    wall += 100;
    const afterBack = c.now();
    expect(afterBack).toBeGreaterThan(1_000_500);
    expect(c.steps).toBe(1);
    expect(c.lastStep?.byMs).toBe(-60_000);
    expect(c.aheadMs()).toBeGreaterThan(59_000);
    wall += 120_000; // step forward, past the labels
    mono += 100;
    wall += 100;
    expect(c.now()).toBe(wall);
    expect(c.steps).toBe(2);
    expect(c.aheadMs()).toBe(0);
    // Slew noise and ms rounding are not steps.
    for (let i = 0; i < 100; i++) {
      mono += 10.4;
      wall += 10;
      c.now();
    }
    expect(c.steps).toBe(2);
  });
});
