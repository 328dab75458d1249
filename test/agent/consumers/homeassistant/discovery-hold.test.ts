/**
 * The hold after a refused discovery (discovery-hold.ts): its backoff doubles up to the cap,
 * the refusal is logged once, an accepted discovery ends it; under MQTT 3.1.1 two closes
 * right after the discovery are a refusal, a connection that outlives the window is not.
 * On vitest's fake timers: the delays are what is under test.
 */
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DiscoveryHold } from '../../../../agent/consumers/homeassistant/discovery-hold.js';
import { capturingLogger, type CapturedLog } from '../../../helpers/logger.js';

const TOPIC = 'homeassistant/device/gw/config';

function hold(log: CapturedLog, retries: number[], closed: string[] = []) {
  return new DiscoveryHold({
    topic: TOPIC,
    logger: log.logger,
    retry: () => retries.push(Date.now()),
    closedAfterDiscovery: (error) => closed.push(error),
    retryMinMs: 1000,
    retryMaxMs: 5000,
    closeWindowMs: 500,
  });
}

const warnings = (log: CapturedLog) => log.records.filter((r) => r.level === 40);

describe('DiscoveryHold', () => {
  beforeEach(() => vi.useFakeTimers({ now: 0 }));
  afterEach(() => vi.useRealTimers());

  it('retries after a backoff doubling up to the cap; warns once; accepted ends it', () => {
    const log = capturingLogger();
    const retries: number[] = [];
    const h = hold(log, retries);
    expect(h.holding).toBe(false);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      h.refused('Publish error: Not authorized (135)');
      const before = Date.now();
      vi.advanceTimersByTime(10_000);
      waits.push(retries.at(-1)! - before);
    }
    expect(waits).toEqual([1000, 2000, 4000, 5000, 5000]);
    expect(h.holding).toBe(true);
    expect(warnings(log)).toHaveLength(1);
    expect(warnings(log)[0]).toMatchObject({
      topic: TOPIC,
      err: 'Publish error: Not authorized (135)',
      retryInMs: 1000,
    });
    expect(warnings(log)[0]!.msg).toContain(`publish ${TOPIC}`);

    h.refused('again');
    h.accepted();
    expect(h.holding).toBe(false);
    const count = retries.length;
    vi.advanceTimersByTime(10_000);
    expect(retries).toHaveLength(count); // the pending retry was cancelled
    expect(log.messages()).toContain('Home Assistant discovery accepted by the broker again');
    // After an accepted discovery a new refusal starts the backoff over and warns again.
    h.refused('later');
    expect(warnings(log).at(-1)).toMatchObject({ retryInMs: 1000 });
    h.stop();
  });

  it('MQTT 3.1.1: two closes right after the discovery are a refusal; a lived connection is not', () => {
    const log = capturingLogger();
    const retries: number[] = [];
    const closed: string[] = [];
    const h = hold(log, retries, closed);

    // A close right after, then a connection that lives past the window: the count starts over.
    const first = new EventEmitter();
    h.sentUnconfirmed(first);
    first.emit('close');
    const lived = new EventEmitter();
    h.sentUnconfirmed(lived);
    vi.advanceTimersByTime(600);
    const second = new EventEmitter();
    h.sentUnconfirmed(second);
    second.emit('close');
    expect(h.holding).toBe(false);

    const third = new EventEmitter();
    h.sentUnconfirmed(third);
    third.emit('close');
    expect(h.holding).toBe(true);
    expect(closed).toHaveLength(1);
    expect(closed[0]).toMatch(/closed the connection right after the discovery, 2 times/);
    expect(warnings(log)).toHaveLength(1);

    // The retry's discovery lives past the window: accepted.
    const retried = new EventEmitter();
    h.sentUnconfirmed(retried);
    vi.advanceTimersByTime(600);
    expect(h.holding).toBe(false);
    h.stop();
  });
});
