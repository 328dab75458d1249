/**
 * Chips with a pointer register and 16-bit big-endian registers (TMP102, LM75, MCP9808): the
 * first byte written selects a register, further bytes write it, reads return it MSB first.
 */
import { SimulatedI2CDevice } from '../device.js';

export abstract class PointerRegisterDevice extends SimulatedI2CDevice {
  protected pointer = 0;

  /** Current register contents as bytes, MSB first. */
  protected abstract readRegister(register: number, now: number): Uint8Array;
  protected abstract writeRegister(register: number, data: Uint8Array, now: number): void;

  write(bytes: Uint8Array, now: number): void {
    if (bytes.length === 0) return;
    this.pointer = bytes[0];
    if (bytes.length > 1) this.writeRegister(this.pointer, bytes.subarray(1), now);
  }

  read(length: number, now: number): Uint8Array {
    const reg = this.readRegister(this.pointer, now);
    // Reading past the register repeats it, as these chips do.
    return Uint8Array.from({ length }, (_, i) => reg[i % reg.length]);
  }

  protected reset(_now: number): void {
    this.pointer = 0;
  }
}

export const word = (w: number): Uint8Array => Uint8Array.of((w >> 8) & 0xff, w & 0xff);
export const wordFrom = (data: Uint8Array, fallback: number): number =>
  data.length >= 2
    ? (data[0] << 8) | data[1]
    : data.length === 1
      ? (data[0] << 8) | (fallback & 0xff)
      : fallback;
