/**
 * Every driver on one simulated bus, sampled concurrently through sensorReadings: bytes take
 * turns (no two transfers on the wire at once) while conversion waits overlap.
 */
import { describe, expect, it } from 'vitest';
import type { Driver } from '../../../drivers/types.js';
import { createDefaultSimulatedI2CBus } from '../../../simulator/i2c/default-bus.js';
import { onVirtualTime } from '../../helpers/virtual-time.js';
import { rig, runDriver, type Rig } from '../../helpers/run-driver.js';

function allDrivers(make: Rig['driver']): Driver[] {
  return [
    make({ id: 'a', driver: 'tmp102', address: 0x48, extended: false }),
    make({ id: 'b', driver: 'lm75', address: 0x49, resolutionBits: 11 }),
    make({ id: 'c', driver: 'mcp9808', address: 0x18, resolution: 3 }),
    make({ id: 'd', driver: 'sht3x', address: 0x44 }),
    make({
      id: 'e',
      driver: 'bme280',
      address: 0x76,
      quantities: ['temperature', 'pressure', 'humidity'],
    }),
    make({
      id: 'f',
      driver: 'si7021',
      address: 0x40,
      quantities: ['temperature', 'humidity'],
    }),
  ];
}

describe('six sensors on one I²C bus', () => {
  it('transfers never overlap, conversions do, and every sensor reports plausible values', async () => {
    // On a virtual clock: on real timers a starved process can poll the Si7021 after its
    // 100 ms limit and turn a good round into a TIMEOUT.
    const { sim, drivers, results } = await onVirtualTime(async () => {
      const sim = createDefaultSimulatedI2CBus({ clockHz: 400_000 });
      const { driver: make, seams } = rig({ i2c: sim.bus });
      const drivers = allDrivers(make);
      await seams.i2c(1).touch([0x48, 0x49, 0x18, 0x44, 0x76, 0x40]);
      const results = await Promise.all(
        drivers.map((d) => runDriver(d, { ticks: 5, intervalMs: 60 })),
      );
      return { sim, drivers, results };
    });

    for (const [i, r] of results.entries()) {
      expect(r.faults, drivers[i].kind).toEqual([]);
      expect(r.ok).toHaveLength(5 * drivers[i].quantities.length);
      for (const reading of r.ok) {
        const [lo, hi] = { temperature: [10, 35], humidity: [20, 80], pressure: [95_000, 105_000] }[
          reading.quantity
        ];
        expect(reading.value, `${drivers[i].kind} ${reading.quantity}`).toBeGreaterThan(lo);
        expect(reading.value).toBeLessThan(hi);
      }
    }

    // The wire: one transfer at a time.
    const log = [...sim.bus.transfers].sort((a, b) => a.start - b.start);
    expect(sim.bus.overlaps).toBe(0);
    for (let i = 1; i < log.length; i++)
      expect(log[i].start).toBeGreaterThanOrEqual(log[i - 1].end);

    // The conversions: while a TMP102 converts (between its one-shot write and its read),
    // other chips' transfers use the wire.
    const tmp = log.filter((t) => t.address === 0x48 && t.kind !== 'read');
    let interleaved = 0;
    for (let i = 0; i + 1 < tmp.length; i++) {
      if (tmp[i].kind !== 'write' || tmp[i + 1].kind !== 'write-read') continue;
      const [from, to] = [tmp[i].end, tmp[i + 1].start];
      interleaved += log.filter((t) => t.address !== 0x48 && t.start >= from && t.end <= to).length;
    }
    expect(interleaved).toBeGreaterThan(0);
  });
});
