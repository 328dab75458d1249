import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TestClock } from '../../../drivers/time.js';
import { TimerEntry, TimerQueue } from '../../../agent/sampling/timer-queue.js';

describe('TimerQueue', () => {
  it('fires every entry at its due time, in due order, on one clock timer (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 5_000 }), { minLength: 1, maxLength: 200 }),
        async (dues) => {
          const clock = new TestClock(0);
          const queue = new TimerQueue(clock);
          const fired: Array<{ i: number; at: number }> = [];
          const entries = dues.map(
            (_, i) => new TimerEntry(() => fired.push({ i, at: clock.now() })),
          );
          dues.forEach((due, i) => queue.schedule(entries[i], due));
          // However many entries wait, the queue holds one timer on the clock.
          expect(clock.pending).toBe(1);
          await clock.advance(6_000);
          expect(fired).toHaveLength(dues.length);
          for (const f of fired) expect(f.at).toBe(dues[f.i]);
          const order = [...dues.keys()].sort((a, b) => dues[a] - dues[b] || a - b);
          expect(fired.map((f) => f.i)).toEqual(order);
          expect(queue.size).toBe(0);
          expect(clock.pending).toBe(0);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('until(): waits due in the same millisecond share one promise, settled at that millisecond', async () => {
    const clock = new TestClock(0);
    const queue = new TimerQueue(clock);
    const a = queue.until(99.2);
    const b = queue.until(99.7);
    const c = queue.until(150);
    expect(a).toBe(b);
    expect(c).not.toBe(a);
    const settled: string[] = [];
    void a.then(() => settled.push(`a@${clock.now()}`));
    void c.then(() => settled.push(`c@${clock.now()}`));
    await clock.advance(99);
    expect(settled).toEqual([]);
    await clock.advance(100);
    expect(settled).toEqual(['a@100', 'c@150']);
    // A settled millisecond is not reused: a later wait for it gets a fresh promise.
    expect(queue.until(250)).not.toBe(a);
  });

  it('wakeEarly() settles a shared wait now and leaves the other milliseconds queued', async () => {
    const clock = new TestClock(0);
    const queue = new TimerQueue(clock);
    const settled: string[] = [];
    void queue.until(500).then(() => settled.push(`500@${clock.now()}`));
    void queue.until(800).then(() => settled.push(`800@${clock.now()}`));
    await clock.advance(100);
    queue.wakeEarly(499.5);
    queue.wakeEarly(123); // nobody waits for it: a no-op
    await clock.advance(0);
    expect(settled).toEqual(['500@100']);
    expect(queue.size).toBe(1);
    await clock.advance(1000);
    expect(settled).toEqual(['500@100', '800@800']);
    expect(clock.pending).toBe(0);
  });

  it('never fires a cancelled entry; rescheduling moves it; cancel is idempotent', async () => {
    const clock = new TestClock(0);
    const queue = new TimerQueue(clock);
    const fired: string[] = [];
    const a = new TimerEntry(() => fired.push(`a@${clock.now()}`));
    const b = new TimerEntry(() => fired.push(`b@${clock.now()}`));
    const c = new TimerEntry(() => fired.push(`c@${clock.now()}`));
    queue.schedule(a, 10);
    queue.schedule(b, 20);
    queue.schedule(c, 30);
    queue.cancel(a);
    queue.cancel(a);
    queue.schedule(c, 5);
    expect(a.queued).toBe(false);
    await clock.advance(100);
    expect(fired).toEqual(['c@5', 'b@20']);
  });

  it('runs an entry re-queued by its own fire on a later turn, not in a loop', async () => {
    const clock = new TestClock(0);
    const queue = new TimerQueue(clock);
    let fires = 0;
    const entry = new TimerEntry(() => {
      fires++;
      if (fires < 5) queue.schedule(entry, clock.now() + 10);
    });
    queue.schedule(entry, 10);
    await clock.advance(25);
    expect(fires).toBe(2);
    await clock.advance(100);
    expect(fires).toBe(5);
  });

  it('oneShot() arms and disarms a reusable timer', async () => {
    const clock = new TestClock(0);
    const queue = new TimerQueue(clock);
    let fired = 0;
    const timer = queue.oneShot(() => fired++);
    timer.start(50);
    timer.stop();
    await clock.advance(100);
    expect(fired).toBe(0);
    timer.start(50);
    await clock.advance(49);
    expect(fired).toBe(0);
    await clock.advance(1);
    expect(fired).toBe(1);
  });

  it('wakes a long wait a little early and fires its entry on time (timer slack)', async () => {
    const clock = new TestClock(0);
    const armed: number[] = [];
    const timer = clock.timer.bind(clock);
    clock.timer = (ms, fn) => {
      armed.push(ms);
      return timer(ms, fn);
    };
    const queue = new TimerQueue(clock);
    let firedAt: number | undefined;
    queue.schedule(new TimerEntry(() => (firedAt = clock.now())), 2000);
    await clock.advance(1999);
    expect(firedAt).toBeUndefined();
    await clock.advance(1);
    expect(firedAt).toBe(2000);
    // First 0.2 % short of 2 s, then a short timer for the rest.
    expect(armed).toEqual([1996, 4]);
  });
});
