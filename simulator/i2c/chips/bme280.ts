/**
 * BME280 model: a 256-byte register map with auto-incrementing reads and (register, value)
 * pair writes, chip ID 0x60 (or 0x58 to play a BMP280), soft reset, the calibration block,
 * forced and normal mode with the datasheet's typical measurement time, status bits
 * (measuring, im_update) and the skipped value 0x80000 for quantities not measured.
 * The ADC values are produced by inverting Bosch's compensation with a binary search, so the
 * driver's compensation recovers the signal.
 */
import {
  bme280Humidity,
  bme280Pascal,
  bme280Temperature,
  type Bme280Calibration,
} from '../../../drivers/i2c/bme280.js';
import { clamp, SimulatedI2CDevice, type SimulatedDeviceOptions } from '../device.js';

/** The datasheet's worked-example trimming (T, P) and typical humidity trimming. */
export const EXAMPLE_BME280_CALIBRATION: Bme280Calibration = {
  T1: 27504,
  T2: 26435,
  T3: -1000,
  P1: 36477,
  P2: -10685,
  P3: 3024,
  P4: 2855,
  P5: 140,
  P6: -7,
  P7: 15500,
  P8: -14600,
  P9: 6000,
  H1: 75,
  H2: 362,
  H3: 0,
  H4: 313,
  H5: 50,
  H6: 30,
};

/** Calibration → the bytes at 0x88..0xA1 (26) and 0xE1..0xE7 (7). */
export function bme280CalibrationBytes(cal: Bme280Calibration): { tp: Buffer; h: Buffer } {
  const tp = Buffer.alloc(26);
  tp.writeUInt16LE(cal.T1, 0);
  tp.writeInt16LE(cal.T2, 2);
  tp.writeInt16LE(cal.T3, 4);
  tp.writeUInt16LE(cal.P1, 6);
  [cal.P2, cal.P3, cal.P4, cal.P5, cal.P6, cal.P7, cal.P8, cal.P9].forEach((p, i) =>
    tp.writeInt16LE(p, 8 + 2 * i),
  );
  tp.writeUInt8(cal.H1, 25);
  const h = Buffer.alloc(7);
  h.writeInt16LE(cal.H2, 0);
  h.writeUInt8(cal.H3, 2);
  h.writeInt8(cal.H4 >> 4, 3);
  h.writeUInt8((cal.H4 & 0x0f) | ((cal.H5 & 0x0f) << 4), 4);
  h.writeInt8(cal.H5 >> 4, 5);
  h.writeInt8(cal.H6, 6);
  return { tp, h };
}

/** Smallest adc in [0, max] whose compensated value reaches target (f monotonic). */
function invert(
  f: (adc: number) => number,
  target: number,
  max: number,
  increasing: boolean,
): number {
  let lo = 0;
  let hi = max;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const v = f(mid);
    if (increasing ? v < target : v > target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export const bme280AdcForTemperature = (celsius: number, cal: Bme280Calibration): number =>
  invert((a) => bme280Temperature(a, cal).celsius, clamp(celsius, -40, 85), 0xfffff, true);
export const bme280AdcForPressure = (pa: number, tFine: number, cal: Bme280Calibration): number =>
  invert((a) => bme280Pascal(a, tFine, cal), clamp(pa, 30000, 110000), 0xfffff, false);
export const bme280AdcForHumidity = (rh: number, tFine: number, cal: Bme280Calibration): number =>
  invert((a) => bme280Humidity(a, tFine, cal), clamp(rh, 0, 100), 0xffff, true);

export interface Bme280Options extends SimulatedDeviceOptions {
  calibration?: Bme280Calibration;
  /** 0x60 BME280; 0x58 makes it a BMP280 (no humidity). */
  chipId?: number;
}

const OVERSAMPLING = [0, 1, 2, 4, 8, 16, 16, 16];

export class SimulatedBme280 extends SimulatedI2CDevice {
  readonly chip: string;
  private readonly regs = new Uint8Array(256);
  private pointer = 0;
  private readonly cal: Bme280Calibration;
  private readonly chipId: number;
  private measurement:
    { startedAt: number; doneAt: number; osrT: number; osrP: number; osrH: number } | undefined;
  private nvmCopyUntil = 0;
  private lastNormalAt = 0;

  constructor(options: Bme280Options = {}) {
    super(
      {
        temperature: { setPoint: 21.3, noise: 0.01 },
        pressure: { setPoint: 101_325, noise: 1.5, driftAmplitude: 40 },
        humidity: { setPoint: 40, noise: 0.2 },
      },
      options,
    );
    this.cal = options.calibration ?? EXAMPLE_BME280_CALIBRATION;
    this.chipId = options.chipId ?? 0x60;
    this.chip = this.chipId === 0x58 ? 'BMP280' : 'BME280';
  }

  protected reset(now: number): void {
    this.regs.fill(0);
    this.regs[0xd0] = this.chipId;
    const { tp, h } = bme280CalibrationBytes(this.cal);
    this.regs.set(tp, 0x88);
    this.regs.set(h, 0xe1);
    this.regs.set([0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00], 0xf7);
    this.measurement = undefined;
    this.nvmCopyUntil = now + 2;
  }

  write(bytes: Uint8Array, now: number): void {
    this.update(now);
    if (bytes.length === 0) return;
    this.pointer = bytes[0];
    for (let i = 0; i + 1 < bytes.length; i += 2) this.writeRegister(bytes[i], bytes[i + 1], now);
  }

  read(length: number, now: number): Uint8Array {
    this.update(now);
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.readRegister((this.pointer + i) & 0xff, now);
    return out;
  }

  private readRegister(reg: number, now: number): number {
    if (reg === 0xf3) {
      const measuring = this.measurement !== undefined && now < this.measurement.doneAt;
      return (measuring ? 0x08 : 0) | (now < this.nvmCopyUntil ? 0x01 : 0);
    }
    return this.regs[reg];
  }

  private writeRegister(reg: number, value: number, now: number): void {
    switch (reg) {
      case 0xe0:
        if (value === 0xb6) this.reset(now);
        return;
      case 0xf2:
        this.regs[reg] = value & 0x07;
        return;
      case 0xf4: {
        this.regs[reg] = value;
        const mode = value & 0x03;
        if (mode === 0x01 || mode === 0x02) this.start(now);
        else if (mode === 0x03) this.lastNormalAt = now;
        return;
      }
      case 0xf5:
        this.regs[reg] = value & 0xfd;
        return;
      default:
        return; // read-only
    }
  }

  private start(now: number): void {
    const ctrl = this.regs[0xf4];
    const osrT = OVERSAMPLING[ctrl >> 5];
    const osrP = OVERSAMPLING[(ctrl >> 2) & 0x07];
    // ctrl_hum only takes effect with this ctrl_meas write.
    const osrH = OVERSAMPLING[this.regs[0xf2] & 0x07];
    const typMs = 1 + 2 * osrT + (osrP ? 2 * osrP + 0.5 : 0) + (osrH ? 2 * osrH + 0.5 : 0);
    this.measurement = { startedAt: now, doneAt: now + typMs, osrT, osrP, osrH };
  }

  private update(now: number): void {
    if ((this.regs[0xf4] & 0x03) === 0x03 && !this.measurement && now - this.lastNormalAt >= 10) {
      this.start(now);
      this.lastNormalAt = now;
    }
    const m = this.measurement;
    if (!m || now < m.doneAt) return;
    this.measurement = undefined;
    // Forced mode falls back to sleep once done.
    if ((this.regs[0xf4] & 0x03) !== 0x03) this.regs[0xf4] &= ~0x03;
    const t = m.startedAt;
    const put20 = (reg: number, adc: number) =>
      this.regs.set([(adc >> 12) & 0xff, (adc >> 4) & 0xff, (adc << 4) & 0xf0], reg);
    const adcT = m.osrT
      ? bme280AdcForTemperature(this.sample('temperature', t), this.cal)
      : 0x80000;
    put20(0xfa, adcT);
    const { tFine } = bme280Temperature(adcT, this.cal);
    put20(
      0xf7,
      m.osrP ? bme280AdcForPressure(this.sample('pressure', t), tFine, this.cal) : 0x80000,
    );
    const adcH =
      m.osrH && this.chipId === 0x60
        ? bme280AdcForHumidity(this.sample('humidity', t), tFine, this.cal)
        : 0x8000;
    this.regs.set([(adcH >> 8) & 0xff, adcH & 0xff], 0xfd);
  }
}
