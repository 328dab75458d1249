import { describe, expect, it } from 'vitest';
import { sht3xCelsius, sht3xCrc, sht3xDecode, sht3xHumidity } from '../../../drivers/i2c/sht3x.js';
import { SensorError } from '../../../drivers/types.js';
import { SimulatedSht3x } from '../../../simulator/i2c/chips/sht3x.js';
import { onVirtualTime } from '../../helpers/virtual-time.js';
import { i2cRig, runDriver } from '../../helpers/run-driver.js';

describe('SHT3x conversions and CRC (datasheet §4.12, §4.13)', () => {
  it('CRC-8 0x31 / init 0xFF: 0xBE 0xEF → 0x92', () => {
    expect(sht3xCrc([0xbe, 0xef])).toBe(0x92);
  });

  it.each([
    [0x0000, -45],
    [0xffff, 130],
    [0x6666, 25],
    [0x3333, -10],
    [0x1746, -29.09],
  ])('T raw %i → %s °C', (raw, celsius) => {
    expect(sht3xCelsius(raw)).toBeCloseTo(celsius, 2);
  });

  it.each([
    [0x0000, 0],
    [0xffff, 100],
    [0x8000, 50],
    [0x6666, 40],
  ])('RH raw %i → %s %', (raw, rh) => {
    expect(sht3xHumidity(raw)).toBeCloseTo(rh, 2);
  });

  it('decodes a frame with good CRCs and rejects a bad one with a CRC error', () => {
    const frame = Uint8Array.from([
      0x66,
      0x66,
      sht3xCrc([0x66, 0x66]),
      0x80,
      0x00,
      sht3xCrc([0x80, 0x00]),
    ]);
    const { temperature, humidity } = sht3xDecode(frame);
    expect(temperature).toBeCloseTo(25, 2);
    expect(humidity).toBeCloseTo(50, 2);
    for (const i of [2, 5]) {
      const bad = Uint8Array.from(frame);
      bad[i] ^= 0x01;
      expect(() => sht3xDecode(bad)).toThrow(SensorError);
      try {
        sht3xDecode(bad);
      } catch (err) {
        expect((err as SensorError).code).toBe('CRC');
      }
    }
  });
});

describe('SHT3x driver against the simulated chip', () => {
  const config = { id: 'h', driver: 'sht3x' as const, address: 0x45 };

  it('reports temperature (below zero) and humidity', async () => {
    const { sim, driver } = i2cRig();
    sim.attach(0x45, new SimulatedSht3x({ values: { temperature: -20.5, humidity: 65 } }));
    const { ok, faults } = await runDriver(driver(config), { ticks: 2 });
    expect(faults).toEqual([]);
    expect(ok.map((r) => r.quantity)).toEqual([
      'temperature',
      'humidity',
      'temperature',
      'humidity',
    ]);
    expect(ok[0].value).toBeCloseTo(-20.5, 2);
    expect(ok[1].value).toBeCloseTo(65, 2);
  });

  it('a corrupted CRC is a CRC fault, and the next round is good again', async () => {
    const { sim, driver } = i2cRig();
    const chip = sim.attach(
      0x45,
      new SimulatedSht3x({ values: { temperature: 18, humidity: 30 } }),
    );
    const { faults, readings } = await runDriver(driver(config), {
      ticks: 4,
      beforeTick: (i) => {
        if (i === 1) chip.inject('crc', { transfers: 1 });
      },
    });
    expect(faults.map((f) => f.code)).toEqual(['CRC']);
    expect(readings.map((r) => r.status)).toEqual([0, 0, 2, 2, 0, 0, 0, 0]);
    expect(readings.at(-2)?.value).toBeCloseTo(18, 2);
  });

  it('a sensor still measuring NACKs the read: the driver waits long enough that it never does', async () => {
    const { sim, driver } = i2cRig();
    const chip = sim.attach(0x45, new SimulatedSht3x({ measurementMs: 14 }));
    const { faults } = await runDriver(driver(config), { ticks: 3 });
    expect(faults).toEqual([]);
    expect(chip.counters.nacks).toBe(0);
  });

  it('a sensor slower than the datasheet maximum shows as NACK faults, never as an exception', async () => {
    // On a virtual clock: on real time a busy machine can delay the read past 40 ms, when the
    // chip is done and answers.
    const { faults, ok } = await onVirtualTime(async () => {
      const { sim, driver } = i2cRig();
      sim.attach(0x45, new SimulatedSht3x({ measurementMs: 40 }));
      return runDriver(driver(config), { ticks: 3 });
    });
    expect(ok).toEqual([]);
    expect(faults.length).toBe(3);
    expect(faults.every((f) => f.code === 'NACK')).toBe(true);
  });
});
