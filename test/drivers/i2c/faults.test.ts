/**
 * Every injected fault, on every driver: a counted fault with the right code, never an
 * exception out of the generator, and good readings again afterwards.
 */
import { describe, expect, it } from 'vitest';
import { SharedI2CBus } from '../../../drivers/i2c/shared-bus.js';
import { createBme280 } from '../../../drivers/i2c/bme280.js';
import { createLm75 } from '../../../drivers/i2c/lm75.js';
import { createMcp9808 } from '../../../drivers/i2c/mcp9808.js';
import { createSht3x } from '../../../drivers/i2c/sht3x.js';
import { createSi7021 } from '../../../drivers/i2c/si7021.js';
import { createTmp102 } from '../../../drivers/i2c/tmp102.js';
import type { Driver, SensorErrorCode } from '../../../drivers/types.js';
import {
  createDefaultSimulatedI2CBus,
  type DefaultSimulatedI2CBus,
} from '../../../simulator/i2c/default-bus.js';
import type { SimulatedI2CDevice } from '../../../simulator/i2c/device.js';
import { onVirtualTime } from '../../helpers/virtual-time.js';
import { common, run } from './helpers.js';

type Chip = Exclude<keyof DefaultSimulatedI2CBus, 'bus'>;

const DRIVERS: Record<Chip, (bus: SharedI2CBus) => Driver> = {
  tmp102: (bus) =>
    createTmp102({ ...common, id: 'a', driver: 'tmp102', address: 0x48, extended: false }, bus),
  lm75: (bus) =>
    createLm75({ ...common, id: 'b', driver: 'lm75', address: 0x49, resolutionBits: 11 }, bus),
  mcp9808: (bus) =>
    createMcp9808({ ...common, id: 'c', driver: 'mcp9808', address: 0x18, resolution: 1 }, bus),
  sht3x: (bus) => createSht3x({ ...common, id: 'd', driver: 'sht3x', address: 0x44 }, bus),
  bme280: (bus) =>
    createBme280(
      {
        ...common,
        id: 'e',
        driver: 'bme280',
        address: 0x76,
        quantities: ['temperature', 'humidity'],
      },
      bus,
    ),
  si7021: (bus) =>
    createSi7021(
      { ...common, id: 'f', driver: 'si7021', address: 0x40, quantities: ['temperature'] },
      bus,
    ),
};

interface FaultCase {
  name: string;
  expected: SensorErrorCode;
  inject: (chip: SimulatedI2CDevice, tick: number) => void;
  timeoutMs?: number;
  intervalMs?: number;
  hangMs?: number;
}

const CASES: FaultCase[] = [
  {
    name: 'EIO on every retry of a transfer',
    expected: 'EIO',
    inject: (chip, i) => i === 3 && chip.inject('eio', { transfers: 3 }),
  },
  {
    name: 'EREMOTEIO on every retry of a transfer',
    expected: 'EIO',
    inject: (chip, i) => i === 3 && chip.inject('eremoteio', { transfers: 3 }),
  },
  {
    name: 'NACK',
    expected: 'NACK',
    inject: (chip, i) => i === 3 && chip.inject('nack', { transfers: 1 }),
  },
  {
    name: 'unplug, then replug (power-on reset)',
    expected: 'NACK',
    inject: (chip, i) => {
      if (i === 3) chip.unplug();
      if (i === 7) chip.replug();
    },
  },
  {
    name: 'a hung transfer (timeout)',
    expected: 'TIMEOUT',
    inject: (chip, i) => i === 3 && chip.inject('timeout', { transfers: 1 }),
    timeoutMs: 400,
    intervalMs: 60,
    hangMs: 600,
  },
];

describe.each(Object.keys(DRIVERS) as Chip[])('%s', (chipName) => {
  it.each(CASES)('$name → $expected fault, then recovery', async (c) => {
    // On a virtual clock: the good rounds before and after the fault must not turn into
    // timeouts because a busy machine ran a driver's conversion wait late.
    const r = await onVirtualTime(async () => {
      const sim = createDefaultSimulatedI2CBus({ hangMs: c.hangMs ?? 1000 });
      const bus = new SharedI2CBus(1, async () => sim.bus);
      const chip = sim[chipName];
      return run(DRIVERS[chipName](bus), {
        ticks: 14,
        intervalMs: c.intervalMs ?? 30,
        timeoutMs: c.timeoutMs ?? 2000,
        beforeTick: (i) => c.inject(chip, i),
      });
    });
    expect(r.faults.length).toBeGreaterThan(0);
    expect(r.faults.map((f) => f.code)).toContain(c.expected);
    expect(r.failed.length).toBe((r.faults.length * r.failed.length) / r.faults.length);
    // Good readings before the fault and again at the end.
    expect(r.readings[0].status).toBe(0);
    expect(r.readings.at(-1)?.status).toBe(0);
    expect(r.ok.at(-1)?.value).toBeGreaterThan(10);
  });
});
