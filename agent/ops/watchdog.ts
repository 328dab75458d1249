/**
 * The systemd watchdog, gated on health: WATCHDOG=1 goes out every interval/2 only while
 * every check passes, so a wedged agent (blocked event loop, dead or stuck aggregation worker,
 * sampling that stopped) misses its pings and systemd restarts it (WatchdogSec=).
 *
 * The event loop is checked by the ping timer itself: a tick that fires much later than
 * scheduled means the loop was blocked. While it is blocked no tick runs, so no ping goes out;
 * the first late tick after it skips its ping too (the loop has just proven unhealthy), and the
 * next on-time tick resumes. Other checks are supplied by the caller.
 */
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';

export interface HealthCheck {
  /** Shown in the log when it fails, e.g. "worker", "sampling". */
  name: string;
  healthy(): boolean;
}

/** The part of SystemdNotifier the watchdog needs. */
export interface WatchdogNotifier {
  watchdog(): boolean;
}

export interface WatchdogOptions {
  notifier: WatchdogNotifier;
  /** systemd's WatchdogSec in ms (SystemdNotifier.watchdogIntervalMs()); pings at half that. */
  intervalMs: number;
  checks: HealthCheck[];
  logger?: Logger;
  /**
   * A tick later than this (ms past its schedule) counts as a blocked event loop.
   * Default: half the ping period, i.e. a quarter of WatchdogSec.
   */
  maxLoopLagMs?: number;
  /** Monotonic clock in ms; injectable for tests. */
  now?: () => number;
}

/** The name the built-in event-loop check reports under. */
export const EVENT_LOOP_CHECK = 'event-loop';

export interface Watchdog {
  stop(): void;
  /** Pings sent so far. */
  readonly pings: number;
  /** Names of the checks that failed at the last tick ([] when healthy). */
  readonly failing: readonly string[];
}

export function startWatchdog(options: WatchdogOptions): Watchdog {
  const { notifier, checks } = options;
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? (() => performance.now());
  if (!(options.intervalMs > 0)) throw new RangeError('watchdog intervalMs must be positive');
  const periodMs = Math.max(1, Math.floor(options.intervalMs / 2));
  const maxLagMs = options.maxLoopLagMs ?? periodMs / 2;

  let pings = 0;
  let failing: string[] = [];
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let due = now() + periodMs;

  const evaluate = (lagMs: number): string[] => {
    const failed: string[] = [];
    if (lagMs > maxLagMs) failed.push(EVENT_LOOP_CHECK);
    for (const check of checks) {
      let ok: boolean;
      try {
        ok = check.healthy();
      } catch (err) {
        logger.warn({ err, check: check.name }, 'watchdog check threw; counted as failing');
        ok = false;
      }
      if (!ok) failed.push(check.name);
    }
    return failed;
  };

  const tick = (): void => {
    if (stopped) return;
    const at = now();
    const lagMs = at - due;
    const failed = evaluate(lagMs);
    const wasHealthy = failing.length === 0;
    if (failed.length === 0) {
      notifier.watchdog();
      pings++;
      if (!wasHealthy) logger.info({ recovered: failing }, 'watchdog: healthy again, pings resume');
    } else if (wasHealthy || failed.join() !== failing.join()) {
      // Logged on change only: a failing check would otherwise log every tick until restart.
      logger.warn(
        { failing: failed, lagMs: Math.round(lagMs) },
        `watchdog: ${failed.join(', ')} unhealthy, withholding WATCHDOG=1`,
      );
    }
    failing = failed;
    // Schedule from now, not from the missed slot: after a block, catch-up ticks would all
    // be late and keep the agent "unhealthy" for no reason.
    due = at + periodMs;
    timer = setTimeout(tick, periodMs);
    // The watchdog must never be what keeps the process alive.
    timer.unref();
  };

  timer = setTimeout(tick, periodMs);
  timer.unref();

  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
    get pings() {
      return pings;
    },
    get failing() {
      return failing;
    },
  };
}

/**
 * Healthy while `read()` (a counter: readings sampled, ring records drained, …) has changed
 * within the last `staleMs`. The first call counts as a change, so a fresh start is healthy.
 */
export function progressCheck(
  name: string,
  read: () => number,
  staleMs: number,
  now: () => number = () => performance.now(),
): HealthCheck {
  let last: number | undefined;
  let changedAt = 0;
  return {
    name,
    healthy() {
      const value = read();
      const at = now();
      if (last === undefined || value !== last) {
        last = value;
        changedAt = at;
        return true;
      }
      return at - changedAt <= staleMs;
    },
  };
}
