/**
 * The sampler lends one round signal to many rounds in turn (drivers/rounds.ts), so a
 * driver must not pile things up on it round after round: abort listeners must not grow
 * with the rounds (the Modbus TCP pool keeps one per signal and connection, on purpose),
 * and there must be no AbortSignal.any() dependant (Node 20 never prunes those).
 */
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { createDriver, sensorSchema } from '../../drivers/registry.js';
import { silentLogger } from '../../agent/ops/logger.js';
import { dependants } from '../helpers/driver-conformance.js';
import { startDefaultScenario, type Simulation } from '../../simulator/scenario.js';

let sim: Simulation | undefined;
afterEach(async () => {
  await sim?.seams.close();
  await sim?.close();
  sim = undefined;
});

describe('every driver on a reused round signal', () => {
  it('leaves no abort listener and no dependant signal after its rounds', async () => {
    sim = await startDefaultScenario(silentLogger);
    const seams = sim.seams;
    const sensors = sim.sensors.map((s) => sensorSchema.parse(s));
    const kinds = new Set(sensors.map((s) => s.driver));
    expect(kinds.size).toBeGreaterThanOrEqual(11);
    const results = await Promise.all(
      sensors.map(async (config) => {
        const driver = createDriver(config, seams);
        const signal = new AbortController().signal;
        await driver.open?.(signal);
        // A round that fails (a reply that came too late on a busy machine) is a round too,
        // and must leave no listener behind either: the error paths are where leaks hide.
        const round = () => driver.measure(signal).catch(() => undefined);
        await round();
        const afterOne = getEventListeners(signal, 'abort').length;
        for (let i = 0; i < 4; i++) await round();
        await driver.close?.();
        return {
          id: config.id,
          growth: getEventListeners(signal, 'abort').length - afterOne,
          dependants: dependants(signal),
        };
      }),
    );
    for (const r of results) expect(r, r.id).toMatchObject({ growth: 0, dependants: 0 });
  }, 60_000);
});
