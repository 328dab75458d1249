/**
 * Every injected fault, on every driver: a counted fault with the right code, never an
 * exception out of the generator, and good readings again afterwards.
 */
import { describe, expect, it } from 'vitest';
import type { SensorErrorCode } from '../../../drivers/types.js';
import {
  createDefaultSimulatedI2CBus,
  type DefaultSimulatedI2CBus,
} from '../../../simulator/i2c/default-bus.js';
import type { SimulatedI2CDevice } from '../../../simulator/i2c/device.js';
import { onVirtualTime } from '../../helpers/virtual-time.js';
import { rig, runDriver, type SensorEntry } from '../../helpers/run-driver.js';

type Chip = Exclude<keyof DefaultSimulatedI2CBus, 'bus'>;

const ENTRIES: Record<Chip, SensorEntry> = {
  tmp102: { id: 'a', driver: 'tmp102', address: 0x48, extended: false },
  lm75: { id: 'b', driver: 'lm75', address: 0x49, resolutionBits: 11 },
  mcp9808: { id: 'c', driver: 'mcp9808', address: 0x18, resolution: 1 },
  sht3x: { id: 'd', driver: 'sht3x', address: 0x44 },
  bme280: {
    id: 'e',
    driver: 'bme280',
    address: 0x76,
    quantities: ['temperature', 'humidity'],
  },
  si7021: { id: 'f', driver: 'si7021', address: 0x40, quantities: ['temperature'] },
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

describe.each(Object.keys(ENTRIES) as Chip[])('%s', (chipName) => {
  it.each(CASES)('$name → $expected fault, then recovery', async (c) => {
    // On a virtual clock: the good rounds before and after the fault must not turn into
    // timeouts because a busy machine ran a driver's conversion wait late.
    const r = await onVirtualTime(async () => {
      const sim = createDefaultSimulatedI2CBus({ hangMs: c.hangMs ?? 1000 });
      const { driver } = rig({ i2c: sim.bus });
      const chip = sim[chipName];
      return runDriver(driver(ENTRIES[chipName]), {
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
