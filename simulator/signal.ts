/**
 * Plausible sensor signals for the simulator: a set-point, Gaussian noise, a slow sinusoidal
 * drift and occasional steps, deterministic for a given seed so tests can reproduce them.
 */
export interface SignalOptions {
  setPoint: number;
  /** Standard deviation of the noise. */
  noise?: number;
  /** Amplitude and period of the slow drift. */
  driftAmplitude?: number;
  driftPeriodMs?: number;
  /** Mean time between steps, and their size (±). 0 disables steps. */
  stepEveryMs?: number;
  stepSize?: number;
  seed?: number;
}

/** mulberry32: small, fast, good enough for test signals. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Signal {
  private readonly rand: () => number;
  private offset = 0;
  private nextStepAt: number | undefined;

  constructor(private readonly o: SignalOptions) {
    this.rand = seededRandom(o.seed ?? 1);
  }

  /** Value at wall-clock time t (ms). */
  at(t: number): number {
    const {
      setPoint,
      noise = 0.05,
      driftAmplitude = 0.5,
      driftPeriodMs = 600_000,
      stepEveryMs = 0,
      stepSize = 1,
    } = this.o;
    if (stepEveryMs > 0) {
      this.nextStepAt ??= t + stepEveryMs * (0.5 + this.rand());
      if (t >= this.nextStepAt) {
        this.offset += (this.rand() < 0.5 ? -1 : 1) * stepSize;
        this.nextStepAt = t + stepEveryMs * (0.5 + this.rand());
      }
    }
    // Box-Muller for Gaussian noise.
    const u = Math.max(this.rand(), 1e-12);
    const gauss = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.rand());
    const drift = driftAmplitude * Math.sin((2 * Math.PI * t) / driftPeriodMs);
    return setPoint + this.offset + drift + noise * gauss;
  }
}
