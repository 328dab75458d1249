import { describe, expect, it } from 'vitest';
import { SensorHealthTracker } from '../../../agent/sampling/health.js';

describe('SensorHealthTracker.achievedRateHz', () => {
  it('reads the true rate of a sensor that runs on time, between samples too', () => {
    const h = new SensorHealthTracker('s', 10_000);
    for (let t = 0; t <= 20_000; t += 1000) h.roundOk(t);
    expect(h.achievedRateHz(20_000)).toBeCloseTo(1, 6);
    expect(h.achievedRateHz(20_900)).toBeCloseTo(1, 6);
    const fast = new SensorHealthTracker('f', 10_000);
    for (let t = 0; t <= 5_000; t += 250) fast.roundOk(t);
    expect(fast.achievedRateHz(5_100)).toBeCloseTo(4, 6);
  });

  it('decays for a sensor that stopped, down to 0 once its samples leave the window', () => {
    const h = new SensorHealthTracker('s', 10_000);
    for (let t = 0; t <= 20_000; t += 1000) h.roundOk(t);
    const later = [23_000, 26_000, 29_000].map((now) => h.achievedRateHz(now));
    expect(later[0]).toBeLessThan(1);
    expect(later[1]).toBeLessThan(later[0]);
    expect(later[2]).toBeLessThan(later[1]);
    expect(h.achievedRateHz(31_000)).toBe(0);
  });

  it('counts a slower sensor at its own rate', () => {
    const h = new SensorHealthTracker('s', 10_000);
    for (let t = 0; t <= 30_000; t += 2000) h.roundOk(t);
    expect(h.achievedRateHz(30_500)).toBeCloseTo(0.5, 6);
  });
});
