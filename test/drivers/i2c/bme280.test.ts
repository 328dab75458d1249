import { describe, expect, it } from 'vitest';
import {
  bme280AdcValues,
  bme280Humidity,
  bme280MeasurementMs,
  bme280ParseCalibration,
  bme280Pascal,
  bme280Temperature,
} from '../../../drivers/i2c/bme280.js';
import {
  bme280AdcForHumidity,
  bme280AdcForPressure,
  bme280AdcForTemperature,
  bme280CalibrationBytes,
  EXAMPLE_BME280_CALIBRATION as CAL,
  SimulatedBme280,
} from '../../../simulator/i2c/chips/bme280.js';
import { i2cRig, runDriver } from '../../helpers/run-driver.js';

describe('BME280 compensation (Bosch integer formulas)', () => {
  it('datasheet example: T1 27504, T2 26435, T3 −1000, adc_T 519888 → 25.08 °C, t_fine 128422', () => {
    const { celsius, tFine } = bme280Temperature(519888, { T1: 27504, T2: 26435, T3: -1000 });
    expect(celsius).toBe(25.08);
    expect(tFine).toBe(128422);
  });

  it('datasheet example: adc_P 415148 at t_fine 128422 → 100653.27 Pa', () => {
    expect(bme280Pascal(415148, 128422, CAL)).toBeCloseTo(100653.27, 1);
  });

  it.each([-40, -20.5, -0.01, 0, 18.37, 60, 85])(
    'temperature %s °C survives adc → compensation',
    (t) => {
      expect(bme280Temperature(bme280AdcForTemperature(t, CAL), CAL).celsius).toBeCloseTo(t, 2);
    },
  );

  it('pressure and humidity survive adc → compensation; humidity is clamped to 0..100', () => {
    const { tFine } = bme280Temperature(519888, CAL);
    for (const p of [85_000, 101_325, 104_000]) {
      expect(bme280Pascal(bme280AdcForPressure(p, tFine, CAL), tFine, CAL)).toBeCloseTo(p, 0);
    }
    for (const rh of [5, 42.5, 97]) {
      expect(bme280Humidity(bme280AdcForHumidity(rh, tFine, CAL), tFine, CAL)).toBeCloseTo(rh, 1);
    }
    expect(bme280Humidity(0, tFine, CAL)).toBe(0);
    expect(bme280Humidity(0xffff, tFine, CAL)).toBe(100);
  });

  it('parses the calibration block, incl. the split 12-bit H4/H5 and negative values', () => {
    const cal = { ...CAL, H4: -300, H5: -7, H6: -3, P9: -1 };
    const { tp, h } = bme280CalibrationBytes(cal);
    expect(tp.readUInt16LE(0)).toBe(27504);
    expect(bme280ParseCalibration(tp, h)).toEqual(cal);
  });

  it('assembles 20-bit adc values msb<<12 | lsb<<4 | xlsb>>4', () => {
    const v = bme280AdcValues(Uint8Array.of(0x65, 0x5a, 0xc0, 0x7e, 0xed, 0x00, 0x6e, 0x8f));
    expect(v).toEqual({ adcP: 0x655ac, adcT: 0x7eed0, adcH: 0x6e8f });
    expect(v.adcT).toBe(519888);
  });

  it('measurement time at ×1 oversampling', () => {
    expect(bme280MeasurementMs(1, 1, 1)).toBeCloseTo(9.3, 5);
    expect(bme280MeasurementMs(1, 0, 0)).toBeCloseTo(3.55, 5);
  });
});

describe('BME280 driver against the simulated chip', () => {
  const config = {
    id: 'b',
    driver: 'bme280' as const,
    address: 0x77,
    quantities: ['temperature' as const, 'pressure' as const, 'humidity' as const],
  };

  it('forced mode: temperature (below zero), pressure and humidity', async () => {
    const { sim, driver } = i2cRig();
    sim.attach(
      0x77,
      new SimulatedBme280({ values: { temperature: -5.25, pressure: 98_000, humidity: 70 } }),
    );
    const { ok, faults } = await runDriver(driver(config), { ticks: 2 });
    expect(faults).toEqual([]);
    expect(ok.map((r) => r.quantity)).toEqual([
      'temperature',
      'pressure',
      'humidity',
      'temperature',
      'pressure',
      'humidity',
    ]);
    expect(ok[0].value).toBeCloseTo(-5.25, 2);
    expect(ok[1].value).toBeCloseTo(98_000, -1);
    expect(ok[2].value).toBeCloseTo(70, 0);
  });

  it('temperature only by default; pressure and humidity are skipped by the chip', async () => {
    const { sim, driver } = i2cRig();
    sim.attach(0x77, new SimulatedBme280({ values: { temperature: 12 } }));
    const humidity = driver({ ...config, quantities: ['humidity'] });
    expect(humidity.quantities).toEqual(['temperature', 'humidity']);
    const t = await runDriver(driver({ ...config, quantities: ['temperature'] }), {
      ticks: 1,
    });
    expect(t.ok.map((r) => r.quantity)).toEqual(['temperature']);
    expect(t.ok[0].value).toBeCloseTo(12, 2);
  });

  it('a BMP280 (chip id 0x58) is refused with a DEVICE fault', async () => {
    const { sim, driver } = i2cRig();
    sim.attach(0x77, new SimulatedBme280({ chipId: 0x58 }));
    const { faults, ok } = await runDriver(driver(config), { ticks: 1 });
    expect(ok).toEqual([]);
    expect(faults[0].code).toBe('DEVICE');
    expect(faults[0].message).toMatch(/BMP280/);
  });

  it('after a power loss the chip skips humidity (0x8000): faults, reopen, then readings again', async () => {
    const { sim, driver } = i2cRig();
    const chip = sim.attach(
      0x77,
      new SimulatedBme280({ values: { temperature: 20, humidity: 50 } }),
    );
    const { faults, readings } = await runDriver(driver(config), {
      ticks: 7,
      beforeTick: (i) => {
        if (i === 1) chip.powerOn();
      },
    });
    // ctrl_hum is back at 0 after power-on: until the driver reopens and reconfigures.
    expect(faults.length).toBeGreaterThanOrEqual(1);
    expect(faults.every((f) => f.code === 'DEVICE')).toBe(true);
    expect(readings.slice(-3).map((r) => r.status)).toEqual([0, 0, 0]);
    expect(readings.at(-1)?.value).toBeCloseTo(50, 0);
  });
});
