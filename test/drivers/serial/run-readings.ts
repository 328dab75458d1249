/** Test helper: run a driver through sensorReadings() on a bounded tick stream. */
import { sensorReadings } from '../../../drivers/rounds.js';
import { sleep } from '../../../drivers/time.js';
import type { Driver, Reading, SensorError } from '../../../drivers/types.js';

export interface RunOptions {
  /** Stop once this holds (checked after every reading). */
  until: (readings: Reading[], faults: SensorError[]) => boolean;
  /**
   * Called after every reading, e.g. to inject a fault mid-run. The next tick waits for a
   * returned promise, so a change made here is in place before the next round, however slow
   * the machine.
   */
  onReading?: (r: Reading, readings: Reading[], faults: SensorError[]) => void | Promise<void>;
  periodMs?: number;
  maxTicks?: number;
  timeoutMs?: number;
  backoffMinMs?: number;
  reopenAfter?: number;
}

export async function* ticksEvery(
  periodMs: number,
  max: number,
  signal: AbortSignal,
): AsyncGenerator<number> {
  for (let i = 0; i < max && !signal.aborted; i++) {
    yield Date.now();
    await sleep(periodMs, signal).catch(() => undefined);
  }
}

export async function runReadings(
  driver: Driver,
  o: RunOptions,
): Promise<{ readings: Reading[]; faults: SensorError[] }> {
  const ac = new AbortController();
  const readings: Reading[] = [];
  const faults: SensorError[] = [];
  const gen = sensorReadings(driver, {
    sensor: 's',
    ticks: ticksEvery(o.periodMs ?? 10, o.maxTicks ?? 200, ac.signal),
    timeoutMs: o.timeoutMs ?? 2000,
    signal: ac.signal,
    backoffMinMs: o.backoffMinMs ?? 1,
    backoffMaxMs: 50,
    reopenAfter: o.reopenAfter,
    onFault: (e) => faults.push(e),
  });
  try {
    for await (const r of gen) {
      readings.push(r);
      await o.onReading?.(r, readings, faults);
      if (o.until(readings, faults)) break;
    }
  } finally {
    ac.abort();
  }
  return { readings, faults };
}
