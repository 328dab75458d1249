/**
 * Time as the sampler sees it. Schedules run on a monotonic clock (performance.now), so
 * an NTP step or a manual date change never bunches or stretches samples; the wall clock
 * only labels them. The test clock lets tests move time by hand, without real waiting.
 */
import { sleep as realSleep } from '../../drivers/turns.js';

export interface Clock {
  /** Monotonic milliseconds (arbitrary origin), for scheduling. */
  now(): number;
  /** Wall-clock milliseconds since the epoch, for labelling samples. */
  wallNow(): number;
  /** Resolve after ms on this clock, or reject with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Call fn after ms; the returned function cancels it. Optional: a cheaper wait for hot
   * loops (no abort listener per wait); without it, callers fall back to sleep().
   */
  timer?(ms: number, fn: () => void): () => void;
}

export const realClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  sleep: (ms, signal) => realSleep(Math.max(0, ms), signal),
  timer: (ms, fn) => {
    const t = setTimeout(fn, Math.max(0, ms));
    return () => clearTimeout(t);
  },
};

interface PendingSleep {
  due: number;
  seq: number;
  resolve: () => void;
}

/** Let every queued promise continuation and immediate run before time moves on. */
async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

/**
 * A clock that stands still until advance() moves it. Sleepers wake in due order, each
 * seeing now() equal to its own due time, and their continuations run before the next
 * one wakes — the same ordering a real event loop gives, without the waiting.
 */
export class TestClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly sleepers: PendingSleep[] = [];

  constructor(
    start = 0,
    private readonly wallOrigin = Date.UTC(2026, 0, 1),
  ) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  wallNow(): number {
    return this.wallOrigin + this.t;
  }

  /** Sleepers currently waiting. */
  get pending(): number {
    return this.sleepers.length;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const entry: PendingSleep = {
        due: this.t + Math.max(0, ms),
        seq: this.seq++,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.sleepers.indexOf(entry);
        if (i >= 0) this.sleepers.splice(i, 1);
        reject(signal?.reason as Error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.sleepers.push(entry);
    });
  }

  timer(ms: number, fn: () => void): () => void {
    const entry: PendingSleep = { due: this.t + Math.max(0, ms), seq: this.seq++, resolve: fn };
    this.sleepers.push(entry);
    return () => {
      const i = this.sleepers.indexOf(entry);
      if (i >= 0) this.sleepers.splice(i, 1);
    };
  }

  /** Move time forward by ms, waking sleepers in order; bounded by maxWakeups. */
  async advance(ms: number, maxWakeups = 1_000_000): Promise<void> {
    const target = this.t + ms;
    await settle();
    for (let woken = 0; woken < maxWakeups; woken++) {
      const next = this.earliest();
      if (!next || next.due > target) break;
      this.sleepers.splice(this.sleepers.indexOf(next), 1);
      this.t = Math.max(this.t, next.due);
      next.resolve();
      await settle();
    }
    this.t = target;
    await settle();
  }

  /** Spend ms of "work" without waking anyone (an overrunning round). */
  burn(ms: number): void {
    this.t += ms;
  }

  private earliest(): PendingSleep | undefined {
    let best: PendingSleep | undefined;
    for (const s of this.sleepers) {
      if (!best || s.due < best.due || (s.due === best.due && s.seq < best.seq)) best = s;
    }
    return best;
  }
}
