/**
 * Wall-clock time that never goes back: what samples and windows are labelled with.
 *
 * It follows the system clock, except that it never moves backwards. When the system clock
 * steps back (a wrong NTP server corrected, a manual `date`, an RTC that ran fast), the
 * labels keep rising from where they were, at SLEW of the monotonic rate, until the system
 * clock has caught up with them; from then on they follow it again. When it steps forward
 * (NTP setting the time of a Pi that booted with a stale clock), the labels jump forward
 * with it. So a label is never handed out twice for two different moments, and after a step
 * back the labels converge on the true time instead of staying ahead of it for good.
 *
 * A step is a change of the wall clock that the monotonic clock did not see, of more than
 * STEP_MIN_MS (plus STEP_DRIFT of the time between two looks, for NTP's slewing); each is
 * counted, so a consumer of the labels (the aggregator) can tell a step from an outage.
 */

/** Smallest unexplained change of the wall clock counted as a step. */
export const STEP_MIN_MS = 1000;
/** Drift allowed per ms between two looks before a change counts as a step (NTP slews ≤ 0.05 %). */
const STEP_DRIFT = 0.001;
/** While the wall clock is behind after a step back, labels advance at this share of real time. */
export const SLEW = 0.9;

export interface ClockStep {
  /** Wall-clock change the monotonic clock did not see (ms): > 0 forward, < 0 back. */
  byMs: number;
  /** The label just before the step and the first one after it. */
  from: number;
  to: number;
}

export class SteadyClock {
  private last = Number.NaN;
  private lastWall = 0;
  private lastMono = 0;
  private stepCount = 0;
  private latest: ClockStep | undefined;

  constructor(
    private readonly wall: () => number = () => Date.now(),
    private readonly mono: () => number = () => performance.now(),
  ) {}

  /** The current label (ms since the epoch): never less than an earlier one. */
  now(): number {
    const w = this.wall();
    const m = this.mono();
    if (Number.isNaN(this.last)) {
      this.last = w;
      this.lastWall = w;
      this.lastMono = m;
      return w;
    }
    const elapsed = Math.max(0, m - this.lastMono);
    const unexplained = w - this.lastWall - elapsed;
    const next = Math.max(w, this.last + elapsed * (w < this.last + elapsed ? SLEW : 1));
    if (Math.abs(unexplained) > STEP_MIN_MS + elapsed * STEP_DRIFT) {
      this.stepCount++;
      this.latest = { byMs: unexplained, from: Math.floor(this.last), to: Math.floor(next) };
    }
    this.last = next;
    this.lastWall = w;
    this.lastMono = m;
    // Whole milliseconds, like Date.now(); the fraction stays in `last`.
    return Math.floor(next);
  }

  /** Steps seen so far. */
  get steps(): number {
    return this.stepCount;
  }

  /** The latest step seen, if any. */
  get lastStep(): ClockStep | undefined {
    return this.latest;
  }

  /** How far the labels are ahead of the wall clock (> 0 while catching up after a step back). */
  aheadMs(): number {
    return Number.isNaN(this.last) ? 0 : Math.max(0, this.last - this.lastWall);
  }
}
