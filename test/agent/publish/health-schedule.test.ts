import { describe, expect, it } from 'vitest';
import {
  fixedPeriodMs,
  nextDue,
  startHealthSchedule,
} from '../../../agent/publish/health-schedule.js';
import { waitUntil } from '../../helpers/wait.js';

describe('health schedule', () => {
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

  it('puts fires on the wall-clock multiples of the period, skips missed ones, never fires twice', () => {
    expect(nextDue(30_000, 1_000_012_345)).toBe(1_000_020_000);
    // Exactly on a multiple: the next one.
    expect(nextDue(30_000, 1_000_020_000)).toBe(1_000_050_000);
    // The timer ran a little early (wall clock behind the monotonic one): the next slot.
    expect(nextDue(30_000, 1_000_019_999, 1_000_020_000)).toBe(1_000_050_000);
    // Ran late by more than a period: slots in between are skipped, not run back to back.
    expect(nextDue(30_000, 1_000_095_000, 1_000_020_000)).toBe(1_000_110_000);
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
      await new Promise((r) => setTimeout(r, 2500));
      expect(calls).toBe(after);
    },
    30_000,
  );
});
