/**
 * Timers for schedules named in wall-clock terms (a cron expression, "every 30 s on the
 * multiples of 30 s") that keep running when the wall clock steps.
 *
 * Each wait is a monotonic timer (setTimeout) for the time from now to the next due time,
 * computed afresh from the wall clock at every arming: a step during a wait changes nothing
 * in it, the next due time follows the clock as it is now. So a step back never leaves a
 * timer waiting for a due time an hour away, and a step forward never fires every slot it
 * jumped over. Two fires are never closer than half the schedule's local period on the
 * monotonic clock (a timer that fires a little early, or a step back by less than a
 * period, does not run the same slot twice). A wait longer than MAX_WAIT_MS is cut into
 * pieces that look at the wall clock again (setTimeout's own limit is ~24.8 days).
 */
import { nodeCron } from './node-cron.js';

/** The next two due times strictly after `wall` (wall ms). */
export type NextDue = (wall: number) => readonly [number, number];

export interface WallTimerOptions {
  /** Keep the process alive while waiting (default false). */
  ref?: boolean;
}

export interface WallTimer {
  stop(): void;
}

/** Longest single wait before the wall clock is looked at again. */
export const MAX_WAIT_MS = 3_600_000;

/**
 * Calls onDue(due, lateMs) at each due time of `next` until stopped: `due` in wall ms,
 * `lateMs` how long after its monotonic due time the timer ran.
 */
export function startWallTimer(
  next: NextDue,
  onDue: (due: number, lateMs: number) => void,
  options: WallTimerOptions = {},
): WallTimer {
  const wallNow = () => Date.now();
  const monoNow = () => performance.now();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let lastFire: number | undefined;

  const arm = (): void => {
    if (stopped) return;
    const wall = wallNow();
    const mono = monoNow();
    const [first, second] = next(wall);
    let due = first;
    if (lastFire !== undefined && mono + (first - wall) - lastFire < (second - first) / 2) {
      due = second;
    }
    const wait = Math.max(0, due - wall);
    const piece = Math.min(wait, MAX_WAIT_MS);
    const dueMono = mono + wait;
    timer = setTimeout(() => {
      if (stopped) return;
      if (piece < wait) {
        arm();
        return;
      }
      const at = monoNow();
      lastFire = at;
      try {
        onDue(due, Math.max(0, at - dueMono));
      } finally {
        arm();
      }
    }, piece);
    if (options.ref !== true) timer.unref();
  };
  arm();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** Due times every `periodMs` on its wall-clock multiples. */
export function everyPeriod(periodMs: number): NextDue {
  return (wall) => {
    const first = (Math.floor(wall / periodMs) + 1) * periodMs;
    return [first, first + periodMs];
  };
}

/**
 * Due times of a cron expression (node-cron's matcher, from the current wall clock), and
 * release() to let go of the matcher. node-cron's own runner is not used: it waits for a due
 * time computed before a step (an hour too long after a step back) and runs through every
 * slot a step forward jumped over.
 */
export function cronDue(
  expression: string,
  options: { timezone?: string; name?: string } = {},
): { next: NextDue; release: () => void } {
  const task = nodeCron().createTask(expression, () => undefined, {
    timezone: options.timezone,
    name: options.name,
  });
  return {
    // getNextRuns counts from `new Date()`, the same wall clock as `wall`.
    next: () => {
      const [a, b] = task.getNextRuns(2);
      return [a.getTime(), b.getTime()];
    },
    release: () => void Promise.resolve(task.destroy()).catch(() => undefined),
  };
}
