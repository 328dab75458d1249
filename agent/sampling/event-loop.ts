/**
 * Event-loop delay, measured all the time: the main thread only schedules I/O, and this is
 * the figure that shows it (a blocked loop delays every sensor at once).
 *
 * The monitor is a timer every resolutionMs (default 100): a stall of that length or longer
 * is always seen in full, a shorter one when a tick falls into it. A finer resolution costs
 * a wake-up of an otherwise idle process each time (at 20 ms, 50 a second: most of the CPU
 * of an agent with few sensors; docs/benchmarks/footprint.md).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface EventLoopSnapshot {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

export interface EventLoopMonitor {
  /** Figures since start or the last snapshot({ reset: true }). */
  snapshot(options?: { reset?: boolean }): EventLoopSnapshot;
  stop(): void;
}

const DEFAULT_RESOLUTION_MS = 100;

const nsToMs = (ns: number): number => (Number.isFinite(ns) ? ns / 1e6 : 0);

export function startEventLoopMonitor(options: { resolutionMs?: number } = {}): EventLoopMonitor {
  const histogram = monitorEventLoopDelay({
    resolution: options.resolutionMs ?? DEFAULT_RESOLUTION_MS,
  });
  histogram.enable();
  return {
    snapshot({ reset = false } = {}) {
      const empty = histogram.count === 0;
      const snap: EventLoopSnapshot = empty
        ? { p50Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0 }
        : {
            p50Ms: nsToMs(histogram.percentile(50)),
            p99Ms: nsToMs(histogram.percentile(99)),
            maxMs: nsToMs(histogram.max),
            meanMs: nsToMs(histogram.mean),
          };
      if (reset) histogram.reset();
      return snap;
    },
    stop() {
      histogram.disable();
    },
  };
}
