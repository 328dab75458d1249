/** Test helpers: a SharedI2CBus over a simulated bus, and a bounded run of sensorReadings. */
import { sensorReadings } from '../../../drivers/rounds.js';
import { SharedI2CBus, type SharedI2CBusOptions } from '../../../drivers/i2c/shared-bus.js';
import { sleep } from '../../../drivers/time.js';
import type { Driver, Reading, SensorError } from '../../../drivers/types.js';
import { SimulatedI2CBus, type SimulatedI2CBusOptions } from '../../../simulator/i2c/bus.js';

export function sharedOver(
  options: SimulatedI2CBusOptions = {},
  busOptions: SharedI2CBusOptions = {},
): { sim: SimulatedI2CBus; bus: SharedI2CBus; opens: () => number } {
  const sim = new SimulatedI2CBus(options);
  let opens = 0;
  const bus = new SharedI2CBus(
    1,
    async () => {
      opens++;
      return sim;
    },
    busOptions,
  );
  return { sim, bus, opens: () => opens };
}

/** Config fields every sensor has after schema defaults. */
export const common = { enabled: true, bus: 1 } as const;

export interface RunOptions {
  ticks: number;
  intervalMs?: number;
  timeoutMs?: number;
  reopenAfter?: number;
  /** Called before tick i is issued (inject faults here). */
  beforeTick?: (i: number) => void | Promise<void>;
}

export interface RunResult {
  readings: Reading[];
  faults: SensorError[];
  /** Readings grouped by tick order of arrival, quantity-wise flattened. */
  ok: Reading[];
  failed: Reading[];
}

/** Drives a driver through sensorReadings for a bounded number of ticks. */
export async function run(driver: Driver, o: RunOptions): Promise<RunResult> {
  const controller = new AbortController();
  const faults: SensorError[] = [];
  async function* ticks(): AsyncGenerator<number> {
    for (let i = 0; i < o.ticks; i++) {
      if (i > 0) await sleep(o.intervalMs ?? 20);
      await o.beforeTick?.(i);
      yield Date.now();
    }
  }
  const readings: Reading[] = [];
  for await (const r of sensorReadings(driver, {
    sensor: 's',
    ticks: ticks(),
    timeoutMs: o.timeoutMs ?? 2000,
    signal: controller.signal,
    backoffMinMs: 1,
    backoffMaxMs: 2,
    reopenAfter: o.reopenAfter ?? 3,
    onFault: (e) => faults.push(e),
  })) {
    readings.push(r);
  }
  return {
    readings,
    faults,
    ok: readings.filter((r) => r.status === 0),
    failed: readings.filter((r) => r.status === 2),
  };
}
