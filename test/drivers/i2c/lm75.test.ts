import { describe, expect, it } from 'vitest';
import { lm75Celsius } from '../../../drivers/i2c/lm75.js';
import { SimulatedLm75 } from '../../../simulator/i2c/chips/lm75.js';
import { i2cRig, runDriver } from '../../helpers/run-driver.js';

describe('lm75Celsius (LM75A datasheet table 9 / LM75 table 1)', () => {
  it.each([
    [0x7f00, 127],
    [0x7ee0, 126.875],
    [0x1900, 25],
    [0x0020, 0.125],
    [0x0000, 0],
    [0xffe0, -0.125],
    [0xe700, -25],
    [0xc920, -54.875],
    [0xc900, -55],
  ])('11-bit raw %i → %s °C', (raw, celsius) => {
    expect(lm75Celsius(raw, 11)).toBe(celsius);
  });

  it.each([
    [0x7d00, 125],
    [0x1900, 25],
    [0x0080, 0.5],
    [0x00e0, 0.5], // bits below the 9th are ignored
    [0xff80, -0.5],
    [0xe700, -25],
    [0xc900, -55],
  ])('9-bit raw %i → %s °C', (raw, celsius) => {
    expect(lm75Celsius(raw, 9)).toBe(celsius);
  });
});

describe('LM75 driver against the simulated chip', () => {
  const config = {
    id: 'l',
    driver: 'lm75' as const,
    address: 0x4f,
    resolutionBits: 11 as const,
  };

  it('LM75A: 0.125 °C resolution, negative values', async () => {
    const { sim, driver } = i2cRig();
    sim.attach(0x4f, new SimulatedLm75({ resolutionBits: 11, values: { temperature: -18.2 } }));
    const { ok, faults } = await runDriver(driver(config), { ticks: 2, intervalMs: 30 });
    expect(faults).toEqual([]);
    expect(ok.map((r) => r.value)).toEqual([-18.25, -18.25]);
  });

  it('LM75: 0.5 °C resolution', async () => {
    const { sim, driver } = i2cRig();
    sim.attach(0x4f, new SimulatedLm75({ resolutionBits: 9, values: { temperature: 21.3 } }));
    const { ok } = await runDriver(driver({ ...config, resolutionBits: 9 }), { ticks: 1 });
    expect(ok[0].value).toBe(21.5);
  });

  it('wakes a chip left in shutdown', async () => {
    const { sim, driver } = i2cRig();
    const chip = sim.attach(0x4f, new SimulatedLm75({ values: { temperature: 40 } }));
    // Shutdown with a stale 0 °C in the register.
    await sim.writeByte(0x4f, 0x01, 0x01);
    chip.powerOn();
    await sim.writeByte(0x4f, 0x01, 0x01);
    const { ok } = await runDriver(driver(config), { ticks: 1 });
    expect(ok[0].value).toBe(40);
    expect(await sim.readByte(0x4f, 0x01)).toBe(0);
  });
});
