/**
 * Capped exponential backoff with full jitter ("AWS architecture blog" style): the n-th
 * delay is uniform in [min, min(max, min·2^n)], so a fleet of gateways does not reconnect
 * in lockstep after a broker restart.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call doubles the ceiling up to maxMs. */
  next(factor = 1): number {
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt, 30)) * factor;
    this.attempt++;
    const floor = Math.min(this.minMs * factor, ceiling);
    return Math.round(floor + (ceiling - floor) * this.random());
  }

  reset(): void {
    this.attempt = 0;
  }
}
