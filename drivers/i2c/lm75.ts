/**
 * NXP / TI LM75 and LM75A digital temperature sensors (and the many compatibles).
 *
 * Datasheet facts (NXP LM75A, TI LM75B):
 * - Address 0x48–0x4F (A2..A0). No ID register.
 * - Pointer register: 0x00 temperature (16 bit, MSB first), 0x01 configuration (8 bit:
 *   bit 0 SHUTDOWN, bit 1 OS comparator/interrupt, bit 2 OS polarity, bits 4..3 fault
 *   queue, bits 7..5 reserved 0), 0x02 T_HYST (power-on 75 °C), 0x03 T_OS (80 °C).
 * - Temperature: left-aligned two's complement. LM75: 9 bits, 0.5 °C/LSB; LM75A: 11 bits,
 *   0.125 °C/LSB: value = (int16 >> (16 − bits)) × 2^(8 − bits).
 * - Converts continuously (LM75A every 100 ms, conversion ~10 ms); a read returns the last
 *   complete conversion, so a round is one 2-byte read.
 */
import { z } from 'zod';
import { sensorKeys } from '../config/sensor-keys.js';
import type { DriverDescriptor, I2CChip } from '../descriptor.js';
import { i2cAddressKey, i2cBusKey } from './config.js';
import { sleep } from '../time.js';
import type { Driver, Measurement } from '../types.js';
import { int16 } from './bytes.js';
import { asSensorErrors } from './errors.js';
import type { SharedI2CBus } from './shared-bus.js';

export const LM75_REG_TEMPERATURE = 0x00;
export const LM75_REG_CONFIG = 0x01;
const CONFIG_SHUTDOWN = 0x01;
/** Conversion period of the LM75A; a chip just powered or woken needs one before T is valid. */
export const LM75_CONVERSION_MS = 100;

/** Temperature register → °C for a chip of `bits` resolution (9 for LM75, 11 for LM75A). */
export function lm75Celsius(raw: number, bits: number): number {
  return (int16(raw) >> (16 - bits)) * 2 ** (8 - bits);
}

export function createLm75(config: Lm75Config, bus: SharedI2CBus): Driver {
  const { address, resolutionBits } = config;
  return {
    kind: 'lm75',
    quantities: ['temperature'],
    resource: bus.resource,
    open: (signal) =>
      asSensorErrors(async () => {
        // Presence probe; wake the chip if something left it in shutdown.
        const cfg = await bus.transfer((b) => b.readByte(address, LM75_REG_CONFIG), { signal });
        if (cfg & CONFIG_SHUTDOWN) {
          await bus.transfer((b) => b.writeByte(address, LM75_REG_CONFIG, cfg & ~CONFIG_SHUTDOWN), {
            signal,
          });
        }
        // A chip just powered (or replugged, or woken) reads 0 °C until its first conversion.
        await sleep(LM75_CONVERSION_MS, signal);
      }),
    measure: (signal) =>
      asSensorErrors(async (): Promise<Measurement[]> => {
        const buf = Buffer.alloc(2);
        await bus.transfer((b) => b.readI2cBlock(address, LM75_REG_TEMPERATURE, 2, buf), {
          signal,
        });
        return [
          { quantity: 'temperature', value: lm75Celsius(buf.readUInt16BE(0), resolutionBits) },
        ];
      }),
  };
}

/** No ID register: where it may share addresses with a TMP102, `scan` names both. */
const LM75_CHIP: I2CChip = {
  label: 'LM75',
  minAddress: 0x48,
  maxAddress: 0x4f,
  defaultAddress: 0x48,
};

const lm75Schema = z.strictObject({
  ...sensorKeys,
  ...i2cBusKey,
  driver: z.literal('lm75'),
  address: i2cAddressKey(LM75_CHIP),
  resolutionBits: z
    .literal([9, 11])
    .default(9)
    .describe('9 bits (LM75, 0.5 \u00b0C) or 11 bits (LM75A, 0.125 \u00b0C).'),
});
export type Lm75Config = z.output<typeof lm75Schema>;

export const lm75: DriverDescriptor<typeof lm75Schema> = {
  name: 'lm75',
  schema: lm75Schema,
  temperatureRange: { min: -55, max: 125 },
  i2c: LM75_CHIP,
  create: (config, seams) => createLm75(config, seams.i2c(config.bus)),
};
