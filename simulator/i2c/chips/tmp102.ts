/**
 * TMP102 model: configuration register with SD (shutdown), OS (one-shot), EM (13-bit
 * extended mode) and the conversion rate; one-shot conversions take 26 ms (the typical
 * time; the datasheet maximum is 35 ms), continuous mode converts at the CR rate. The
 * temperature register holds the last complete conversion (0 °C until the first one).
 */
import { clamp, type SimulatedDeviceOptions } from '../device.js';
import { PointerRegisterDevice, word, wordFrom } from './pointer-device.js';

const POWER_ON_CONFIG = 0x60a0;
const OS = 0x8000;
const SD = 0x0100;
const EM = 0x0010;
/** Conversion period by CR1:CR0 (0.25, 1, 4, 8 Hz). */
const PERIOD_MS = [4000, 1000, 250, 125];

/** °C → temperature register (12-bit, or 13-bit extended with bit 0 set), clamped to range. */
export function tmp102Raw(celsius: number, extended: boolean): number {
  const counts = Math.round(clamp(celsius, -55, extended ? 150 : 127.9375) / 0.0625);
  return extended ? ((counts & 0x1fff) << 3) | 1 : (counts & 0xfff) << 4;
}

export interface Tmp102Options extends SimulatedDeviceOptions {
  conversionMs?: number;
}

export class SimulatedTmp102 extends PointerRegisterDevice {
  readonly chip = 'TMP102';
  private config = POWER_ON_CONFIG;
  private tLow = 0x4b00;
  private tHigh = 0x5000;
  private temperature = 0;
  private poweredAt = 0;
  private oneShotDoneAt: number | undefined;
  private readonly conversionMs: number;

  constructor(options: Tmp102Options = {}) {
    super({ temperature: { setPoint: 22.5, noise: 0.1 } }, options);
    this.conversionMs = options.conversionMs ?? 26;
  }

  protected override reset(now: number): void {
    super.reset(now);
    this.config = POWER_ON_CONFIG;
    this.tLow = 0x4b00;
    this.tHigh = 0x5000;
    this.temperature = 0;
    this.poweredAt = now;
    this.oneShotDoneAt = undefined;
  }

  private update(now: number): void {
    const extended = (this.config & EM) !== 0;
    if (this.oneShotDoneAt !== undefined && now >= this.oneShotDoneAt) {
      this.temperature = tmp102Raw(this.sample('temperature', this.oneShotDoneAt), extended);
      this.oneShotDoneAt = undefined;
    }
    if (!(this.config & SD)) {
      const period = PERIOD_MS[(this.config >> 6) & 0x3];
      const elapsed = now - this.poweredAt - this.conversionMs;
      if (elapsed >= 0) {
        const at = now - (elapsed % period);
        this.temperature = tmp102Raw(this.sample('temperature', at), extended);
      }
    }
  }

  protected readRegister(register: number, now: number): Uint8Array {
    this.update(now);
    switch (register & 0x03) {
      case 0:
        return word(this.temperature);
      case 1: {
        // OS reads 0 while a one-shot conversion runs, 1 when it is done (shutdown mode).
        const busy = this.oneShotDoneAt !== undefined;
        return word((this.config & ~OS) | (this.config & SD && !busy ? OS : 0));
      }
      case 2:
        return word(this.tLow);
      default:
        return word(this.tHigh);
    }
  }

  protected writeRegister(register: number, data: Uint8Array, now: number): void {
    this.update(now);
    const value = wordFrom(data, 0);
    switch (register & 0x03) {
      case 0:
        return; // read-only
      case 1:
        // R1:R0 are read-only 11; OS is a command, not stored.
        this.config = (value & ~OS & 0x9fff) | 0x6000;
        if (value & OS && this.config & SD) this.oneShotDoneAt = now + this.conversionMs;
        return;
      case 2:
        this.tLow = value;
        return;
      default:
        this.tHigh = value;
    }
  }
}
