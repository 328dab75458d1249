import { describe, expect, it } from 'vitest';
import { startEventLoopMonitor } from '../../../agent/sampling/event-loop.js';
import { SchedulingLag } from '../../../agent/sampling/scheduling-lag.js';

describe('SchedulingLag', () => {
  it('reports percentiles of what was recorded, and starts over on reset', () => {
    const lag = new SchedulingLag();
    expect(lag.snapshot()).toMatchObject({ count: 0, p99Ms: 0 });
    for (let i = 1; i <= 1000; i++) lag.record(i / 100); // 0.01 … 10 ms
    const s = lag.snapshot();
    expect(s.count).toBe(1000);
    expect(s.p50Ms).toBeGreaterThan(4.8);
    expect(s.p50Ms).toBeLessThan(5.2);
    expect(s.p99Ms).toBeGreaterThan(9.7);
    expect(s.p99Ms).toBeLessThanOrEqual(10.1);
    expect(s.maxMs).toBeCloseTo(10, 1);
    lag.record(Number.NaN);
    expect(lag.snapshot().count).toBe(1000);
    lag.reset();
    expect(lag.snapshot().count).toBe(0);
  });
});

describe('startEventLoopMonitor', () => {
  it('sees the loop being blocked', async () => {
    const monitor = startEventLoopMonitor({ resolutionMs: 10 });
    try {
      await new Promise((r) => setTimeout(r, 50));
      const end = performance.now() + 120;
      while (performance.now() < end) {
        // Block the event loop on purpose.
      }
      await new Promise((r) => setTimeout(r, 50));
      const s = monitor.snapshot({ reset: true });
      // The blocked stretch shows up as at least most of its length (load only adds).
      expect(s.maxMs).toBeGreaterThan(80);
      expect(s.p50Ms).toBeLessThanOrEqual(s.p99Ms);
      expect(s.p99Ms).toBeLessThanOrEqual(s.maxMs);
    } finally {
      monitor.stop();
    }
  });
});
