/**
 * Tick sources for the round generator (drivers/rounds.ts): each value is the wall-clock
 * time a sample is due. The generator pulls the next tick only after a round has finished, so a tick
 * source sees an overrun as a late pull — and answers it by skipping slots, never by
 * firing the missed ones back to back.
 */
import { nodeCron } from './node-cron.js';
import { realClock, type Clock } from '../../drivers/time.js';
import type { SlotTicks } from '../../drivers/rounds.js';
import { EARLY_MS, TimerQueue } from './timer-queue.js';
import { cronDue, startWallTimer } from './wall-timer.js';

export interface IntervalTicksOptions {
  intervalMs: number;
  clock?: Clock;
  /** Ends the ticks when aborted (as return() does). */
  signal?: AbortSignal;
  /** Put slots on wall-clock multiples of the interval (like Telegraf's round_interval). */
  alignToWallClock?: boolean;
  /** Delay of the first slot (start-up spread), added after any alignment. */
  startOffsetMs?: number;
  /**
   * Where the grid starts (a monotonic and a wall-clock reading taken together); when the
   * ticks are created by default. Ticks that share an origin and an interval share their
   * slots, however long apart they were created: the sampler gives all its sensors one. A
   * source created after its origin starts at the first slot that is still fresh.
   */
  origin?: { now: number; wallNow: number };
  /**
   * A slot whose round would start later than this after its due time is skipped (counted)
   * rather than run late. Default: half the interval.
   */
  maxLateMs?: number;
  /** Told how many slots were skipped each time a pull comes too late. */
  onSkip?: (skipped: number) => void;
  /** Told the scheduling lag (actual start − due, monotonic ms) of every slot yielded. */
  onLag?: (lagMs: number) => void;
  /** Shared timer queue (one per sampler); a private one when absent. */
  timers?: TimerQueue;
}

/** A pull-based source of due times (wall ms); ends when its signal aborts. */
export interface TickSource extends AsyncIterableIterator<number> {
  return(value?: unknown): Promise<IteratorResult<number>>;
}

/**
 * Drift-free ticks: slot k is due at t0 + k·interval on the monotonic clock, whatever the
 * rounds cost. A pull more than maxLateMs after its slot skips to the latest slot that is
 * still fresh (or the next one) and reports how many were skipped. Ends when the signal
 * aborts or return() is called.
 *
 * A class rather than an async generator, on the hot path of every sensor, with two ways
 * to pull: next() (an async iterator) and the SlotTicks methods plan/wake/take that the
 * round generator (drivers/rounds.ts) uses, whose wait is the shared TimerQueue's promise
 * for the slot's millisecond: no allocation per wait, so 10,000 sensors waiting for their
 * slot keep nothing per wait alive into the old generation. Every sensor of a sampler
 * shares one TimerQueue (pass `timers`).
 */
export function intervalTicks(opts: IntervalTicksOptions): IntervalTicks {
  return new IntervalTicks(opts);
}

const DONE: IteratorResult<number> = Object.freeze({ done: true, value: undefined });

export class IntervalTicks implements TickSource, SlotTicks {
  private readonly clock: Clock;
  private readonly timers: TimerQueue;
  private readonly intervalMs: number;
  private readonly maxLateMs: number;
  private readonly t0: number;
  private readonly wall0: number;
  private readonly signal: AbortSignal | undefined;
  private k = 0;
  private done = false;
  /** Monotonic due time of the planned slot. */
  private planned = 0;
  /** A next() is under way. */
  private pulling = false;
  private readonly onAbort: (() => void) | undefined;

  constructor(private readonly opts: IntervalTicksOptions) {
    const { intervalMs } = opts;
    if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) {
      throw new RangeError(`intervalMs must be a positive number, got ${intervalMs}`);
    }
    this.intervalMs = intervalMs;
    this.signal = opts.signal;
    this.clock = opts.clock ?? realClock;
    this.timers = opts.timers ?? new TimerQueue(this.clock);
    const origin = opts.origin ?? { now: this.clock.now(), wallNow: this.clock.wallNow() };
    const wallAtStart = origin.wallNow;
    const align = opts.alignToWallClock
      ? (intervalMs - (((wallAtStart % intervalMs) + intervalMs) % intervalMs)) % intervalMs
      : 0;
    const offset = align + Math.max(0, opts.startOffsetMs ?? 0);
    this.maxLateMs = Math.max(0, opts.maxLateMs ?? intervalMs / 2);
    // One fixed mapping from monotonic to wall time, taken once: wall steps do not move slots.
    this.t0 = origin.now + offset;
    this.wall0 = wallAtStart + offset;
    // Joining a grid that started earlier is not an overrun: no skips counted.
    this.k = this.freshSlot(this.clock.now());
    // One abort listener for the source's life rather than one per wait.
    if (this.signal) {
      this.onAbort = () => void this.return();
      this.signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  get ended(): boolean {
    return this.done;
  }

  /** Plan the next slot, skipping the ones that are too late already (counted); false once ended. */
  plan(): boolean {
    if (this.done || this.signal?.aborted) {
      this.end();
      return false;
    }
    const k = this.k;
    const fresh = this.freshSlot(this.clock.now());
    if (fresh > k) {
      // Too late for slot k (the last round overran, or the loop stalled): take the latest
      // due slot if it is still fresh, else wait for the next one. Under overload this
      // sheds rounds instead of queueing them behind each other until they all time out.
      this.opts.onSkip?.(fresh - k);
      this.k = fresh;
    }
    this.planned = this.t0 + this.k * this.intervalMs;
    return true;
  }

  /** The shared promise to await before the planned slot is due; undefined once due or ended. */
  wake(): Promise<void> | undefined {
    if (this.done || this.clock.now() + EARLY_MS >= this.planned) return undefined;
    return this.timers.until(this.planned);
  }

  /**
   * Monotonic time the next slot is due (plan() takes it if pulled then; a pull later than
   * maxLateMs after it skips ahead instead). The sampler waits for it before pulling the
   * round generator, so a sensor between rounds holds neither a pending pull nor an await.
   */
  nextDue(): number {
    return this.t0 + this.k * this.intervalMs;
  }

  /** The planned slot starts now: record its lag, hand out its wall-clock due time. */
  take(): number {
    const k = this.k++;
    // The queue may wake a fraction of a millisecond early; the slot is still this one.
    this.opts.onLag?.(Math.max(0, this.clock.now() - this.planned));
    return this.wall0 + k * this.intervalMs;
  }

  async next(): Promise<IteratorResult<number>> {
    if (this.pulling) throw new Error('intervalTicks: next() while a pull is pending');
    this.pulling = true;
    try {
      if (!this.plan()) return DONE;
      for (let wake = this.wake(); wake; wake = this.wake()) await wake;
      return this.done ? DONE : { done: false, value: this.take() };
    } finally {
      this.pulling = false;
    }
  }

  /** End the ticks; a pull waiting for its slot ends at once (next() resolves as done). */
  return(): Promise<IteratorResult<number>> {
    return Promise.resolve(this.end());
  }

  /** The earliest slot, from k on, that is not more than maxLateMs late at `now`. */
  private freshSlot(now: number): number {
    const { intervalMs, t0, maxLateMs } = this;
    if (now <= t0 + this.k * intervalMs + maxLateMs) return this.k;
    let latest = Math.floor((now - t0) / intervalMs);
    if (now - (t0 + latest * intervalMs) > maxLateMs) latest++;
    return latest;
  }

  private end(): IteratorResult<number> {
    if (!this.done) {
      this.done = true;
      this.timers.wakeEarly(this.planned);
      if (this.onAbort) this.signal?.removeEventListener('abort', this.onAbort);
    }
    return DONE;
  }
}

export class CronExpressionError extends Error {
  constructor(
    readonly expression: string,
    message: string,
  ) {
    super(`invalid cron schedule "${expression}": ${message}`);
    this.name = 'CronExpressionError';
  }
}

/** Throws CronExpressionError naming the bad field; returns the expression when valid. */
export function validateCron(expression: string): string {
  const result = nodeCron().validateDetailed(expression);
  if (!result.valid) {
    const problems = result.errors.map((e) =>
      e.field === 'expression' ? e.message : `${e.field} field "${e.value ?? ''}": ${e.message}`,
    );
    throw new CronExpressionError(expression, problems.join('; ') || 'not a cron expression');
  }
  return expression;
}

export interface CronTicksOptions {
  signal: AbortSignal;
  /** IANA time zone for the expression; the system's by default. */
  timezone?: string;
  /** Told about every due time dropped because the previous round was still running. */
  onSkip?: (skipped: number) => void;
  /** Told the lag between the due time and the pull that consumed it (monotonic ms). */
  onLag?: (lagMs: number) => void;
}

/**
 * Ticks from a cron expression (5 fields, or 6 with seconds first) at the wall-clock times it
 * names, on a timer that keeps running when the clock steps (wall-timer.ts). At most one due
 * time waits for the consumer: a fire that finds one still waiting replaces it and counts as
 * skipped, so a slow sensor never gets a burst.
 */
export async function* cronTicks(
  expression: string,
  opts: CronTicksOptions,
): AsyncGenerator<number> {
  validateCron(expression);
  const { signal } = opts;
  if (signal.aborted) return;
  let waiting: { due: number; at: number } | undefined;
  let wake: (() => void) | undefined;
  const due = cronDue(expression, { timezone: opts.timezone, name: `sampler:${expression}` });
  const timer = startWallTimer(
    due.next,
    (t, lateMs) => {
      if (waiting !== undefined) opts.onSkip?.(1);
      waiting = { due: t, at: performance.now() - lateMs };
      wake?.();
    },
    { ref: true },
  );
  const onAbort = () => wake?.();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    while (!signal.aborted) {
      if (waiting === undefined) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      const { due: t, at } = waiting;
      waiting = undefined;
      opts.onLag?.(Math.max(0, performance.now() - at));
      yield t;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    timer.stop();
    due.release();
  }
}
