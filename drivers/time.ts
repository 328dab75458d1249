/**
 * Time for drivers and the sampler: abortable waits (sleep, and sleepUntil for waits whose
 * end must not come early), and the Clock the sampler schedules by. Schedules run on a
 * monotonic clock (performance.now), so an NTP step or a manual date change never bunches
 * or stretches samples; the wall clock only labels them, through a SteadyClock (labels never
 * go back, see steady-clock.ts). The test clock lets tests move time by hand, without real
 * waiting.
 */
import { SteadyClock } from './steady-clock.js';

/** Resolve after ms, or reject with the signal's reason when aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Below this much time left, sleepUntil() re-queues setImmediate instead of a timer (ms). */
const SPIN_BELOW_MS = 2;
/** Bound on the setImmediate turns of one sleepUntil(); past it, it falls back to 1 ms timers. */
const SPIN_TURNS = 100_000;

/**
 * Resolve once performance.now() ≥ `until` — never earlier — or reject when aborted.
 * sleep(ms) is only millisecond-precise: Node's timers count whole milliseconds from the
 * event loop's cached time, so a 26 ms sleep ends anywhere between ~25 and 27+ ms. Here a
 * timer covers all but the last ~1 ms and re-queued setImmediate callbacks (which let I/O and
 * timers run) wait out the sub-millisecond tail, as the simulated I²C bus does: the spin is
 * at most ~2 ms per wait. For waits whose end matters to the bus's cycle (a conversion).
 */
export function sleepUntil(until: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    let timer: NodeJS.Timeout | undefined;
    let immediate: NodeJS.Immediate | undefined;
    let turns = 0;
    const onAbort = (): void => {
      clearTimeout(timer);
      clearImmediate(immediate);
      reject(signal?.reason as Error);
    };
    const check = (): void => {
      timer = immediate = undefined;
      const left = until - performance.now();
      if (left <= 0) {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      } else if (left >= SPIN_BELOW_MS || ++turns > SPIN_TURNS) {
        timer = setTimeout(check, Math.max(1, Math.floor(left) - 1));
      } else {
        immediate = setImmediate(check);
      }
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    check();
  });
}

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

const steadyWall = new SteadyClock();

export const realClock: Clock = {
  now: () => performance.now(),
  wallNow: () => steadyWall.now(),
  sleep: (ms, signal) => sleep(Math.max(0, ms), signal),
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
