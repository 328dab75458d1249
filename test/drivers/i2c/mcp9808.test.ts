import { describe, expect, it } from 'vitest';
import {
  MCP9808_CONVERSION_MS,
  mcp9808Celsius,
  mcp9808IdMismatch,
} from '../../../drivers/i2c/mcp9808.js';
import { SimulatedMcp9808 } from '../../../simulator/i2c/chips/mcp9808.js';
import { SimulatedTmp102 } from '../../../simulator/i2c/chips/tmp102.js';
import { i2cRig, runDriver } from '../../helpers/run-driver.js';

describe('mcp9808Celsius (datasheet equation 5-1)', () => {
  it.each([
    [0x0194, 25.25],
    [0xc194, 25.25], // alert flags T_A ≥ T_CRIT, > T_UPPER are ignored
    [0x07d0, 125],
    [0x0001, 0.0625],
    [0x0000, 0],
    [0x1fff, -0.0625],
    [0x1ff0, -1],
    [0x1e70, -25],
    [0x3d80, -40], // with the T_A < T_LOWER flag
  ])('raw %i → %s °C', (raw, celsius) => {
    expect(mcp9808Celsius(raw)).toBe(celsius);
  });

  it('accepts manufacturer 0x0054 / device 0x04xx only', () => {
    expect(mcp9808IdMismatch(0x0054, 0x0400)).toBeUndefined();
    expect(mcp9808IdMismatch(0x0054, 0x0401)).toBeUndefined();
    expect(mcp9808IdMismatch(0x0055, 0x0400)).toMatch(/manufacturer/);
    expect(mcp9808IdMismatch(0x0054, 0x0500)).toMatch(/device/);
  });

  it('conversion times by resolution', () => {
    expect(MCP9808_CONVERSION_MS).toEqual([30, 65, 130, 250]);
  });
});

describe('MCP9808 driver against the simulated chip', () => {
  const config = { id: 'm', driver: 'mcp9808' as const, address: 0x18, resolution: 3 };

  it('reads negative temperatures with the alert flags set, at the configured resolution', async () => {
    const { sim, driver } = i2cRig();
    const chip = sim.attach(0x18, new SimulatedMcp9808({ values: { temperature: -7.3 } }));
    const { ok, faults } = await runDriver(driver({ ...config, resolution: 1 }), {
      ticks: 2,
    });
    expect(faults).toEqual([]);
    // 0.25 °C steps: −7.3 is stored as −7.5 (the chip truncates toward −∞).
    expect(ok.map((r) => r.value)).toEqual([-7.5, -7.5]);
    expect(chip.counters.reads).toBeGreaterThanOrEqual(4);
  });

  it('rejects a chip whose ID registers are not an MCP9808 (DEVICE)', async () => {
    const { sim, driver } = i2cRig();
    // A TMP102 strapped oddly answers at 0x18 in this test: its registers 6/7 read otherwise.
    sim.attach(0x18, new SimulatedTmp102());
    const { faults, ok } = await runDriver(driver(config), { ticks: 2 });
    expect(ok).toEqual([]);
    expect(faults.map((f) => f.code)).toEqual(['DEVICE', 'DEVICE']);
  });

  it('waits one conversion after setting the resolution before the first read', async () => {
    const { sim, driver } = i2cRig();
    sim.attach(0x18, new SimulatedMcp9808({ values: { temperature: 31 } }));
    const { ok } = await runDriver(driver({ ...config, resolution: 0 }), { ticks: 1 });
    // The power-on T_A of 0 °C would show if the driver read too early.
    expect(ok[0].value).toBe(31);
    const write = sim.transfers.find((t) => t.kind === 'write')!;
    const firstRead = sim.transfers.filter((t) => t.start > write.end)[0];
    expect(firstRead.start - write.end).toBeGreaterThanOrEqual(MCP9808_CONVERSION_MS[0] - 2);
  });
});
