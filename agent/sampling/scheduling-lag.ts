/**
 * Scheduling lag — how late a round starts after its due time — as a histogram, so that
 * p50/p99 over 10,000 sensors cost a few kilobytes rather than one number per sample.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

export interface LagSnapshot {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

export class SchedulingLag {
  // Microsecond resolution; the histogram only takes integers >= 1.
  private histogram: RecordableHistogram = createHistogram();

  record(lagMs: number): void {
    if (!Number.isFinite(lagMs)) return;
    this.histogram.record(Math.max(1, Math.round(lagMs * 1000)));
  }

  snapshot(): LagSnapshot {
    const h = this.histogram;
    if (h.count === 0) return { count: 0, p50Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0 };
    return {
      count: h.count,
      p50Ms: h.percentile(50) / 1000,
      p99Ms: h.percentile(99) / 1000,
      maxMs: h.max / 1000,
      meanMs: h.mean / 1000,
    };
  }

  /** Start a new window (the live view shows recent lag, not lag since start-up). */
  reset(): void {
    this.histogram.reset();
  }
}
