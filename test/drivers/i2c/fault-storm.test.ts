/**
 * Random fault storms on a shared bus (fast-check, bounded): whatever the chips do, no
 * exception escapes a generator, no two transfers share the wire, every failed round is a
 * counted fault, and once the storm is over every sensor reads good values again.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createDefaultSimulatedI2CBus } from '../../../simulator/i2c/default-bus.js';
import type { I2CFault } from '../../../simulator/i2c/device.js';
import { onVirtualTime } from '../../helpers/virtual-time.js';
import { rig, runDriver } from '../../helpers/run-driver.js';

const STORM_FAULTS: I2CFault[] = [
  'eio',
  'eremoteio',
  'nack',
  'crc',
  'timeout',
  'unplugged',
  'power-on',
];
const CHIPS = ['tmp102', 'sht3x', 'bme280', 'si7021'] as const;

const stormEvent = fc.record({
  tick: fc.integer({ min: 1, max: 6 }),
  chip: fc.constantFrom(...CHIPS),
  fault: fc.constantFrom(...STORM_FAULTS),
  transfers: fc.integer({ min: 1, max: 4 }),
});

describe('fault storms on one bus', () => {
  it('keep every invariant', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stormEvent, { minLength: 1, maxLength: 8 }), async (storm) => {
        // On a virtual clock: the recovery rounds after the storm must not depend on how late
        // a busy machine runs the drivers' timers (an Si7021 polled late times out).
        const { sim, drivers, results } = await onVirtualTime(async () => {
          const sim = createDefaultSimulatedI2CBus({ hangMs: 80 });
          const { driver: make } = rig({ i2c: sim.bus });
          const drivers = {
            tmp102: make({ id: 'a', driver: 'tmp102', address: 0x48, extended: false }),
            sht3x: make({ id: 'b', driver: 'sht3x', address: 0x44 }),
            bme280: make({
              id: 'c',
              driver: 'bme280',
              address: 0x76,
              quantities: ['temperature', 'humidity'],
            }),
            si7021: make({ id: 'd', driver: 'si7021', address: 0x40, quantities: ['temperature'] }),
          };
          const results = await Promise.all(
            CHIPS.map((name) =>
              runDriver(drivers[name], {
                ticks: 16,
                intervalMs: 25,
                timeoutMs: 1000,
                beforeTick: (i) => {
                  for (const e of storm) {
                    if (e.chip !== name || e.tick !== i) continue;
                    if (e.fault === 'unplugged')
                      sim[name].inject('unplugged', { transfers: e.transfers * 3 });
                    else sim[name].inject(e.fault, { transfers: e.transfers });
                  }
                  // The storm is over: plugged back in for the last rounds.
                  if (i === 10) sim[name].clear();
                },
              }),
            ),
          );
          return { sim, drivers, results };
        });
        expect(sim.bus.overlaps).toBe(0);
        for (const [k, r] of results.entries()) {
          const quantities = drivers[CHIPS[k]].quantities.length;
          expect(r.failed.length).toBe(r.faults.length * quantities);
          expect(r.readings.at(-1)?.status).toBe(0);
        }
      }),
      { numRuns: 6, seed: 42 },
    );
  });
});
