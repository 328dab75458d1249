/**
 * The conformance suite every driver passes: on simulated hardware, one suite per descriptor
 * in DRIVERS (test/drivers/conformance.test.ts), and opt-in on real hardware
 * (test/drivers/conformance-hw.test.ts). It talks to the `Driver` interface directly:
 *
 * - open, measure, close, open again, measure: every round yields exactly the driver's
 *   declared quantities, once each, with finite values;
 * - rounds on one reused signal leave no growing abort listeners and no AbortSignal.any()
 *   dependants (the sampler lends one round signal to many rounds);
 * - an aborted measure rejects with the abort (the signal's reason, an error caused by it,
 *   or a TIMEOUT SensorError) and leaves no abort listener; where the bench can hang the
 *   device, the abort comes while the measure waits on it, so only the abort can end it;
 * - a device fault (missing device, CRC error, timeout, …) makes the next measure, bounded
 *   by a round timeout as the engine bounds it, reject with a SensorError of the fault's
 *   codes, never anything else, and leaves no more abort listeners than a good round.
 *
 * A driver with measureInto() passes every check twice: through measure() and through
 * measureInto() (its sink turned into a promise here).
 */
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  SensorError,
  type Driver,
  type Measurement,
  type SensorErrorCode,
} from '../../drivers/types.js';

/** A device fault a bench can inject, and the codes the next measure may reject with. */
export interface DeviceFault {
  name: string;
  codes: readonly SensorErrorCode[];
}

/** One driver over its (simulated or real) device, ready to open. */
export interface Bench {
  driver: Driver;
  /** Makes the device stop answering: a measure in flight then ends only by its abort… */
  hang?(): void | Promise<void>;
  /** …unless the driver's own timeout ends it (a TIMEOUT then proves nothing about the abort). */
  hangTimesOut?: boolean;
  /** Ends a hang, so close() (which may wait for a held wire) can finish. */
  release?(): void;
  /** Puts the named fault (one of the subject's) in place. */
  inject?(fault: string): void | Promise<void>;
  close(): Promise<void>;
}

export interface BenchOptions {
  /** How long a hung simulated transfer lasts before the adapter gives up (ms). */
  hangMs: number;
}

export interface ConformanceSubject {
  /** The descriptor's name; the driver must report it as its kind. */
  kind: string;
  start(options: BenchOptions): Promise<Bench>;
  faults: readonly DeviceFault[];
  /** Why fault injection is not run, where it cannot be (real hardware). */
  noFaults?: string;
}

/** A hung transfer in the abort test (benches whose hang ends by itself). */
const LONG_HANG_MS = 5_000;
/** A hung transfer in the fault tests: the adapter's timeout arrives soon. */
const SHORT_HANG_MS = 200;
/** The round timeout of the fault tests, as the round engine gives every round (ms). */
const ROUND_TIMEOUT_MS = 4_000;
/** Bound of one measure in these tests: far beyond any driver's own timeouts. */
const ROUND_BOUND_MS = 20_000;

/** Entries Node keeps for AbortSignal.any() results made from this signal. */
export function dependants(signal: AbortSignal): number {
  const key = Object.getOwnPropertySymbols(signal).find(
    (s) => s.description === 'kDependantSignals',
  );
  const set = key
    ? (signal as unknown as Record<symbol, Set<unknown> | undefined>)[key]
    : undefined;
  return set?.size ?? 0;
}

const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

async function withBench<T>(
  subject: ConformanceSubject,
  hangMs: number,
  body: (bench: Bench) => Promise<T>,
): Promise<T> {
  const bench = await subject.start({ hangMs });
  try {
    return await body(bench);
  } finally {
    bench.release?.();
    await bench.driver.close?.().catch(() => undefined);
    await bench.close();
  }
}

/** The ways a round can be measured on this driver: measure(), and measureInto() if it has one. */
type MeasurePath = (driver: Driver, signal: AbortSignal) => Promise<Measurement[]>;

const throughMeasure: MeasurePath = (driver, signal) => driver.measure(signal);

/** measureInto() as a promise; a sink called twice fails the test. */
const throughSink: MeasurePath = (driver, signal) =>
  new Promise((resolve, reject) => {
    let calls = 0;
    const once = () => expect(++calls, 'measureInto() called its sink twice').toBe(1);
    driver.measureInto!(signal, {
      measured: (value) => (once(), resolve(value)),
      failed: (err) => (once(), reject(err)),
    });
  });

function pathsOf(driver: Driver): MeasurePath[] {
  return driver.measureInto ? [throughMeasure, throughSink] : [throughMeasure];
}

/** One round per path, checked: exactly the declared quantities, each once, finite values. */
async function measureChecked(driver: Driver, signal: AbortSignal): Promise<void> {
  for (const path of pathsOf(driver)) {
    const measurements = await path(driver, signal);
    expect(measurements.map((m) => m.quantity).sort()).toEqual([...driver.quantities].sort());
    for (const m of measurements) expect(Number.isFinite(m.value), m.quantity).toBe(true);
  }
}

/** What a measure settled with, bounded so a measure that ignores its abort fails clearly. */
async function settle(p: Promise<unknown>): Promise<{ value?: unknown; error?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`measure still pending after ${ROUND_BOUND_MS} ms`)),
      ROUND_BOUND_MS,
    );
  });
  try {
    return { value: await Promise.race([p, bound]) };
  } catch (error) {
    if (error instanceof Error && error.message.startsWith('measure still pending')) throw error;
    return { error };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Whether a rejection is the abort: its reason itself, an error caused by it, or a TIMEOUT
 * SensorError — a driver may read any abort of its round signal as the round's timeout, which
 * is what the round engine counts an ended round as.
 */
function isTheAbort(error: unknown, reason: unknown, timeoutCounts = true): boolean {
  if (timeoutCounts && error instanceof SensorError && error.code === 'TIMEOUT') return true;
  for (let e = error, depth = 0; e !== undefined && depth < 4; depth++) {
    if (e === reason) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

/** A round signal as the engine makes one: aborted with a TimeoutError after `ms`. */
function roundSignal(ms: number): { signal: AbortSignal; done(): void } {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new DOMException('round timed out', 'TimeoutError')), ms);
  return { signal: ac.signal, done: () => clearTimeout(timer) };
}

export function describeConformance(name: string, subject: ConformanceSubject): void {
  describe(name, () => {
    it('opens, measures, closes, reopens and measures: exactly its declared quantities', async () => {
      await withBench(subject, LONG_HANG_MS, async ({ driver }) => {
        expect(driver.kind).toBe(subject.kind);
        expect(driver.quantities.length).toBeGreaterThan(0);
        expect(new Set(driver.quantities).size).toBe(driver.quantities.length);
        const signal = new AbortController().signal;
        await driver.open?.(signal);
        await measureChecked(driver, signal);
        await driver.close?.();
        await driver.open?.(signal);
        await measureChecked(driver, signal);
        await driver.close?.();
      });
    }, 60_000);

    it('leaves no growing abort listener and no dependant signal on a reused round signal', async () => {
      await withBench(subject, LONG_HANG_MS, async ({ driver }) => {
        const signal = new AbortController().signal;
        await driver.open?.(signal);
        await measureChecked(driver, signal);
        const afterOne = listeners(signal);
        for (let i = 0; i < 3; i++) await measureChecked(driver, signal);
        await driver.close?.();
        expect(listeners(signal) - afterOne).toBe(0);
        expect(dependants(signal)).toBe(0);
      });
    }, 60_000);

    it('an aborted measure rejects with the abort and leaves no abort listener', async () => {
      await withBench(subject, LONG_HANG_MS, async (bench) => {
        const { driver } = bench;
        await driver.open?.(new AbortController().signal);

        for (const path of pathsOf(driver)) {
          // Aborted before the call.
          const early = new AbortController();
          const earlyReason = new DOMException('stopped before the round', 'AbortError');
          early.abort(earlyReason);
          const before = await settle(path(driver, early.signal));
          expect(isTheAbort(before.error, earlyReason), String(before.error)).toBe(true);
          expect(listeners(early.signal)).toBe(0);

          // Aborted while the round waits on the device.
          await bench.hang?.();
          const late = new AbortController();
          const lateReason = new DOMException('stopped during the round', 'AbortError');
          const pending = path(driver, late.signal);
          // A moment for the request to reach the device; not an assertion on time.
          await new Promise((r) => setTimeout(r, 50));
          late.abort(lateReason);
          const during = await settle(pending);
          if (bench.hang) {
            const honoured = isTheAbort(during.error, lateReason, !bench.hangTimesOut);
            expect(honoured, String(during.error)).toBe(true);
          } else if (during.error !== undefined) {
            // A device that cannot be hung may answer before the abort is seen; if it did not,
            // the rejection is the abort.
            expect(isTheAbort(during.error, lateReason), String(during.error)).toBe(true);
          }
          expect(listeners(late.signal)).toBe(0);
        }
      });
    }, 60_000);

    if (subject.noFaults) {
      it.skip(`device faults: ${subject.noFaults}`, () => undefined);
      return;
    }
    it('has device faults to inject', () => {
      expect(subject.faults.length).toBeGreaterThan(0);
    });
    if (subject.faults.length === 0) return;
    describe.each(subject.faults)('$name', (fault) => {
      it(`rejects with a SensorError coded ${fault.codes.join(' or ')}`, async () => {
        await withBench(subject, SHORT_HANG_MS, async (bench) => {
          // One round signal for a good round and the faulted one, as the engine lends it.
          const round = roundSignal(ROUND_TIMEOUT_MS);
          await bench.driver.open?.(round.signal);
          await measureChecked(bench.driver, round.signal);
          const afterGood = listeners(round.signal);
          await bench.inject?.(fault.name);
          for (const path of pathsOf(bench.driver)) {
            const result = await settle(path(bench.driver, round.signal));
            expect(result.error, 'resolved instead of failing').toBeDefined();
            expect(result.error).toBeInstanceOf(SensorError);
            const { code } = result.error as SensorError;
            expect(fault.codes, String(result.error)).toContain(code);
          }
          round.done();
          // The error paths are where leaks hide.
          expect(listeners(round.signal)).toBeLessThanOrEqual(afterGood);
          expect(dependants(round.signal)).toBe(0);
        });
      }, 60_000);
    });
  });
}
