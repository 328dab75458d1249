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

  /** Delays handed out since the last reset. */
  attempts(): number {
    return this.attempt;
  }
}

/**
 * When the reconnect backoff starts over. A CONNACK alone proves nothing: a broker that
 * accepts the connection and then closes it on our first publish (a batch over its packet
 * limit, a QoS it does not support) would otherwise be hammered at the minimum delay
 * forever. So the backoff resets only when a telemetry publish is acknowledged, or when a
 * connection stayed up for `stableMs` (an idle agent whose link drops once a day).
 */
export class ReconnectPolicy {
  private connectedAt: number | undefined;

  constructor(
    private readonly backoff: Backoff,
    private readonly stableMs: number,
    /** Monotonic: a step of the wall clock must not decide whether a connection was stable. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  connected(): void {
    this.connectedAt = this.now();
  }

  /** The broker acknowledged a publish: it takes what we send. */
  acknowledged(): void {
    this.backoff.reset();
  }

  /** Closes and failed attempts in a row without progress (counting the last one). */
  closesInARow(): number {
    return this.backoff.attempts();
  }

  /** The delay before reconnecting after a close (or a failed attempt). */
  delayAfterClose(factor = 1): number {
    if (this.connectedAt !== undefined && this.now() - this.connectedAt >= this.stableMs) {
      this.backoff.reset();
    }
    this.connectedAt = undefined;
    return this.backoff.next(factor);
  }
}
