import { describe, expect, it } from 'vitest';
import { Backoff, ReconnectPolicy } from '../../../agent/publish/backoff.js';

describe('Backoff', () => {
  it('doubles its ceiling up to the cap, with jitter between min and the ceiling', () => {
    const top = new Backoff(100, 1000, () => 1);
    expect([1, 2, 3, 4, 5, 6].map(() => top.next())).toEqual([100, 200, 400, 800, 1000, 1000]);
    const bottom = new Backoff(100, 1000, () => 0);
    expect([1, 2, 3].map(() => bottom.next())).toEqual([100, 100, 100]);
    const mid = new Backoff(100, 1000, () => 0.5);
    mid.next();
    expect(mid.next()).toBe(150);
  });

  it('starts over after reset and slows down by a factor for refusals', () => {
    const b = new Backoff(100, 1000, () => 1);
    b.next();
    b.next();
    b.reset();
    expect(b.next()).toBe(100);
    expect(b.next(4)).toBe(800);
  });
});

describe('ReconnectPolicy', () => {
  // Fake clock and the top of the jitter range: delays are the backoff's ceilings.
  function policy() {
    const clock = { now: 0 };
    const p = new ReconnectPolicy(new Backoff(100, 10_000, () => 1), 60_000, () => clock.now);
    return { p, clock };
  }

  it('does not start over on CONNACK: a broker that closes on our first publish is retried ever slower', () => {
    const { p, clock } = policy();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      p.connected();
      clock.now += 50; // the broker closes right after CONNACK and our publish
      delays.push(p.delayAfterClose());
      clock.now += delays[delays.length - 1];
    }
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200]);
  });

  it('starts over once a publish is acknowledged, or after a connection that stayed up', () => {
    const { p, clock } = policy();
    p.connected();
    p.delayAfterClose();
    p.connected();
    expect(p.delayAfterClose()).toBe(200);
    p.connected();
    p.acknowledged();
    expect(p.delayAfterClose()).toBe(100);
    p.delayAfterClose();
    p.connected();
    clock.now += 60_000;
    expect(p.delayAfterClose()).toBe(100);
    // Failed attempts (no CONNACK) keep growing the delay.
    expect([p.delayAfterClose(), p.delayAfterClose()]).toEqual([200, 400]);
  });
});
