/**
 * SHT3x model: 16-bit commands; single shot (0x2400 / 0x240B / 0x2416, no clock stretching)
 * measures for 12.5 ms typical, NACKing reads meanwhile; the result (T CRC RH CRC) can be
 * read once. Status register (0xF32D) with CRC, soft reset (0x30A2). CRC-8 0x31 / 0xFF.
 */
import { crc8 } from '../../../drivers/i2c/crc8.js';
import { clamp, Nack, SimulatedI2CDevice, type SimulatedDeviceOptions } from '../device.js';

/** °C → raw, %RH → raw (inverse of the datasheet formulas). */
export const sht3xRawTemperature = (celsius: number): number =>
  Math.round(((clamp(celsius, -45, 130) + 45) * 65535) / 175);
export const sht3xRawHumidity = (rh: number): number =>
  Math.round((clamp(rh, 0, 100) * 65535) / 100);

/** word CRC word CRC … as the chip sends it; `corrupt` spoils the first CRC. */
export function sht3xFrame(words: number[], corrupt = false): Uint8Array {
  const out: number[] = [];
  for (const w of words) {
    const bytes = [(w >> 8) & 0xff, w & 0xff];
    out.push(...bytes, crc8(bytes, 0xff));
  }
  if (corrupt) out[2] ^= 0x5a;
  return Uint8Array.from(out);
}

const SINGLE_SHOT_MS: Record<number, number> = { 0x2400: 12.5, 0x240b: 4.5, 0x2416: 2.5 };
const POWER_ON_STATUS = 0x8010; // alert pending, reset detected

export interface Sht3xOptions extends SimulatedDeviceOptions {
  /** Override the measurement duration (ms) of every repeatability. */
  measurementMs?: number;
}

export class SimulatedSht3x extends SimulatedI2CDevice {
  readonly chip = 'SHT3x';
  private status = POWER_ON_STATUS;
  private pending: { readyAt: number; startedAt: number } | undefined;
  private output: Uint8Array | undefined;
  private readonly measurementMs: number | undefined;

  constructor(options: Sht3xOptions = {}) {
    super(
      { temperature: { setPoint: 23.4, noise: 0.02 }, humidity: { setPoint: 45, noise: 0.2 } },
      options,
    );
    this.measurementMs = options.measurementMs;
  }

  protected reset(): void {
    this.status = POWER_ON_STATUS;
    this.pending = undefined;
    this.output = undefined;
  }

  write(bytes: Uint8Array, now: number): void {
    if (bytes.length < 2) throw new Nack('SHT3x commands are 16 bits');
    // A command during a measurement is not acknowledged.
    if (this.pending && now < this.pending.readyAt) throw new Nack('SHT3x busy measuring');
    const cmd = (bytes[0] << 8) | bytes[1];
    this.output = undefined;
    this.pending = undefined;
    if (cmd in SINGLE_SHOT_MS) {
      this.pending = { startedAt: now, readyAt: now + (this.measurementMs ?? SINGLE_SHOT_MS[cmd]) };
    } else if (cmd === 0xf32d) {
      this.output = sht3xFrame([this.status], this.take('crc', now));
    } else if (cmd === 0x3041) {
      this.status &= ~0x8013; // clear status
    } else if (cmd === 0x30a2) {
      this.reset();
    } else {
      throw new Nack(`SHT3x: unknown command 0x${cmd.toString(16)}`);
    }
  }

  read(length: number, now: number): Uint8Array {
    if (this.pending) {
      if (now < this.pending.readyAt) throw new Nack('SHT3x still measuring');
      const t = this.pending.startedAt;
      this.pending = undefined;
      this.output = sht3xFrame(
        [
          sht3xRawTemperature(this.sample('temperature', t)),
          sht3xRawHumidity(this.sample('humidity', t)),
        ],
        this.take('crc', now),
      );
    }
    // No data to read: the sensor does not acknowledge its read header.
    if (!this.output) throw new Nack('SHT3x has no data');
    const out = this.output;
    this.output = undefined;
    return Uint8Array.from({ length }, (_, i) => out[i] ?? 0xff);
  }
}
