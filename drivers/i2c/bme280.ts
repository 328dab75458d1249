/**
 * Bosch BME280 temperature / pressure / humidity sensor.
 *
 * Datasheet facts (BST-BME280-DS002):
 * - Address 0x76 (SDO low) or 0x77. Chip ID register 0xD0 = 0x60 (a BMP280 answers 0x58).
 *   Soft reset: write 0xB6 to 0xE0; start-up 2 ms, status 0xF3 bit 0 (im_update) while the
 *   NVM is copied.
 * - Calibration (trimming) words, little-endian: dig_T1 u16 at 0x88, dig_T2 s16 0x8A,
 *   dig_T3 s16 0x8C, dig_P1 u16 0x8E, dig_P2..P9 s16 0x90..0x9E, dig_H1 u8 0xA1,
 *   dig_H2 s16 0xE1, dig_H3 u8 0xE3, dig_H4 s12 = 0xE4<<4 | 0xE5[3:0],
 *   dig_H5 s12 = 0xE6<<4 | 0xE5[7:4], dig_H6 s8 0xE7.
 * - ctrl_hum 0xF2 (osrs_h, takes effect on the next ctrl_meas write), ctrl_meas 0xF4
 *   (osrs_t[7:5] osrs_p[4:2] mode[1:0], 01 = forced: one measurement, then sleep),
 *   config 0xF5, status 0xF3 bit 3 = measuring.
 * - Data burst 0xF7..0xFE: press msb lsb xlsb, temp msb lsb xlsb, hum msb lsb;
 *   adc_T = msb<<12 | lsb<<4 | xlsb>>4 (same for P), adc_H = msb<<8 | lsb. A skipped
 *   measurement reads 0x80000 (0x8000 for H) — also the power-on value.
 * - Measurement time (max) = 1.25 + 2.3·osr_t + (2.3·osr_p + 0.575) + (2.3·osr_h + 0.575) ms.
 * - Bosch integer compensation (datasheet §4.2.3 / §8.2): T1 = 27504, T2 = 26435,
 *   T3 = −1000, adc_T = 519888 → t_fine = 128422, 25.08 °C; with the BMP280 example's
 *   pressure trimming, adc_P = 415148 → 100653.27 Pa.
 */
import { z } from 'zod';
import { hex, quantity, sensorKeys } from '../config/sensor-keys.js';
import type { DriverDescriptor, I2CChip } from '../descriptor.js';
import { i2cAddressKey, i2cBusKey } from './config.js';
import { attempt } from './probe.js';
import { sleep } from '../time.js';
import { SensorError, type Driver, type Measurement, type Quantity } from '../types.js';
import { asSensorErrors } from './errors.js';
import type { SharedI2CBus } from './shared-bus.js';

export const BME280_REG_CALIB_TP = 0x88;
export const BME280_CALIB_TP_LENGTH = 26;
export const BME280_REG_CALIB_H = 0xe1;
export const BME280_CALIB_H_LENGTH = 7;
export const BME280_REG_CHIP_ID = 0xd0;
export const BME280_REG_RESET = 0xe0;
export const BME280_REG_CTRL_HUM = 0xf2;
export const BME280_REG_STATUS = 0xf3;
export const BME280_REG_CTRL_MEAS = 0xf4;
export const BME280_REG_CONFIG = 0xf5;
export const BME280_REG_DATA = 0xf7;
export const BME280_DATA_LENGTH = 8;
export const BME280_CHIP_ID = 0x60;
export const BMP280_CHIP_ID = 0x58;
export const BME280_RESET_COMMAND = 0xb6;
export const BME280_STATUS_MEASURING = 0x08;
export const BME280_STATUS_IM_UPDATE = 0x01;
export const BME280_SKIPPED_ADC = 0x80000;
export const BME280_SKIPPED_ADC_H = 0x8000;
const MODE_FORCED = 0x01;
const STATUS_POLL_MS = 2;
const STATUS_POLLS = 10;

export interface Bme280Calibration {
  T1: number;
  T2: number;
  T3: number;
  P1: number;
  P2: number;
  P3: number;
  P4: number;
  P5: number;
  P6: number;
  P7: number;
  P8: number;
  P9: number;
  H1: number;
  H2: number;
  H3: number;
  H4: number;
  H5: number;
  H6: number;
}

/** Calibration from the 26 bytes at 0x88 and the 7 bytes at 0xE1. */
export function bme280ParseCalibration(tp: Uint8Array, h: Uint8Array): Bme280Calibration {
  const a = Buffer.from(tp.buffer, tp.byteOffset, tp.byteLength);
  const b = Buffer.from(h.buffer, h.byteOffset, h.byteLength);
  return {
    T1: a.readUInt16LE(0),
    T2: a.readInt16LE(2),
    T3: a.readInt16LE(4),
    P1: a.readUInt16LE(6),
    P2: a.readInt16LE(8),
    P3: a.readInt16LE(10),
    P4: a.readInt16LE(12),
    P5: a.readInt16LE(14),
    P6: a.readInt16LE(16),
    P7: a.readInt16LE(18),
    P8: a.readInt16LE(20),
    P9: a.readInt16LE(22),
    H1: a.readUInt8(25),
    H2: b.readInt16LE(0),
    H3: b.readUInt8(2),
    H4: b.readInt8(3) * 16 + (b[4] & 0x0f),
    H5: b.readInt8(5) * 16 + (b[4] >> 4),
    H6: b.readInt8(6),
  };
}

/** C's arithmetic right shift without JavaScript's 32-bit truncation. */
const shr = (x: number, n: number): number => Math.floor(x / 2 ** n);

/** Bosch's integer temperature compensation: t_fine and °C (0.01 °C steps). */
export function bme280Temperature(
  adcT: number,
  cal: Pick<Bme280Calibration, 'T1' | 'T2' | 'T3'>,
): { celsius: number; tFine: number } {
  const var1 = shr((shr(adcT, 3) - cal.T1 * 2) * cal.T2, 11);
  const d = shr(adcT, 4) - cal.T1;
  const var2 = shr(shr(d * d, 12) * cal.T3, 14);
  const tFine = var1 + var2;
  return { celsius: shr(tFine * 5 + 128, 8) / 100, tFine };
}

/** Bosch's 64-bit integer pressure compensation, in Pa (Q24.8 / 256). */
export function bme280Pascal(adcP: number, tFine: number, cal: Bme280Calibration): number {
  const [P1, P2, P3, P4, P5, P6, P7, P8, P9] = [
    cal.P1,
    cal.P2,
    cal.P3,
    cal.P4,
    cal.P5,
    cal.P6,
    cal.P7,
    cal.P8,
    cal.P9,
  ].map(BigInt);
  let var1 = BigInt(tFine) - 128000n;
  let var2 = var1 * var1 * P6;
  var2 += (var1 * P5) << 17n;
  var2 += P4 << 35n;
  var1 = ((var1 * var1 * P3) >> 8n) + ((var1 * P2) << 12n);
  var1 = (((1n << 47n) + var1) * P1) >> 33n;
  if (var1 === 0n) return 0; // avoids a division by zero, as Bosch does
  let p = 1048576n - BigInt(adcP);
  p = (((p << 31n) - var2) * 3125n) / var1;
  var1 = (P9 * (p >> 13n) * (p >> 13n)) >> 25n;
  var2 = (P8 * p) >> 19n;
  p = ((p + var1 + var2) >> 8n) + (P7 << 4n);
  return Number(p) / 256;
}

/** Bosch's integer humidity compensation, in %RH (Q22.10 / 1024), clamped to 0..100. */
export function bme280Humidity(adcH: number, tFine: number, cal: Bme280Calibration): number {
  const [H1, H2, H3, H4, H5, H6] = [cal.H1, cal.H2, cal.H3, cal.H4, cal.H5, cal.H6].map(BigInt);
  const adc = BigInt(adcH);
  let v = BigInt(tFine) - 76800n;
  v =
    (((adc << 14n) - (H4 << 20n) - H5 * v + 16384n) >> 15n) *
    (((((((v * H6) >> 10n) * (((v * H3) >> 11n) + 32768n)) >> 10n) + 2097152n) * H2 + 8192n) >>
      14n);
  v -= ((((v >> 15n) * (v >> 15n)) >> 7n) * H1) >> 4n;
  if (v < 0n) v = 0n;
  if (v > 419430400n) v = 419430400n;
  return Number(v >> 12n) / 1024;
}

/** Raw ADC values from the 8-byte data burst at 0xF7. */
export function bme280AdcValues(data: Uint8Array): { adcP: number; adcT: number; adcH: number } {
  return {
    adcP: (data[0] << 12) | (data[1] << 4) | (data[2] >> 4),
    adcT: (data[3] << 12) | (data[4] << 4) | (data[5] >> 4),
    adcH: (data[6] << 8) | data[7],
  };
}

/** Maximum measurement time (ms) for oversampling factors (0 = skipped). */
export function bme280MeasurementMs(osrT: number, osrP: number, osrH: number): number {
  return 1.25 + 2.3 * osrT + (osrP ? 2.3 * osrP + 0.575 : 0) + (osrH ? 2.3 * osrH + 0.575 : 0);
}

const SUPPORTED: readonly Quantity[] = ['temperature', 'pressure', 'humidity'];

export function createBme280(config: Bme280Config, bus: SharedI2CBus): Driver {
  const { address } = config;
  // Temperature is always measured: pressure and humidity compensation need its t_fine.
  const quantities = SUPPORTED.filter((q) => q === 'temperature' || config.quantities.includes(q));
  const osrP = quantities.includes('pressure') ? 1 : 0;
  const osrH = quantities.includes('humidity') ? 1 : 0;
  const ctrlMeas = (1 << 5) | (osrP << 2) | MODE_FORCED;
  const measureMs = Math.ceil(bme280MeasurementMs(1, osrP, osrH));
  let cal: Bme280Calibration | undefined;

  const readBlock = async (register: number, length: number, signal: AbortSignal) => {
    const buf = Buffer.alloc(length);
    await bus.transfer((b) => b.readI2cBlock(address, register, length, buf), { signal });
    return buf;
  };
  const readByte = (register: number, signal: AbortSignal) =>
    bus.transfer((b) => b.readByte(address, register), { signal });
  const writeByte = (register: number, value: number, signal: AbortSignal, priority = 0) =>
    bus.transfer((b) => b.writeByte(address, register, value), { signal, priority });
  /** Waits (outside the bus lock) until the status bits clear; bounded. */
  const waitStatusClear = async (mask: number, what: string, signal: AbortSignal) => {
    for (let i = 0; i < STATUS_POLLS; i++) {
      if (((await readByte(BME280_REG_STATUS, signal)) & mask) === 0) return;
      await sleep(STATUS_POLL_MS, signal);
    }
    throw new SensorError('TIMEOUT', `BME280 still ${what} after ${STATUS_POLLS} polls`);
  };

  return {
    kind: 'bme280',
    quantities,
    resource: bus.resource,
    open: (signal) =>
      asSensorErrors(async () => {
        const id = await readByte(BME280_REG_CHIP_ID, signal);
        if (id !== BME280_CHIP_ID) {
          const what =
            id === BMP280_CHIP_ID ? 'a BMP280 (no humidity)' : `chip ID 0x${id.toString(16)}`;
          throw new SensorError('DEVICE', `not a BME280: ${what}; expected 0x60`);
        }
        await writeByte(BME280_REG_RESET, BME280_RESET_COMMAND, signal);
        await sleep(2, signal);
        await waitStatusClear(BME280_STATUS_IM_UPDATE, 'copying its NVM', signal);
        cal = bme280ParseCalibration(
          await readBlock(BME280_REG_CALIB_TP, BME280_CALIB_TP_LENGTH, signal),
          await readBlock(BME280_REG_CALIB_H, BME280_CALIB_H_LENGTH, signal),
        );
        await writeByte(BME280_REG_CTRL_HUM, osrH, signal);
        await writeByte(BME280_REG_CONFIG, 0x00, signal); // no IIR filter, no standby
      }),
    measure: (signal) =>
      asSensorErrors(async (): Promise<Measurement[]> => {
        if (!cal) throw new SensorError('DEVICE', 'BME280 not opened');
        const calibration = cal;
        await writeByte(BME280_REG_CTRL_MEAS, ctrlMeas, signal, measureMs);
        await sleep(measureMs, signal);
        await waitStatusClear(BME280_STATUS_MEASURING, 'measuring', signal);
        const { adcP, adcT, adcH } = bme280AdcValues(
          await readBlock(BME280_REG_DATA, BME280_DATA_LENGTH, signal),
        );
        if (adcT === BME280_SKIPPED_ADC)
          throw new SensorError('DEVICE', 'BME280 returned no temperature (reset or power loss?)');
        const { celsius, tFine } = bme280Temperature(adcT, calibration);
        const out: Measurement[] = [{ quantity: 'temperature', value: celsius }];
        if (osrP) {
          if (adcP === BME280_SKIPPED_ADC)
            throw new SensorError('DEVICE', 'BME280 skipped pressure');
          out.push({ quantity: 'pressure', value: bme280Pascal(adcP, tFine, calibration) });
        }
        if (osrH) {
          if (adcH === BME280_SKIPPED_ADC_H)
            throw new SensorError('DEVICE', 'BME280 skipped humidity');
          out.push({ quantity: 'humidity', value: bme280Humidity(adcH, tFine, calibration) });
        }
        return out;
      }),
  };
}

const BME280_CHIP: I2CChip = {
  label: 'BME280',
  minAddress: 0x76,
  maxAddress: 0x77,
  defaultAddress: 0x76,
  identify: async (bus, address) => {
    const id = await attempt(() => bus.readByte(address, BME280_REG_CHIP_ID));
    if (id === BME280_CHIP_ID) return `BME280 (chip id ${hex(id)})`;
    if (id === BMP280_CHIP_ID) return `BMP280 (chip id ${hex(id)}, no humidity)`;
    if (id === 0x61) return `BME680 (chip id ${hex(id)}, not supported)`;
    return id === undefined
      ? 'unknown (BME280 address, chip id unreadable)'
      : `unknown (chip id ${hex(id)})`;
  },
};

const bme280Schema = z.strictObject({
  ...sensorKeys,
  ...i2cBusKey,
  driver: z.literal('bme280'),
  address: i2cAddressKey(BME280_CHIP),
  quantities: z
    .array(quantity)
    .min(1)
    .default(['temperature'])
    .describe('Temperature is always reported; pressure and humidity are optional.'),
});
export type Bme280Config = z.output<typeof bme280Schema>;

export const bme280: DriverDescriptor<typeof bme280Schema> = {
  name: 'bme280',
  schema: bme280Schema,
  temperatureRange: { min: -40, max: 85 },
  i2c: BME280_CHIP,
  create: (config, seams) => createBme280(config, seams.i2c(config.bus)),
};
