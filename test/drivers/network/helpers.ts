/** Shared test plumbing for the network drivers: bounded tick sources and collectors. */
import { sensorReadings, type SensorRoundsOptions } from '../../../drivers/rounds.js';
import { sleep } from '../../../drivers/time.js';
import type { Driver, Reading } from '../../../drivers/types.js';

/** `count` ticks, `everyMs` apart; `before(i)` runs before tick i (fault injection). */
export async function* ticks(
  count: number,
  everyMs: number,
  before?: (i: number) => void | Promise<void>,
): AsyncGenerator<number> {
  for (let i = 0; i < count; i++) {
    if (i > 0) await sleep(everyMs);
    await before?.(i);
    yield Date.now();
  }
}

/** Every reading a driver yields for these ticks, with sensible test defaults. */
export async function readAll(
  driver: Driver,
  opts: Partial<SensorRoundsOptions> & Pick<SensorRoundsOptions, 'ticks'>,
): Promise<Reading[]> {
  const out: Reading[] = [];
  const gen = sensorReadings(driver, {
    sensor: 's',
    timeoutMs: 2000,
    signal: new AbortController().signal,
    backoffMinMs: 0,
    backoffMaxMs: 0,
    reopenAfter: 3,
    ...opts,
  });
  for await (const r of gen) out.push(r);
  return out;
}
