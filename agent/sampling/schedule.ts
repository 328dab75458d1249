/**
 * Tick sources for sensorReadings(): each value is the wall-clock time a sample is due.
 * The readings generator pulls the next tick only after a round has finished, so a tick
 * source sees an overrun as a late pull — and answers it by skipping slots, never by
 * firing the missed ones back to back.
 */
import { createTask, validateDetailed } from 'node-cron';
import { realClock, type Clock } from './clock.js';

export { realClock, TestClock, type Clock } from './clock.js';

export interface IntervalTicksOptions {
  intervalMs: number;
  clock?: Clock;
  signal: AbortSignal;
  /** Put slots on wall-clock multiples of the interval (like Telegraf's round_interval). */
  alignToWallClock?: boolean;
  /** Delay of the first slot (start-up spread), added after any alignment. */
  startOffsetMs?: number;
  /**
   * A slot whose round would start later than this after its due time is skipped (counted)
   * rather than run late. Default: half the interval.
   */
  maxLateMs?: number;
  /** Told how many slots were skipped each time a pull comes too late. */
  onSkip?: (skipped: number) => void;
  /** Told the scheduling lag (actual start − due, monotonic ms) of every slot yielded. */
  onLag?: (lagMs: number) => void;
}

function isAbort(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted || (err as Error | undefined)?.name === 'AbortError';
}

/**
 * Drift-free ticks: slot k is due at t0 + k·interval on the monotonic clock, whatever the
 * rounds cost. A pull more than maxLateMs after its slot skips to the latest slot that is
 * still fresh (or the next one) and reports how many were skipped. Ends when the signal
 * aborts.
 */
export async function* intervalTicks(opts: IntervalTicksOptions): AsyncGenerator<number> {
  const { intervalMs, signal } = opts;
  if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) {
    throw new RangeError(`intervalMs must be a positive number, got ${intervalMs}`);
  }
  const clock = opts.clock ?? realClock;
  const wallAtStart = clock.wallNow();
  const align = opts.alignToWallClock
    ? (intervalMs - (((wallAtStart % intervalMs) + intervalMs) % intervalMs)) % intervalMs
    : 0;
  const offset = align + Math.max(0, opts.startOffsetMs ?? 0);
  const maxLateMs = Math.max(0, opts.maxLateMs ?? intervalMs / 2);
  // One fixed mapping from monotonic to wall time, taken once: wall steps do not move slots.
  const t0 = clock.now() + offset;
  const wall0 = wallAtStart + offset;

  // One abort listener for the generator's life rather than one per wait: with 10,000
  // sensors at 1 Hz the per-wait add/remove was a measurable share of a round's CPU.
  let cancelWait: (() => void) | undefined;
  let wake: (() => void) | undefined;
  const onAbort = () => {
    cancelWait?.();
    wake?.();
  };
  const timer = clock.timer?.bind(clock);
  if (timer) signal.addEventListener('abort', onAbort, { once: true });
  const wait = async (ms: number): Promise<void> => {
    if (!timer) return clock.sleep(ms, signal);
    await new Promise<void>((resolve) => {
      wake = resolve;
      cancelWait = timer(ms, resolve);
    });
    wake = cancelWait = undefined;
  };

  try {
    for (let k = 0; !signal.aborted; k++) {
      let due = t0 + k * intervalMs;
      const now = clock.now();
      if (now > due + maxLateMs) {
        // Too late for slot k (the last round overran, or the loop stalled): take the latest
        // due slot if it is still fresh, else wait for the next one. Under overload this
        // sheds rounds instead of queueing them behind each other until they all time out.
        let latest = Math.floor((now - t0) / intervalMs);
        if (now - (t0 + latest * intervalMs) > maxLateMs) latest++;
        opts.onSkip?.(latest - k);
        k = latest;
        due = t0 + k * intervalMs;
      }
      if (now < due) {
        try {
          await wait(due - now);
        } catch (err) {
          if (isAbort(err, signal)) return;
          throw err;
        }
      }
      if (signal.aborted) return;
      opts.onLag?.(Math.max(0, clock.now() - due));
      yield wall0 + k * intervalMs;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    cancelWait?.();
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
  const result = validateDetailed(expression);
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
  /** Told the lag between the due time and the pull that consumed it (wall ms). */
  onLag?: (lagMs: number) => void;
  /** Wall clock for lag, replaceable in tests (node-cron itself uses Date). */
  wallNow?: () => number;
}

/**
 * Ticks from a cron expression (5 fields, or 6 with seconds first), fired by node-cron on
 * the wall clock. At most one due time waits for the consumer: a fire that finds one still
 * waiting replaces it and counts as skipped, so a slow sensor never gets a burst.
 */
export async function* cronTicks(
  expression: string,
  opts: CronTicksOptions,
): AsyncGenerator<number> {
  validateCron(expression);
  const { signal } = opts;
  const wallNow = opts.wallNow ?? Date.now;
  if (signal.aborted) return;
  let waiting: number | undefined;
  let wake: (() => void) | undefined;
  const task = createTask(
    expression,
    (ctx) => {
      if (waiting !== undefined) opts.onSkip?.(1);
      waiting = ctx.date.getTime();
      wake?.();
    },
    { timezone: opts.timezone, suppressMissedWarning: true, name: `sampler:${expression}` },
  );
  // A fire node-cron itself missed (event loop blocked) is a skipped slot too.
  task.on('execution:missed', () => opts.onSkip?.(1));
  const onAbort = () => wake?.();
  signal.addEventListener('abort', onAbort, { once: true });
  await task.start();
  try {
    while (!signal.aborted) {
      if (waiting === undefined) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      const due = waiting;
      waiting = undefined;
      opts.onLag?.(Math.max(0, wallNow() - due));
      yield due;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    await task.destroy();
  }
}
