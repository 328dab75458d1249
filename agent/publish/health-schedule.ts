/**
 * The health report's schedule (config health.schedule, a node-cron expression). An
 * expression that fires every S seconds, S a divisor of 60, with every other field `*`
 * (the default `*\/30 * * * * *` is one) runs on a plain timer at the wall-clock multiples
 * of S s, where node-cron would fire it too; anything else goes to node-cron, loaded on first
 * use. Why: a node-cron task times itself through Intl.DateTimeFormat, which makes the
 * process touch about 6 MB of ICU data in the node binary that nothing else in `run` needs
 * (docs/benchmarks/footprint.md). Both keep their period when the wall clock steps
 * (agent/sampling/wall-timer.ts).
 */
import { cronDue, everyPeriod, startWallTimer } from '../sampling/wall-timer.js';

/** A running schedule; stop() ends it (no call after it resolves). */
export interface HealthSchedule {
  stop(): Promise<void>;
}

const ANY = '*';

/**
 * The period in ms when `expression` fires every S seconds at the multiples of S within each
 * minute (S divides 60, so also at the Unix-time multiples of S s, whatever the time zone),
 * else undefined: left to node-cron.
 */
export function fixedPeriodMs(expression: string): number | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 6 || fields.slice(1).some((f) => f !== ANY)) return undefined;
  const sec = fields[0];
  if (sec === ANY) return 1000;
  const m = /^\*\/(\d{1,2})$/.exec(sec);
  if (!m) return undefined;
  const s = Number(m[1]);
  return s >= 1 && s <= 60 && 60 % s === 0 ? s * 1000 : undefined;
}

function fixedSchedule(periodMs: number, fn: () => void): HealthSchedule {
  const timer = startWallTimer(everyPeriod(periodMs), fn);
  return { stop: () => Promise.resolve(timer.stop()) };
}

function cronSchedule(expression: string, fn: () => void, name: string): HealthSchedule {
  const due = cronDue(expression, { name });
  const timer = startWallTimer(due.next, fn);
  return {
    stop() {
      timer.stop();
      due.release();
      return Promise.resolve();
    },
  };
}

/** Calls fn on the expression's schedule until stop(); the expression must be valid. */
export function startHealthSchedule(
  expression: string,
  fn: () => void,
  options: { name?: string } = {},
): HealthSchedule {
  const period = fixedPeriodMs(expression);
  return period !== undefined
    ? fixedSchedule(period, fn)
    : cronSchedule(expression, fn, options.name ?? 'health');
}
