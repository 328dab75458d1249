/**
 * MCP9808 model: continuous conversion with the resolution register's timing
 * (30 / 65 / 130 / 250 ms), ID registers 0x0054 / 0x0400, alert flags in T_A's top bits
 * computed against the limit registers (all 0 at power-on, so a warm room sets them).
 */
import { clamp, twosComplement, type SimulatedDeviceOptions } from '../device.js';
import { PointerRegisterDevice, word, wordFrom } from './pointer-device.js';

const CONVERSION_MS = [30, 65, 130, 250];

/** °C → 13-bit T_A (sign + 12 bits of 1/16 °C), quantised to the resolution, no flags. */
export function mcp9808Raw(celsius: number, resolution: number): number {
  const step = 2 ** (3 - resolution); // in 1/16 °C
  const counts = Math.floor(clamp(celsius, -40, 125) * (16 / step)) * step;
  return twosComplement(counts, 13);
}

/** Limit register (bits 12..2, 0.25 °C) → °C. */
const limitCelsius = (raw: number): number =>
  (raw & 0x1000 ? (raw & 0x1ffc) - 0x2000 : raw & 0x0ffc) / 16;

export class SimulatedMcp9808 extends PointerRegisterDevice {
  readonly chip = 'MCP9808';
  private config = 0;
  private upper = 0;
  private lower = 0;
  private crit = 0;
  private resolution = 3;
  private ambient = 0;
  private poweredAt = 0;

  constructor(options: SimulatedDeviceOptions = {}) {
    super({ temperature: { setPoint: 21.8, noise: 0.08 } }, options);
  }

  protected override reset(now: number): void {
    super.reset(now);
    this.config = 0;
    this.upper = this.lower = this.crit = 0;
    this.resolution = 3;
    this.ambient = 0;
    this.poweredAt = now;
  }

  private update(now: number): void {
    if (this.config & 0x0100) return; // shutdown
    const period = CONVERSION_MS[this.resolution];
    const elapsed = now - this.poweredAt;
    if (elapsed < period) return; // T_A is 0 until the first conversion completes
    const t = this.sample('temperature', now - (elapsed % period));
    let raw = mcp9808Raw(t, this.resolution);
    if (t >= limitCelsius(this.crit)) raw |= 0x8000;
    if (t > limitCelsius(this.upper)) raw |= 0x4000;
    if (t < limitCelsius(this.lower)) raw |= 0x2000;
    this.ambient = raw;
  }

  protected readRegister(register: number, now: number): Uint8Array {
    this.update(now);
    switch (register & 0x0f) {
      case 0x01:
        return word(this.config);
      case 0x02:
        return word(this.upper);
      case 0x03:
        return word(this.lower);
      case 0x04:
        return word(this.crit);
      case 0x05:
        return word(this.ambient);
      case 0x06:
        return word(0x0054);
      case 0x07:
        return word(0x0400);
      case 0x08:
        return Uint8Array.of(this.resolution);
      default:
        return word(0);
    }
  }

  protected writeRegister(register: number, data: Uint8Array, now: number): void {
    this.update(now);
    switch (register & 0x0f) {
      case 0x01:
        this.config = wordFrom(data, 0) & 0x07ff;
        return;
      case 0x02:
        this.upper = wordFrom(data, 0) & 0x1ffc;
        return;
      case 0x03:
        this.lower = wordFrom(data, 0) & 0x1ffc;
        return;
      case 0x04:
        this.crit = wordFrom(data, 0) & 0x1ffc;
        return;
      case 0x08:
        // A new resolution applies from the next conversion on.
        this.resolution = data[0] & 0x03;
        this.poweredAt = now;
        return;
      default:
        return;
    }
  }
}
