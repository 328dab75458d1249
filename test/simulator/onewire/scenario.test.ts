import { afterEach, describe, expect, it } from 'vitest';
import type { SensorConfigOf } from '../../../drivers/registry.js';
import { createDs18b20 } from '../../../drivers/onewire/ds18b20.js';
import { ReadingStatus } from '../../../drivers/types.js';
import { createW1Simulation, type W1Simulation } from '../../../simulator/onewire/scenario.js';
import { runDriver } from '../../helpers/run-driver.js';

let sim: W1Simulation | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

describe('default 1-Wire scenario', () => {
  it('gives two DS18B20 with plausible values after the power-on reading', async () => {
    sim = await createW1Simulation({ updateMs: 20 });
    expect(sim.sensors.map((s) => s.driver)).toEqual(['ds18b20', 'ds18b20']);
    const [flow, outdoor] = await Promise.all(
      sim.sensors.map((s) =>
        runDriver(createDs18b20(s as SensorConfigOf<'ds18b20'>), {
          intervalMs: 25,
          until: (rs) => rs.filter((r) => r.status === ReadingStatus.Ok).length >= 2,
        }),
      ),
    );
    const last = (rs: typeof flow.readings) => rs[rs.length - 1].value;
    expect(Math.abs(last(flow.readings) - 62)).toBeLessThan(6);
    expect(Math.abs(last(outdoor.readings) + 3)).toBeLessThan(5);
    expect(flow.faults).toEqual([]);
  });
});
