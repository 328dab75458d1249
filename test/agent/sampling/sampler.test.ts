import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../../agent/ops/logger.js';
import { TestClock } from '../../../drivers/time.js';
import { Sampler, type SampledSensor } from '../../../agent/sampling/sampler.js';
import {
  ReadingStatus,
  SensorError,
  type Driver,
  type Measurement,
  type Reading,
} from '../../../drivers/types.js';

/** A driver whose behaviour per round is scripted by the test; counts its calls. */
class FakeDriver implements Driver {
  readonly kind = 'fake';
  readonly quantities = ['temperature'] as const;
  opens = 0;
  closes = 0;
  rounds = 0;
  constructor(
    private readonly behave: (round: number, signal: AbortSignal) => Promise<Measurement[]>,
  ) {}
  async open(): Promise<void> {
    this.opens++;
  }
  measure(signal: AbortSignal): Promise<Measurement[]> {
    return this.behave(this.rounds++, signal);
  }
  async close(): Promise<void> {
    this.closes++;
  }
}

const answers = (value = 21.5) => new FakeDriver(async () => [{ quantity: 'temperature', value }]);
/** Never answers and ignores its abort signal, like a hung syscall. */
const dead = () => new FakeDriver(() => new Promise<Measurement[]>(() => undefined));

function sensor(id: string, index: number, driver: Driver, extra: Partial<SampledSensor> = {}) {
  return { id, index, driver, intervalMs: 100, timeoutMs: 50, ...extra } satisfies SampledSensor;
}

let samplers: Sampler[] = [];
afterEach(async () => {
  await Promise.all(samplers.map((s) => s.stop()));
  samplers = [];
});

function setup(sensors: SampledSensor[], clock = new TestClock(0)) {
  const seen: Reading[] = [];
  const sampler = new Sampler({
    sensors,
    clock,
    logger: silentLogger,
    emit: (r) => void seen.push(r),
    backoffMinMs: 1,
    backoffMaxMs: 1,
  });
  samplers.push(sampler);
  const of = (id: string) => seen.filter((r) => r.sensor === id);
  return { sampler, clock, seen, of };
}

describe('Sampler', () => {
  it('samples every sensor on its own grid; a dead sensor delays no one and ends as a timeout fault', async () => {
    const { sampler, clock, of } = setup([
      sensor('a', 0, answers(1)),
      // Its 1 s (real-time) timeout outlasts the test-clock second below on any machine.
      sensor('dead', 1, dead(), { timeoutMs: 1000 }),
      sensor('b', 2, answers(2), { intervalMs: 250 }),
    ]);
    const wall0 = clock.wallNow();
    sampler.start();
    for (let i = 0; i < 10; i++) await clock.advance(100);

    expect(of('a').map((r) => r.t - wall0)).toEqual([
      0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000,
    ]);
    expect(of('b').map((r) => r.t - wall0)).toEqual([0, 250, 500, 750, 1000]);

    // The dead round is bounded by its (real-time) timeout, although the driver ignores it.
    await vi.waitFor(
      () => expect(sampler.health().find((h) => h.id === 'dead')?.faults).toBeGreaterThan(0),
      { timeout: 20_000, interval: 20 },
    );
    const h = sampler.health().find((x) => x.id === 'dead')!;
    expect(h.lastError?.code).toBe('TIMEOUT');
    expect(h.state).toBe('degraded');
    await clock.advance(0);
    expect(of('dead')[0]).toMatchObject({ status: ReadingStatus.Fault });
    expect(Number.isNaN(of('dead')[0].value)).toBe(true);
  });

  it('reports a failing sensor and returns it to ok when it recovers', async () => {
    const flaky = new FakeDriver(async (round) => {
      if (round < 4) throw new SensorError('EIO', 'bus error EIO');
      return [{ quantity: 'temperature', value: 20 + round }];
    });
    const { sampler, clock, of } = setup([sensor('flaky', 0, flaky)]);
    sampler.start();
    for (let i = 0; i < 3; i++) await clock.advance(100);
    let h = sampler.health()[0];
    expect(h.state).toBe('failing');
    expect(h.consecutiveFailures).toBeGreaterThanOrEqual(3);
    expect(h.lastError).toMatchObject({ code: 'EIO', message: 'bus error EIO' });
    expect(flaky.closes).toBeGreaterThanOrEqual(1); // reopened after repeated failures

    for (let i = 0; i < 6; i++) await clock.advance(100);
    h = sampler.health()[0];
    expect(h.state).toBe('ok');
    expect(h.consecutiveFailures).toBe(0);
    expect(h.faults).toBe(4);
    expect(h.readings).toBe(of('flaky').filter((r) => r.status === ReadingStatus.Ok).length);
    expect(h.readings).toBeGreaterThan(0);
    expect(h.lastError?.code).toBe('EIO'); // kept for the operator
    // Closed after the 3rd and the 4th failure, so opened three times.
    expect(flaky.opens).toBe(3);
  });

  it('a sensor’s own backoffMaxMs overrides the sampler’s ceiling', async () => {
    const failing = () =>
      new FakeDriver(async () => {
        throw new SensorError('EIO', 'bus error EIO');
      });
    const clock = new TestClock(0);
    const seen: Reading[] = [];
    const sampler = new Sampler({
      sensors: [
        sensor('default', 0, failing(), { intervalMs: 50 }),
        sensor('capped', 1, failing(), { intervalMs: 50, backoffMaxMs: 250 }),
      ],
      clock,
      logger: silentLogger,
      emit: (r) => void seen.push(r),
      backoffMinMs: 250,
      backoffMaxMs: 60_000,
    });
    samplers.push(sampler);
    sampler.start();
    for (let i = 0; i < 100; i++) await clock.advance(50);
    const attempts = (id: string) => seen.filter((r) => r.sensor === id).length;
    // 5 s: retries every 250 ms when capped there; 250, 500, 1000, 2000 ms apart otherwise.
    expect(attempts('capped')).toBeGreaterThanOrEqual(18);
    expect(attempts('default')).toBeLessThanOrEqual(5);
  });

  it('counts skipped slots when a round overruns, and never bursts', async () => {
    const clock = new TestClock(0);
    // Round 2 takes 350 ms of (test-clock) time: slots 300, 400 and 500 pass meanwhile.
    const slow = new FakeDriver(async (round) => {
      if (round === 2) await clock.sleep(350);
      return [{ quantity: 'temperature', value: round }];
    });
    const { sampler, of } = setup([sensor('slow', 0, slow, { timeoutMs: 10_000 })], clock);
    const wall0 = clock.wallNow();
    sampler.start();
    for (let i = 0; i < 10; i++) await clock.advance(100);
    // Slot 500 starts late at 550 (lag 50); 300 and 400 are skipped, never run back to back.
    expect(of('slow').map((r) => r.t - wall0)).toEqual([
      0, 100, 200, 550, 600, 700, 800, 900, 1000,
    ]);
    const h = sampler.health()[0];
    expect(h.skippedSlots).toBe(2);
    expect(h.state).toBe('degraded');
    expect(sampler.schedulingLag().maxMs).toBeCloseTo(50, 0);
  });

  it('measures the achieved rate and counts progress', async () => {
    const { sampler, clock } = setup([sensor('a', 0, answers()), sensor('b', 1, answers())]);
    sampler.start();
    const before = sampler.progress();
    for (let i = 0; i < 50; i++) await clock.advance(100);
    expect(sampler.progress()).toBeGreaterThanOrEqual(before + 2 * 49);
    for (const h of sampler.health()) expect(h.achievedRateHz).toBeCloseTo(10, 0);
  });

  it('spreads first samples over the interval when asked', async () => {
    const clock = new TestClock(0);
    const sensors = Array.from({ length: 20 }, (_, i) => sensor(`s${i}`, i, answers()));
    const seen: Reading[] = [];
    const sampler = new Sampler({
      sensors,
      clock,
      logger: silentLogger,
      emit: (r) => void seen.push(r),
      startSpreadMs: 100,
    });
    samplers.push(sampler);
    const wall0 = clock.wallNow();
    sampler.start();
    await clock.advance(99);
    const firstOffsets = new Set(seen.map((r) => Math.floor(r.t - wall0)));
    expect(seen).toHaveLength(20);
    expect(firstOffsets.size).toBeGreaterThan(15);
  });

  it('replace() keeps untouched sensors running, restarts changed ones, stops removed ones', async () => {
    const a = answers(1);
    const b = answers(2);
    const c = answers(3);
    const { sampler, clock, of } = setup([sensor('a', 0, a), sensor('b', 1, b), sensor('c', 2, c)]);
    const wall0 = clock.wallNow();
    sampler.start();
    for (let i = 0; i < 3; i++) await clock.advance(100);

    const d = answers(4);
    await sampler.replace([
      sensor('a', 0, a),
      sensor('b', 1, b, { intervalMs: 200 }),
      sensor('d', 2, d),
    ]);
    for (let i = 0; i < 3; i++) await clock.advance(100);

    // a never stopped: one open, no close, an unbroken grid.
    expect(a.opens).toBe(1);
    expect(a.closes).toBe(0);
    expect(of('a').map((r) => r.t - wall0)).toEqual([0, 100, 200, 300, 400, 500, 600]);
    // b restarted with its new interval; c closed and silent; d started.
    expect(b.opens).toBe(2);
    expect(b.closes).toBe(1);
    expect(c.closes).toBe(1);
    const cCount = of('c').length;
    await clock.advance(500);
    expect(of('c')).toHaveLength(cCount);
    expect(of('d').length).toBeGreaterThan(3);
    expect(sampler.health().map((h) => h.id)).toEqual(['a', 'b', 'd']);
  });

  it('puts a sensor added by a reload on the grid the others run on, without counting skips', async () => {
    const a = answers(1);
    const { sampler, clock, of } = setup([sensor('a', 0, a)]);
    const wall0 = clock.wallNow();
    sampler.start();
    await clock.advance(230);
    await sampler.replace([sensor('a', 0, a), sensor('late', 1, answers(2))]);
    for (let i = 0; i < 4; i++) await clock.advance(100);
    // Slot 2 (due 200) is still fresh at 230: sampled at once, then on the shared grid.
    expect(of('late').map((r) => r.t - wall0)).toEqual([230, 300, 400, 500, 600]);
    expect(of('a').map((r) => r.t - wall0)).toEqual([0, 100, 200, 300, 400, 500, 600]);
    expect(sampler.health().find((h) => h.id === 'late')?.skippedSlots).toBe(0);
  });

  it('replace() compares configKey when given: a fresh driver for an unchanged config is not used', async () => {
    const running = answers(1);
    const fresh = answers(1);
    const { sampler, clock, of } = setup([sensor('a', 0, running, { configKey: 'k1' })]);
    sampler.start();
    await clock.advance(100);
    await sampler.replace([sensor('a', 0, fresh, { configKey: 'k1' })]);
    await clock.advance(200);
    expect(fresh.opens + fresh.rounds).toBe(0);
    expect(running.closes).toBe(0);
    expect(of('a')).toHaveLength(4);
    // A changed key restarts the sensor on the new driver.
    await sampler.replace([sensor('a', 0, fresh, { configKey: 'k2' })]);
    await clock.advance(100);
    expect(running.closes).toBe(1);
    expect(fresh.opens).toBe(1);
    expect(fresh.rounds).toBeGreaterThan(0);
  });

  it('stop() waits for every loop, closes every driver, and emits nothing after', async () => {
    const drivers = [answers(), answers(), dead()];
    const { sampler, clock, seen } = setup(
      drivers.map((d, i) => sensor(`s${i}`, i, d, { timeoutMs: 60_000 })),
    );
    sampler.start();
    await clock.advance(250);
    await sampler.stop(); // the dead one is stuck in measure(); stop must not hang on it
    expect(drivers.map((d) => d.closes)).toEqual([1, 1, 1]);
    const count = seen.length;
    await clock.advance(1000);
    expect(seen).toHaveLength(count);
    expect(clock.pending).toBe(0);
  });

  it('a sensor stopped while it waits for a long slot closes at once; one due in the same millisecond keeps its slot', async () => {
    const slow = answers(1);
    const other = answers(2);
    const { sampler, clock, of } = setup([
      sensor('slow', 0, slow, { intervalMs: 60_000 }),
      sensor('other', 1, other, { intervalMs: 60_000 }),
    ]);
    const wall0 = clock.wallNow();
    sampler.start();
    await clock.advance(1000);
    // Both wait for the slot at 60 s (one shared wait); removing one wakes it early.
    await sampler.replace([sensor('other', 1, other, { intervalMs: 60_000 })]);
    expect(slow.closes).toBe(1);
    expect(of('other').map((r) => r.t - wall0)).toEqual([0]);
    await clock.advance(59_000);
    expect(of('other').map((r) => r.t - wall0)).toEqual([0, 60_000]);
    expect(of('slow')).toHaveLength(1);
  });

  it('keeps sampling when emit throws', async () => {
    const clock = new TestClock(0);
    let calls = 0;
    const sampler = new Sampler({
      sensors: [sensor('a', 0, answers())],
      clock,
      logger: silentLogger,
      emit: () => {
        calls++;
        throw new Error('ring closed');
      },
    });
    samplers.push(sampler);
    sampler.start();
    for (let i = 0; i < 5; i++) await clock.advance(100);
    expect(calls).toBe(6);
  });

  it('rejects duplicate sensor ids', () => {
    expect(
      () =>
        new Sampler({
          sensors: [sensor('x', 0, answers()), sensor('x', 1, answers())],
          logger: silentLogger,
          emit: () => undefined,
        }),
    ).toThrow(/duplicate sensor id "x"/);
  });
});
