/** Building blocks of the chips' `scan` probes (drivers/i2c/identify.ts runs them). */
import type { I2CBus } from '../types.js';

/** A 16-bit register, MSB first, read as a 2-byte block. */
export async function read16(bus: I2CBus, address: number, register: number): Promise<number> {
  const buf = Buffer.alloc(2);
  await bus.readI2cBlock(address, register, 2, buf);
  return buf.readUInt16BE(0);
}

/** Runs a probe; undefined when the chip refused it. */
export async function attempt<T>(probe: () => Promise<T>): Promise<T | undefined> {
  try {
    return await probe();
  } catch {
    return undefined;
  }
}
