import { afterEach, describe, expect, it, vi } from 'vitest';
import { fixedPeriodMs, startHealthSchedule } from '../../../agent/publish/health-schedule.js';
import { waitUntil } from '../../helpers/wait.js';

describe('health schedule', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs every-S-seconds expressions (S dividing 60) on a timer, leaves the rest to node-cron', () => {
    expect(fixedPeriodMs('*/30 * * * * *')).toBe(30_000);
    expect(fixedPeriodMs('  */15  * * * * * ')).toBe(15_000);
    expect(fixedPeriodMs('* * * * * *')).toBe(1000);
    expect(fixedPeriodMs('*/60 * * * * *')).toBe(60_000);
    // node-cron restarts */7 at every minute: not a fixed period.
    expect(fixedPeriodMs('*/7 * * * * *')).toBeUndefined();
    expect(fixedPeriodMs('*/0 * * * * *')).toBeUndefined();
    expect(fixedPeriodMs('*/30 * * * * 1')).toBeUndefined();
    expect(fixedPeriodMs('5 * * * * *')).toBeUndefined();
    // Five fields: minutes, which depend on the time zone's offset.
    expect(fixedPeriodMs('*/5 * * * *')).toBeUndefined();
    expect(fixedPeriodMs('* * * * *')).toBeUndefined();
  });

  it('puts fires on the wall-clock multiples of the period, never twice, skipping missed ones', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    vi.setSystemTime(1_000_012_345);
    const fires: number[] = [];
    const schedule = startHealthSchedule('*/30 * * * * *', () => fires.push(Date.now()));
    await vi.advanceTimersByTimeAsync(65_000);
    expect(fires).toEqual([1_000_020_000, 1_000_050_000]);
    await schedule.stop();
  });

  // Periods follow the monotonic clock: a step of the wall clock neither stops nor bunches them.
  it.each([
    ['*/5 * * * * *', 'back', -3_600_000],
    ['*/5 * * * * *', 'forward', 3_600_000],
    ['*/5 * * * * *', 'back by less than a period', -3_000],
    ['0-59/5 * * * * *', 'back', -3_600_000],
    ['0-59/5 * * * * *', 'forward', 3_600_000],
  ])('"%s" keeps its period when the clock steps %s', async (expression, _what, stepMs) => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    vi.setSystemTime(Date.UTC(2026, 2, 1, 12, 0, 1));
    const fires: number[] = [];
    const schedule = startHealthSchedule(expression, () => fires.push(performance.now()));
    try {
      await vi.advanceTimersByTimeAsync(12_000);
      expect(fires).toHaveLength(2);
      vi.setSystemTime(Date.now() + stepMs);
      await vi.advanceTimersByTimeAsync(30_000);
      // One report in every 5 s after the step (one period may be cut or stretched once).
      expect(fires.length).toBeGreaterThanOrEqual(7);
      const gaps = fires.slice(1).map((t, i) => t - fires[i]);
      expect(Math.max(...gaps)).toBeLessThanOrEqual(10_000);
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(2_500);
    } finally {
      await schedule.stop();
    }
  });

  it.each(['* * * * * *', '0-59 * * * * *'])(
    'calls back on "%s" until stopped',
    async (expression) => {
      let calls = 0;
      const schedule = startHealthSchedule(expression, () => calls++);
      try {
        await waitUntil(() => calls >= 2, { timeoutMs: 15_000, what: 'two calls' });
      } finally {
        await schedule.stop();
      }
      const after = calls;
      // A schedule started after the stop fires on the same instants, after the stopped one
      // would have: once it has fired twice, the stopped one had its chances.
      let markerCalls = 0;
      const marker = startHealthSchedule(expression, () => markerCalls++);
      try {
        await waitUntil(() => markerCalls >= 2, { timeoutMs: 15_000, what: 'two marker calls' });
      } finally {
        await marker.stop();
      }
      expect(calls).toBe(after);
    },
    30_000,
  );
});
