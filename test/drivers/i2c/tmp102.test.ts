import { describe, expect, it } from 'vitest';
import {
  TMP102_CONVERSION_TYP_MS,
  tmp102Celsius,
  tmp102OneShotConfig,
} from '../../../drivers/i2c/tmp102.js';
import { i2cWireMs } from '../../../drivers/i2c/wire-time.js';
import { SimulatedTmp102 } from '../../../simulator/i2c/chips/tmp102.js';
import { onVirtualTime } from '../../helpers/virtual-time.js';
import { i2cRig, runDriver } from '../../helpers/run-driver.js';

describe('tmp102Celsius (datasheet table 8.1 / 8.2)', () => {
  it.each([
    [0x7ff0, 127.9375],
    [0x6400, 100],
    [0x5000, 80],
    [0x1900, 25],
    [0x0040, 0.25],
    [0x0010, 0.0625],
    [0x0000, 0],
    [0xfff0, -0.0625],
    [0xffc0, -0.25],
    [0xe700, -25],
    [0xc900, -55],
  ])('12-bit raw %i → %s °C', (raw, celsius) => {
    expect(tmp102Celsius(raw)).toBe(celsius);
  });

  it.each([
    [0x4b01, 150],
    [0x3201, 100],
    [0x0c81, 25],
    [0x0009, 0.0625],
    [0xfff9, -0.0625],
    [0xf381, -25],
    [0xe481, -55],
  ])('13-bit extended raw %i → %s °C', (raw, celsius) => {
    expect(tmp102Celsius(raw)).toBe(celsius);
  });

  it('one-shot configuration sets OS and SD, and EM only in extended mode', () => {
    const [b1, b2] = tmp102OneShotConfig(true);
    expect(b1 & 0x81).toBe(0x81);
    expect(b2 & 0x10).toBe(0x10);
    expect(tmp102OneShotConfig(false)[1] & 0x10).toBe(0);
  });
});

describe('TMP102 driver against the simulated chip', () => {
  const config = { id: 't', driver: 'tmp102' as const, address: 0x48, extended: false };

  it('reads a negative temperature at 0.0625 °C resolution', async () => {
    const { sim, driver } = i2cRig();
    sim.attach(0x48, new SimulatedTmp102({ values: { temperature: -12.3 } }));
    const { ok, faults } = await runDriver(driver(config), { ticks: 3 });
    expect(faults).toEqual([]);
    expect(ok).toHaveLength(3);
    for (const r of ok) expect(r.value).toBe(-12.3125);
  });

  it('extended mode reports above 128 °C', async () => {
    const { sim, driver } = i2cRig();
    sim.attach(0x49, new SimulatedTmp102({ values: { temperature: 140.2 } }));
    const { ok } = await runDriver(driver({ ...config, address: 0x49, extended: true }), {
      ticks: 2,
    });
    expect(ok.map((r) => r.value)).toEqual([140.1875, 140.1875]);
  });

  it('each round starts a one-shot conversion and reads it once OS says it is complete', async () => {
    // On a virtual clock: on real time a busy machine can delay the look at 26 ms past the
    // 35 ms maximum, and the driver then rightly reads without looking.
    const { sim, chip, ok } = await onVirtualTime(async () => {
      const { sim, driver } = i2cRig();
      // Slower than the typical 26 ms, within the 35 ms maximum: a look at 26 ms sees OS = 0.
      const chip = sim.attach(
        0x48,
        new SimulatedTmp102({ conversionMs: 30, values: { temperature: 20 } }),
      );
      return { sim, chip, ...(await runDriver(driver(config), { ticks: 1 })) };
    });
    expect(ok.map((r) => r.value)).toEqual([20]);
    const [open, start, ...rest] = sim.transfers;
    const read = rest.at(-1)!;
    const looks = rest.slice(0, -1);
    expect([open.kind, start.kind, read.kind]).toEqual(['write', 'write', 'write-read']);
    expect(looks.every((t) => t.kind === 'write-read' && t.error === undefined)).toBe(true);
    // The first look came while the chip was converting (OS = 0), so the driver looked again.
    expect(looks.length).toBeGreaterThanOrEqual(2);
    expect(looks[0].start).toBeLessThan(start.start + 30);
    // Only a look that found OS = 1 lets the read through, so it follows the conversion's end.
    expect(looks.at(-1)!.start).toBeGreaterThanOrEqual(start.start + 30);
    expect(read.start).toBeGreaterThanOrEqual(start.start + 30);
    expect(chip.counters.writes).toBe(3 + looks.length);
  });

  it('the first look comes no earlier than the typical 26 ms after the command left the wire', async () => {
    const { sim, driver } = i2cRig();
    sim.attach(0x48, new SimulatedTmp102({ values: { temperature: 21 } }));
    const { ok } = await runDriver(driver(config), { ticks: 3 });
    expect(ok.map((r) => r.value)).toEqual([21, 21, 21]);
    // Per round: the start (a 4-byte write), looks, the read (both 2-byte pointer reads).
    const rounds = sim.transfers.slice(1);
    const starts = rounds.flatMap((t, i) => (t.kind === 'write' ? [i] : []));
    expect(starts).toHaveLength(3);
    for (const i of starts) {
      const start = rounds[i];
      const look = rounds[i + 1];
      expect(look.kind).toBe('write-read');
      // The driver times from when it issued the write; the simulated bus stamps its start a
      // few µs later in the same call.
      expect(look.start - start.start).toBeGreaterThanOrEqual(
        i2cWireMs(4) + TMP102_CONVERSION_TYP_MS - 0.05,
      );
    }
  });

  it('a chip that never reports completion is read at the 35 ms maximum, after a bounded number of looks', async () => {
    const { sim, driver } = i2cRig();
    sim.attach(0x48, new SimulatedTmp102({ conversionMs: 1000, values: { temperature: 20 } }));
    const { faults } = await runDriver(driver(config), { ticks: 1 });
    expect(faults).toEqual([]);
    const [, start, ...rest] = sim.transfers;
    const read = rest.at(-1)!;
    // Clock-based, not timer-based: the loop ends only once 35 ms have passed since the start.
    expect(read.start - start.end).toBeGreaterThanOrEqual(35);
    // About one look a millisecond from 26 to 35 ms, however late the timers run.
    expect(rest.length - 1).toBeLessThanOrEqual(12);
  });

  it('a chip power-cycled while unplugged is reconfigured and read again', async () => {
    const { sim, driver } = i2cRig();
    const chip = sim.attach(0x48, new SimulatedTmp102({ values: { temperature: 30 } }));
    const { ok, faults, readings } = await runDriver(driver(config), {
      ticks: 8,
      beforeTick: (i) => {
        if (i === 2) chip.unplug();
        if (i === 5) chip.replug();
      },
    });
    expect(faults.length).toBeGreaterThanOrEqual(3);
    expect(faults.every((f) => f.code === 'NACK')).toBe(true);
    expect(chip.counters.powerOns).toBe(2);
    expect(readings.at(-1)?.status).toBe(0);
    expect(ok.at(-1)?.value).toBe(30);
  });
});
