/** Config keys of I²C sensors, built from what each chip declares (drivers/descriptor.ts). */
import { z } from 'zod';
import { count } from '../config/bounds.js';
import { quote } from '../config/describe-value.js';
import { hex } from '../config/sensor-keys.js';
import type { I2CChip } from '../descriptor.js';

export const i2cBusKey = {
  bus: count(0, 255).default(1).describe('I²C bus number (/dev/i2c-N).'),
};

/** The chip's address key: restricted to what it can be strapped to, its default filled in. */
export function i2cAddressKey(chip: I2CChip) {
  const { minAddress: min, maxAddress: max } = chip;
  return z
    .number({ error: `must be an I²C address (number ${hex(min)}..${hex(max)})` })
    .int({ error: 'must be a whole number', abort: true })
    .refine((a) => a >= min && a <= max, {
      error: (iss) =>
        `must be ${hex(min)}..${hex(max)}, got ${typeof iss.input === 'number' ? hex(iss.input) : quote(iss.input)}`,
    })
    .describe(`I²C address ${hex(min)}..${hex(max)}`)
    .default(chip.defaultAddress);
}
