/**
 * The bounds on what a flood of requests can cost: a token bucket for the requests a gateway
 * answers, and at most one `rate-limited` answer a second for the ones it does not — the
 * rest are dropped before they are even parsed, and counted.
 */
import { performance } from 'node:perf_hooks';

/** At most this many `rate-limited` answers a second; the rest of the refused are dropped. */
export const RATE_LIMITED_ANSWERS_PER_SEC = 1;

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Take one token when there is one. */
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** What to do with a request: run it, answer that it is rate-limited, or drop it unanswered. */
export type Admission = 'run' | 'rate-limited' | 'drop';

export class RequestLimiter {
  private readonly bucket: TokenBucket;
  private readonly refusals: TokenBucket;

  constructor(
    limit: { perSecond: number; burst: number },
    now: () => number = () => performance.now(),
  ) {
    this.bucket = new TokenBucket(limit.perSecond, limit.burst, now);
    this.refusals = new TokenBucket(RATE_LIMITED_ANSWERS_PER_SEC, 1, now);
  }

  admit(): Admission {
    if (this.bucket.take()) return 'run';
    return this.refusals.take() ? 'rate-limited' : 'drop';
  }
}
