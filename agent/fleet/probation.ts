/**
 * When a new config has proved itself: the agent is connected to the broker (on the new
 * settings: the pipeline now running was built from them) and every enabled sensor has
 * reported since — a reading that goes into a window, or a fault that says its state.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/schema.js';
import type { HealthReport } from '../publish/health.js';

export type ProbationVerdict = { ok: true } | { ok: false; reason: string };

const MAX_NAMED_SENSORS = 10;

export function probationVerdict(health: HealthReport, config: Config): ProbationVerdict {
  if (!health.mqtt.connected) {
    const why = health.mqtt.lastError ? `: ${health.mqtt.lastError}` : '';
    return {
      ok: false,
      reason: `not connected to the broker ${health.mqtt.broker} on the new settings${why}`,
    };
  }
  const reported = new Map(health.sensors.map((s) => [s.id, s.readings + s.faults > 0]));
  const silent = config.sensors.filter((s) => s.enabled && reported.get(s.id) !== true);
  if (silent.length > 0) {
    const named = silent.slice(0, MAX_NAMED_SENSORS).map((s) => s.id);
    const more = silent.length > named.length ? ` and ${silent.length - named.length} more` : '';
    return { ok: false, reason: `no reading or fault yet from sensors ${named.join(', ')}${more}` };
  }
  return { ok: true };
}

/**
 * Polls `check` until it passes or `probationMs` is over; resolves the last verdict. Bounded
 * by time; `cancelled` ends it early with a failure (the agent is stopping).
 */
export async function awaitProbation(
  check: () => ProbationVerdict,
  probationMs: number,
  cancelled: () => boolean,
  pollMs = 250,
): Promise<ProbationVerdict> {
  const deadline = performance.now() + probationMs;
  for (;;) {
    if (cancelled()) return { ok: false, reason: 'the agent stopped during probation' };
    const verdict = check();
    if (verdict.ok) return verdict;
    const left = deadline - performance.now();
    if (left <= 0) {
      return { ok: false, reason: `probation of ${probationMs} ms over: ${verdict.reason}` };
    }
    await sleep(Math.min(pollMs, left));
  }
}
