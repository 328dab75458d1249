import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  CronExpressionError,
  cronTicks,
  intervalTicks,
  validateCron,
  type TickSource,
} from '../../../agent/sampling/schedule.js';
import { TestClock } from '../../../drivers/time.js';

interface Pulled {
  wall: number;
  startedAt: number;
}

/**
 * Drive a tick source the way sensorReadings does: pull, "work" for the given time on the
 * test clock, pull again. Returns what each pull yielded and when.
 */
async function drive(
  clock: TestClock,
  ticks: TickSource | AsyncGenerator<number>,
  workMs: (round: number) => number,
  rounds: number,
): Promise<Pulled[]> {
  const out: Pulled[] = [];
  for (let i = 0; i < rounds; i++) {
    const next = ticks.next();
    // Let the source sleep until due, then see its value.
    let settled = false;
    void next.then(() => (settled = true));
    for (let guard = 0; guard < 10_000; guard++) {
      await clock.advance(0);
      if (settled) break;
      await clock.advance(1);
    }
    const r = await next;
    if (r.done) break;
    out.push({ wall: r.value, startedAt: clock.now() });
    clock.burn(workMs(i));
  }
  await ticks.return(undefined);
  return out;
}

describe('intervalTicks', () => {
  it('puts slot k at t0 + k·interval whatever each round costs (no drift)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 10, max: 200 }),
        fc.array(fc.double({ min: 0, max: 0.95, noNaN: true }), { minLength: 5, maxLength: 25 }),
        async (intervalMs, workFractions) => {
          const clock = new TestClock(1000);
          const wall0 = clock.wallNow();
          const skips: number[] = [];
          const ticks = intervalTicks({
            intervalMs,
            clock,
            signal: new AbortController().signal,
            onSkip: (n) => skips.push(n),
          });
          const pulled = await drive(
            clock,
            ticks,
            (i) => Math.floor(workFractions[i] * intervalMs),
            workFractions.length,
          );
          expect(pulled).toHaveLength(workFractions.length);
          pulled.forEach((p, k) => {
            expect(p.wall).toBe(wall0 + k * intervalMs);
            expect(p.startedAt).toBe(1000 + k * intervalMs);
          });
          expect(skips).toEqual([]);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('skips and counts the slots an overrun missed, then runs on the grid without a burst', async () => {
    const clock = new TestClock(0);
    const wall0 = clock.wallNow();
    const skips: number[] = [];
    const lags: number[] = [];
    const ticks = intervalTicks({
      intervalMs: 100,
      clock,
      signal: new AbortController().signal,
      onSkip: (n) => skips.push(n),
      onLag: (l) => lags.push(l),
    });
    // Round 2 (slot at 200) takes 250 ms: slots 300 and 400 are due by the time it ends.
    const pulled = await drive(clock, ticks, (i) => (i === 2 ? 250 : 10), 6);
    expect(pulled.map((p) => p.wall - wall0)).toEqual([0, 100, 200, 400, 500, 600]);
    expect(pulled.map((p) => p.startedAt)).toEqual([0, 100, 200, 450, 500, 600]);
    expect(skips).toEqual([1]);
    expect(lags).toEqual([0, 0, 0, 50, 0, 0]);
  });

  it('waits for the next slot rather than run one that is already stale', async () => {
    const clock = new TestClock(0);
    const wall0 = clock.wallNow();
    const skips: number[] = [];
    const ticks = intervalTicks({
      intervalMs: 100,
      clock,
      signal: new AbortController().signal,
      onSkip: (n) => skips.push(n),
    });
    // Round 0 takes 280 ms: slot 200 is 80 ms old by then (> 50), so slot 300 is next.
    const pulled = await drive(clock, ticks, (i) => (i === 0 ? 280 : 5), 3);
    expect(pulled.map((p) => p.wall - wall0)).toEqual([0, 300, 400]);
    expect(pulled.map((p) => p.startedAt)).toEqual([0, 300, 400]);
    expect(skips).toEqual([2]);
  });

  it('never runs a slot more than half an interval late, and counts every slot (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 350 }), { minLength: 5, maxLength: 30 }),
        async (work) => {
          const intervalMs = 100;
          const clock = new TestClock(0);
          const wall0 = clock.wallNow();
          let skipped = 0;
          const ticks = intervalTicks({
            intervalMs,
            clock,
            signal: new AbortController().signal,
            onSkip: (n) => (skipped += n),
          });
          const pulled = await drive(clock, ticks, (i) => work[i], work.length);
          const slots = pulled.map((p) => (p.wall - wall0) / intervalMs);
          for (let i = 0; i < pulled.length; i++) {
            const due = slots[i] * intervalMs;
            expect(Number.isInteger(slots[i])).toBe(true);
            expect(pulled[i].startedAt).toBeGreaterThanOrEqual(due);
            // Never more than half an interval late (the default maxLateMs): no stale samples.
            expect(pulled[i].startedAt - due).toBeLessThanOrEqual(intervalMs / 2);
            if (i > 0) expect(slots[i]).toBeGreaterThan(slots[i - 1]);
          }
          // Every slot up to the last one was either sampled or counted as skipped.
          expect(pulled.length + skipped).toBe(slots[slots.length - 1] + 1);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('aligns slots to wall-clock multiples of the interval when asked, plus the start offset', async () => {
    const clock = new TestClock(0, Date.UTC(2026, 0, 1, 12, 0, 0, 337));
    const ticks = intervalTicks({
      intervalMs: 1000,
      clock,
      signal: new AbortController().signal,
      alignToWallClock: true,
      startOffsetMs: 25,
    });
    const pulled = await drive(clock, ticks, () => 5, 3);
    expect(pulled.map((p) => p.wall % 1000)).toEqual([25, 25, 25]);
    expect(pulled[0].startedAt).toBe(663 + 25);
    expect(pulled[1].wall - pulled[0].wall).toBe(1000);
  });

  it('ends when the signal aborts, even while sleeping', async () => {
    const clock = new TestClock(0);
    const abort = new AbortController();
    const ticks = intervalTicks({ intervalMs: 1000, clock, signal: abort.signal });
    expect((await ticks.next()).done).toBe(false);
    const pending = ticks.next();
    await clock.advance(10);
    expect(clock.pending).toBe(1);
    abort.abort();
    expect((await pending).done).toBe(true);
    expect(clock.pending).toBe(0);
  });

  it('rejects a non-positive interval when created', () => {
    expect(() => intervalTicks({ intervalMs: 0, signal: new AbortController().signal })).toThrow(
      /intervalMs must be a positive number/,
    );
  });
});

describe('cronTicks', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('rejects a malformed expression naming the problem', () => {
    expect(() => validateCron('*/5 * * * * * *')).toThrow(CronExpressionError);
    expect(() => validateCron('*/5 * * * * * *')).toThrow(/expected 5 or 6 fields but got 7/);
    expect(() => validateCron('61 * * * * *')).toThrow(/second/);
    expect(validateCron('*/5 * * * * *')).toBe('*/5 * * * * *');
  });

  it('fires on the wall-clock seconds the expression names', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(Date.UTC(2026, 0, 1, 0, 0, 1, 200));
    const abort = new AbortController();
    const ticks = cronTicks('*/5 * * * * *', { signal: abort.signal });
    const seen: number[] = [];
    for (let i = 0; i < 3; i++) {
      const next = ticks.next();
      await vi.advanceTimersByTimeAsync(5_000);
      const r = await next;
      expect(r.done).toBe(false);
      seen.push(r.value as number);
    }
    expect(seen.map((t) => new Date(t).toISOString())).toEqual([
      '2026-01-01T00:00:05.000Z',
      '2026-01-01T00:00:10.000Z',
      '2026-01-01T00:00:15.000Z',
    ]);
    abort.abort();
    expect((await ticks.next()).done).toBe(true);
  });

  it.each([
    ['back', -3_600_000],
    ['forward', 3_600_000],
  ])('keeps ticking every period when the wall clock steps %s', async (_what, stepMs) => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    vi.setSystemTime(Date.UTC(2026, 0, 1, 0, 0, 0, 500));
    const abort = new AbortController();
    let skipped = 0;
    const ticks = cronTicks('*/2 * * * * *', {
      signal: abort.signal,
      onSkip: (n) => (skipped += n),
    });
    const seen: number[] = [];
    const pull = async () => {
      const next = ticks.next();
      await vi.advanceTimersByTimeAsync(2_000);
      seen.push((await next).value as number);
    };
    await pull();
    vi.setSystemTime(Date.now() + stepMs);
    // Each pull waits one period of monotonic time: every one gets its tick.
    for (let i = 0; i < 5; i++) await pull();
    expect(seen).toHaveLength(6);
    const after = seen.slice(2);
    expect(
      after.every((t) => Math.abs(t - (Date.UTC(2026, 0, 1, 0, 0, 2) + stepMs)) < 20_000),
    ).toBe(true);
    expect(skipped).toBe(0);
    abort.abort();
    expect((await ticks.next()).done).toBe(true);
  });

  it('keeps only the latest due time for a consumer that is late, counting the rest as skipped', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(Date.UTC(2026, 0, 1, 0, 0, 0, 500));
    const abort = new AbortController();
    let skipped = 0;
    const ticks = cronTicks('* * * * * *', { signal: abort.signal, onSkip: (n) => (skipped += n) });
    const first = ticks.next();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(new Date((await first).value as number).toISOString()).toBe('2026-01-01T00:00:01.000Z');
    // The consumer is busy for 3.2 s: fires at :02, :03 and :04 find it away.
    await vi.advanceTimersByTimeAsync(3_200);
    const next = await ticks.next();
    expect(new Date(next.value as number).toISOString()).toBe('2026-01-01T00:00:04.000Z');
    expect(skipped).toBe(2);
    abort.abort();
    expect((await ticks.next()).done).toBe(true);
  });
});
