/**
 * Per-sensor health for the health report: what state the sensor is in, why, and the rate
 * it actually achieves. Counters only; no per-sample history beyond a small ring of
 * success times for the rate.
 */
import type { SensorError, SensorErrorCode } from '../../drivers/types.js';

export type SensorState = 'ok' | 'degraded' | 'failing';

export interface SensorHealth {
  id: string;
  state: SensorState;
  lastError?: { code: SensorErrorCode; message: string; at: number };
  consecutiveFailures: number;
  /** Successful rounds per second over the recent window. */
  achievedRateHz: number;
  /** Slots not sampled: schedule overruns plus ticks passed over while backing off. */
  skippedSlots: number;
  /** Readings emitted with a usable value. */
  readings: number;
  /** Failed rounds. */
  faults: number;
}

/** Consecutive failures from which a sensor counts as failing (drivers/rounds.ts reopens at 3). */
export const FAILING_AFTER = 3;
const RATE_RING = 16;

export class SensorHealthTracker {
  private consecutiveFailures = 0;
  private lastError?: SensorHealth['lastError'];
  private skippedSlots = 0;
  private readings = 0;
  private faults = 0;
  private lastOverrunAt = Number.NEGATIVE_INFINITY;
  // A plain array: a Float64Array of 16 costs ~450 bytes with its ArrayBuffer, × 10,000 sensors.
  private readonly okTimes: number[] = new Array<number>(RATE_RING).fill(0);
  private okCount = 0;

  constructor(
    readonly id: string,
    /** Window for the achieved rate and for "recently overran" (monotonic ms). */
    private readonly windowMs: number,
  ) {}

  roundOk(now: number): void {
    this.consecutiveFailures = 0;
    this.okTimes[this.okCount % RATE_RING] = now;
    this.okCount++;
  }

  reading(): void {
    this.readings++;
  }

  fault(error: SensorError, consecutive: number, wallAt: number): void {
    this.faults++;
    this.consecutiveFailures = consecutive;
    this.lastError = { code: error.code, message: error.message, at: wallAt };
  }

  overrun(skipped: number, now: number): void {
    this.skippedSlots += skipped;
    this.lastOverrunAt = now;
  }

  backoffSkip(): void {
    this.skippedSlots++;
  }

  achievedRateHz(now: number): number {
    const n = Math.min(this.okCount, RATE_RING);
    const from = now - this.windowMs;
    let inWindow = 0;
    let oldest = Number.POSITIVE_INFINITY;
    let newest = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const t = this.okTimes[i];
      if (t >= from) {
        inWindow++;
        if (t < oldest) oldest = t;
        if (t > newest) newest = t;
      }
    }
    if (inWindow < 2 || !(newest > oldest)) return 0;
    // n successes span n-1 intervals. A sensor whose last success is overdue (more than two
    // of its intervals ago) is measured up to now instead, so a stopped sensor decays to 0
    // while one that runs on time reads its true rate (1.000 Hz, not 0.95).
    const interval = (newest - oldest) / (inWindow - 1);
    const span = now - newest > 2 * interval ? now - oldest : newest - oldest;
    return ((inWindow - 1) * 1000) / span;
  }

  snapshot(now: number): SensorHealth {
    const state: SensorState =
      this.consecutiveFailures >= FAILING_AFTER
        ? 'failing'
        : this.consecutiveFailures > 0 || now - this.lastOverrunAt < this.windowMs
          ? 'degraded'
          : 'ok';
    return {
      id: this.id,
      state,
      ...(this.lastError ? { lastError: { ...this.lastError } } : {}),
      consecutiveFailures: this.consecutiveFailures,
      achievedRateHz: this.achievedRateHz(now),
      skippedSlots: this.skippedSlots,
      readings: this.readings,
      faults: this.faults,
    };
  }
}
