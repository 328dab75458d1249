/**
 * LM75 (9-bit) / LM75A (11-bit) model: converts continuously every 100 ms; shutdown freezes
 * the temperature register; configuration is one byte, T_HYST / T_OS 75 / 80 °C at power-on.
 */
import { clamp, type SimulatedDeviceOptions } from '../device.js';
import { PointerRegisterDevice, word, wordFrom } from './pointer-device.js';

const PERIOD_MS = 100;

/** °C → left-aligned temperature register of `bits` resolution. */
export function lm75Raw(celsius: number, bits: number): number {
  const lsb = 2 ** (8 - bits);
  const counts = Math.round(clamp(celsius, -55, 125) / lsb);
  return (counts & ((1 << bits) - 1)) << (16 - bits);
}

export interface Lm75Options extends SimulatedDeviceOptions {
  /** 9 for LM75, 11 for LM75A. */
  resolutionBits?: 9 | 11;
}

export class SimulatedLm75 extends PointerRegisterDevice {
  readonly chip: string;
  private readonly bits: number;
  private config = 0;
  private tHyst = 0x4b00;
  private tOs = 0x5000;
  private temperature = 0;
  private poweredAt = 0;

  constructor(options: Lm75Options = {}) {
    super({ temperature: { setPoint: 24, noise: 0.15 } }, options);
    this.bits = options.resolutionBits ?? 11;
    this.chip = this.bits === 11 ? 'LM75A' : 'LM75';
  }

  protected override reset(now: number): void {
    super.reset(now);
    this.config = 0;
    this.tHyst = 0x4b00;
    this.tOs = 0x5000;
    this.temperature = 0;
    this.poweredAt = now;
  }

  private update(now: number): void {
    if (this.config & 0x01) return; // shutdown: last value stays
    const elapsed = now - this.poweredAt;
    if (elapsed < PERIOD_MS / 10) return; // first conversion not done yet
    this.temperature = lm75Raw(this.sample('temperature', now - (elapsed % PERIOD_MS)), this.bits);
  }

  protected readRegister(register: number, now: number): Uint8Array {
    this.update(now);
    switch (register & 0x03) {
      case 0:
        return word(this.temperature);
      case 1:
        return Uint8Array.of(this.config);
      case 2:
        return word(this.tHyst);
      default:
        return word(this.tOs);
    }
  }

  protected writeRegister(register: number, data: Uint8Array, now: number): void {
    this.update(now);
    switch (register & 0x03) {
      case 0:
        return;
      case 1:
        this.config = data[0] & 0x1f;
        return;
      case 2:
        this.tHyst = wordFrom(data, 0) & 0xff80;
        return;
      default:
        this.tOs = wordFrom(data, 0) & 0xff80;
    }
  }
}
