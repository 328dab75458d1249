import { describe, expect, it } from 'vitest';
import { roundSignal, RoundEngine, sensorReadings, toSensorError } from '../../drivers/rounds.js';
import { sleep } from '../../drivers/time.js';
import { waitUntil } from '../helpers/wait.js';
import {
  ReadingStatus,
  SensorError,
  type Driver,
  type Measurement,
  type MeasureSink,
  type Reading,
} from '../../drivers/types.js';

/** A driver whose rounds follow a script: a number is a value, a string an error code, 'hang' waits for the abort. */
function scriptedDriver(script: Array<number | string>) {
  const calls = { open: 0, close: 0, measure: 0 };
  const driver: Driver = {
    kind: 'scripted',
    quantities: ['temperature'],
    open: async () => {
      calls.open++;
    },
    close: async () => {
      calls.close++;
    },
    measure: async (signal): Promise<Measurement[]> => {
      const step = script[calls.measure++ % script.length];
      if (step === 'hang') {
        await new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason as Error)),
        );
      }
      if (typeof step === 'string')
        throw Object.assign(new Error(`injected ${step}`), { code: step });
      return [{ quantity: 'temperature', value: step }];
    },
  };
  return { driver, calls };
}

async function* ticks(n: number): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) yield 1_000 * i;
}

async function collect(
  driver: Driver,
  n: number,
  extra: Partial<Parameters<typeof sensorReadings>[1]> = {},
) {
  const out: Reading[] = [];
  const faults: string[] = [];
  let clock = 0;
  for await (const r of sensorReadings(driver, {
    sensor: 's1',
    ticks: ticks(n),
    timeoutMs: 50,
    signal: new AbortController().signal,
    backoffMinMs: 0,
    now: () => (clock += 10),
    onFault: (e) => faults.push(e.code),
    ...extra,
  })) {
    out.push(r);
  }
  return { out, faults };
}

describe('sensorReadings', () => {
  it('yields one reading per measurement with the sensor id and round time', async () => {
    const { driver, calls } = scriptedDriver([21.5, 22]);
    const { out } = await collect(driver, 3);
    expect(out.map((r) => [r.sensor, r.quantity, r.value, r.status])).toEqual([
      ['s1', 'temperature', 21.5, ReadingStatus.Ok],
      ['s1', 'temperature', 22, ReadingStatus.Ok],
      ['s1', 'temperature', 21.5, ReadingStatus.Ok],
    ]);
    expect(calls.open).toBe(1);
    expect(calls.close).toBe(1); // closed when the ticks end
  });

  it('turns failures into counted Fault readings, reopens after repeated failures, and recovers', async () => {
    const { driver, calls } = scriptedDriver(['EIO', 'EREMOTEIO', 'ENXIO', 20, 20]);
    const { out, faults } = await collect(driver, 5, { reopenAfter: 3 });
    expect(faults).toEqual(['EIO', 'EIO', 'NACK']);
    expect(
      out.slice(0, 3).every((r) => r.status === ReadingStatus.Fault && Number.isNaN(r.value)),
    ).toBe(true);
    expect(out.slice(3).map((r) => r.value)).toEqual([20, 20]);
    expect(calls.close).toBeGreaterThanOrEqual(2); // once after the third failure, once at the end
    expect(calls.open).toBe(2);
  });

  it('ends a round that never answers with a TIMEOUT fault, and backs off without holding ticks', async () => {
    const { driver } = scriptedDriver(['hang', 'hang', 23]);
    const skipped: number[] = [];
    let clock = 0;
    const { out, faults } = await collect(driver, 20, {
      backoffMinMs: 25,
      now: () => (clock += 10),
      onSkip: (due) => skipped.push(due),
    });
    expect(faults.slice(0, 2)).toEqual(['TIMEOUT', 'TIMEOUT']);
    expect(skipped.length).toBeGreaterThan(0);
    expect(out.some((r) => r.value === 23)).toBe(true);
  });

  it('doubles the wait between retries of a failing sensor up to backoffMaxMs, never below the first wait', async () => {
    const attemptsWith = async (opts: { backoffMinMs: number; backoffMaxMs?: number }) => {
      const { driver, calls } = scriptedDriver(['EIO']);
      let clock = 0;
      const attempts: number[] = [];
      const rounds = new RoundEngine(driver, {
        sensor: 's1',
        timeoutMs: 1000,
        reopenAfter: 1000,
        now: () => clock,
        ...opts,
      });
      // A tick every 10 ms of the fake clock for 3 s.
      for (; clock <= 3000; clock += 10) {
        const before = calls.measure;
        await rounds.run(clock);
        if (calls.measure > before) attempts.push(clock);
      }
      await rounds.close();
      return attempts.slice(1).map((t, i) => t - attempts[i]);
    };
    const gaps = await attemptsWith({ backoffMinMs: 100, backoffMaxMs: 300 });
    expect(gaps.slice(0, 4)).toEqual([100, 200, 300, 300]);
    expect(Math.max(...gaps)).toBe(300);
    // Without a ceiling given, the default (30 s) lets it grow past a second.
    expect(await attemptsWith({ backoffMinMs: 100 })).toEqual([100, 200, 400, 800]);
    // A ceiling below the first wait is raised to it.
    expect(new Set(await attemptsWith({ backoffMinMs: 100, backoffMaxMs: 10 }))).toEqual(
      new Set([100]),
    );
  });

  it('backs off by the monotonic clock: a step of the wall clock neither stretches nor ends it', async () => {
    const { driver, calls } = scriptedDriver(['EIO']);
    let wall = Date.UTC(2026, 0, 1);
    let mono = 0;
    const rounds = new RoundEngine(driver, {
      sensor: 's1',
      timeoutMs: 1000,
      reopenAfter: 1000,
      backoffMinMs: 100,
      backoffMaxMs: 100,
      now: () => wall,
      elapsed: () => mono,
    });
    const attempts: number[] = [];
    for (; mono <= 1000; mono += 10, wall += 10) {
      // An hour back at 300 ms, an hour forward again at 600 ms.
      if (mono === 300) wall -= 3_600_000;
      if (mono === 600) wall += 3_600_000;
      const before = calls.measure;
      await rounds.run(wall);
      if (calls.measure > before) attempts.push(mono);
    }
    await rounds.close();
    expect(attempts.slice(1).map((t, i) => t - attempts[i])).toEqual(Array(10).fill(100));
  });

  it('stops yielding when the sensor signal aborts, even mid-round', async () => {
    const { driver, calls } = scriptedDriver(['hang']);
    const ctl = new AbortController();
    const it = sensorReadings(driver, {
      sensor: 's',
      ticks: ticks(100),
      timeoutMs: 10_000,
      signal: ctl.signal,
    });
    const next = it.next();
    await waitUntil(() => calls.measure === 1, { timeoutMs: 10_000, what: 'the round measuring' });
    ctl.abort(new Error('stop'));
    expect((await next).done).toBe(true);
  });
});

describe('RoundEngine', () => {
  const hung: Driver = {
    kind: 'hung',
    quantities: ['temperature', 'humidity'],
    // Ignores its signal entirely, as a hung syscall would.
    measure: () => new Promise<Measurement[]>(() => undefined),
    close: () => new Promise<void>(() => undefined),
  };

  it('ends a round the driver never ends as a TIMEOUT fault, and a close that never ends', async () => {
    const faults: string[] = [];
    const rounds = new RoundEngine(hung, {
      sensor: 'h',
      timeoutMs: 30,
      closeTimeoutMs: 30,
      reopenAfter: 1,
      signal: new AbortController().signal,
      onFault: (e) => faults.push(e.code),
    });
    const started = performance.now();
    const readings = await rounds.run(0);
    expect(readings?.map((r) => [r.quantity, r.status])).toEqual([
      ['temperature', ReadingStatus.Fault],
      ['humidity', ReadingStatus.Fault],
    ]);
    expect(faults).toEqual(['TIMEOUT']);
    // The timeout (30 ms) and the hung close after it (30 ms) both ended the waits.
    expect(performance.now() - started).toBeGreaterThanOrEqual(55);
    await rounds.close();
  });

  it('drops the late answer of a timed-out round: it never settles a later round', async () => {
    // Round 1 ignores its signal and answers 7 only once round 2 is under way; round 2
    // answers 2 after that. Round 2 must read 2, not the stale 7.
    const answers: Array<(m: Measurement[]) => void> = [];
    const late: Driver = {
      kind: 'late',
      quantities: ['temperature'],
      measure: () => new Promise<Measurement[]>((resolve) => answers.push(resolve)),
    };
    const faults: string[] = [];
    const rounds = new RoundEngine(late, {
      sensor: 'l',
      timeoutMs: 20,
      backoffMinMs: 1,
      onFault: (e) => faults.push(e.code),
    });
    const first = await rounds.run(0);
    expect(first?.map((r) => r.status)).toEqual([ReadingStatus.Fault]);
    expect(faults).toEqual(['TIMEOUT']);
    await sleep(5); // past the 1 ms backoff
    const second = rounds.run(1);
    expect(answers).toHaveLength(2);
    answers[0]([{ quantity: 'temperature', value: 7 }]);
    await sleep(1);
    answers[1]([{ quantity: 'temperature', value: 2 }]);
    expect((await second)?.map((r) => [r.value, r.status])).toEqual([[2, ReadingStatus.Ok]]);
    await rounds.close();
  });

  it('ends a hung round at once when the sensor stops, without a fault', async () => {
    const ctl = new AbortController();
    const faults: string[] = [];
    let measuring = false;
    const driver: Driver = {
      ...hung,
      measure: (signal) => {
        measuring = true;
        return hung.measure(signal);
      },
    };
    const rounds = new RoundEngine(driver, {
      sensor: 'h',
      timeoutMs: 60_000,
      signal: ctl.signal,
      onFault: (e) => faults.push(e.code),
    });
    const pending = rounds.run(0);
    // Mid-round: the driver is measuring (and never ends) when the sensor stops.
    await waitUntil(() => measuring, { timeoutMs: 10_000, what: 'the round measuring' });
    ctl.abort(new Error('shutting down'));
    await expect(pending).resolves.toBeUndefined();
    expect(faults).toEqual([]);
    await expect(rounds.run(1)).resolves.toBeUndefined();
  });

  it('reuses a round signal while rounds succeed, and takes a fresh one after a timeout', async () => {
    const seen: AbortSignal[] = [];
    let hang = false;
    const driver: Driver = {
      kind: 'spy',
      quantities: ['temperature'],
      measure: (signal) => {
        seen.push(signal);
        if (hang) return new Promise<Measurement[]>(() => undefined);
        return Promise.resolve([{ quantity: 'temperature', value: 1 }]);
      },
    };
    const rounds = new RoundEngine(driver, {
      sensor: 's',
      timeoutMs: 20,
      backoffMinMs: 0,
      signal: new AbortController().signal,
    });
    for (let i = 0; i < 3; i++) expect((await rounds.run(i))?.[0].value).toBe(1);
    expect(new Set(seen).size).toBe(1);
    hang = true;
    expect((await rounds.run(3))?.[0].status).toBe(ReadingStatus.Fault);
    expect(seen[3].aborted).toBe(true);
    expect(toSensorError(seen[3].reason).code).toBe('TIMEOUT');
    hang = false;
    expect((await rounds.run(4))?.[0].value).toBe(1);
    expect(seen[4]).not.toBe(seen[3]);
    expect(seen[4].aborted).toBe(false);
    // Reuse is capped, so a driver that leaks listeners cannot pile them up forever.
    for (let i = 5; i < 600; i++) await rounds.run(i);
    expect(new Set(seen.slice(4)).size).toBeGreaterThan(1);
    await rounds.close();
  });

  it('passes a driver error through as its fault code, without waiting for the timeout', async () => {
    const faults: string[] = [];
    const rounds = new RoundEngine(
      {
        kind: 'eio',
        quantities: ['temperature'],
        measure: () => Promise.reject(Object.assign(new Error('bus'), { code: 'EIO' })),
      },
      {
        sensor: 's',
        timeoutMs: 60_000,
        signal: new AbortController().signal,
        onFault: (e) => faults.push(e.code),
      },
    );
    expect((await rounds.run(0))?.[0].status).toBe(ReadingStatus.Fault);
    expect(faults).toEqual(['EIO']);
    await rounds.close();
  });
});

describe('RoundEngine with a driver that has measureInto()', () => {
  /** measure() for the first round (the engine opens the device with it), then measureInto(). */
  function sinkDriver(answer: (call: number, sink: MeasureSink, signal: AbortSignal) => void) {
    const calls = { measure: 0, measureInto: 0 };
    const sinks: MeasureSink[] = [];
    const driver: Driver = {
      kind: 'sink',
      quantities: ['temperature'],
      open: async () => undefined,
      measure: async () => {
        calls.measure++;
        return [{ quantity: 'temperature', value: 0 }];
      },
      measureInto: (signal, sink) => {
        sinks.push(sink);
        answer(calls.measureInto++, sink, signal);
      },
    };
    return { driver, calls, sinks };
  }

  it('measures through the sink once open: answers now or later, errors, and throws', async () => {
    const { driver, calls } = sinkDriver((call, sink) => {
      if (call === 0) sink.measured([{ quantity: 'temperature', value: 1 }]); // before returning
      if (call === 1) setTimeout(() => sink.measured([{ quantity: 'temperature', value: 2 }]), 2);
      if (call === 2) sink.failed(new SensorError('CRC', 'bad checksum'));
      if (call === 3) throw Object.assign(new Error('bus'), { code: 'EIO' });
    });
    const faults: string[] = [];
    const rounds = new RoundEngine(driver, {
      sensor: 's',
      timeoutMs: 60_000,
      backoffMinMs: 0,
      signal: new AbortController().signal,
      onFault: (e) => faults.push(e.code),
    });
    const results = [];
    for (let i = 0; i < 5; i++)
      results.push((await rounds.run(i))?.map((r) => [r.value, r.status]));
    expect(results).toEqual([
      [[0, ReadingStatus.Ok]],
      [[1, ReadingStatus.Ok]],
      [[2, ReadingStatus.Ok]],
      [[Number.NaN, ReadingStatus.Fault]],
      [[Number.NaN, ReadingStatus.Fault]],
    ]);
    expect(faults).toEqual(['CRC', 'EIO']);
    expect(calls).toEqual({ measure: 1, measureInto: 4 });
    await rounds.close();
  });

  it('ends a round whose sink is never called as a TIMEOUT, and its late answer reaches no round', async () => {
    const { driver, sinks } = sinkDriver((call, sink) => {
      if (call === 1) setTimeout(() => sink.measured([{ quantity: 'temperature', value: 2 }]), 2);
      // call 0 never answers, not even to its abort
    });
    const faults: string[] = [];
    const rounds = new RoundEngine(driver, {
      sensor: 's',
      timeoutMs: 20,
      backoffMinMs: 1,
      signal: new AbortController().signal,
      onFault: (e) => faults.push(e.code),
    });
    await rounds.run(0); // opens and measures through measure()
    expect((await rounds.run(1))?.map((r) => r.status)).toEqual([ReadingStatus.Fault]);
    expect(faults).toEqual(['TIMEOUT']);
    await sleep(5); // past the 1 ms backoff
    const second = rounds.run(2);
    sinks[0].measured([{ quantity: 'temperature', value: 7 }]); // the timed-out round, late
    expect((await second)?.map((r) => [r.value, r.status])).toEqual([[2, ReadingStatus.Ok]]);
    await rounds.close();
  });
});

describe('roundSignal', () => {
  it('aborts with a TimeoutError after the timeout, and not after done()', async () => {
    const parent = new AbortController();
    const aborted = (signal: AbortSignal) =>
      new Promise((r) => signal.addEventListener('abort', r, { once: true }));
    const late = roundSignal(parent.signal, 10);
    await aborted(late.signal);
    expect(toSensorError(late.signal.reason).code).toBe('TIMEOUT');
    const early = roundSignal(parent.signal, 10);
    early.done();
    // Timers of one length fire in the order they were set: a signal made after `early`
    // times out after early's own timeout would have.
    const after = roundSignal(parent.signal, 10);
    await aborted(after.signal);
    expect(early.signal.aborted).toBe(false);
  });

  it('follows the parent signal', () => {
    const parent = new AbortController();
    const r = roundSignal(parent.signal, 10_000);
    parent.abort(new Error('shutdown'));
    expect(r.signal.aborted).toBe(true);
    expect((r.signal.reason as Error).message).toBe('shutdown');
    r.done();
  });

  it('maps errno and errors to sensor error codes', () => {
    expect(toSensorError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })).code).toBe(
      'DISCONNECTED',
    );
    expect(toSensorError(new SensorError('CRC', 'bad')).code).toBe('CRC');
    expect(toSensorError(new Error('weird')).code).toBe('PROTOCOL');
  });
});
