/**
 * Microchip MCP9808 ±0.25 °C digital temperature sensor.
 *
 * Datasheet facts (DS25095):
 * - Address 0x18–0x1F (A2..A0).
 * - Registers (pointer byte, then data MSB first): 0x01 CONFIG (16 bit), 0x02 T_UPPER,
 *   0x03 T_LOWER, 0x04 T_CRIT, 0x05 T_A (ambient), 0x06 manufacturer ID = 0x0054,
 *   0x07 device ID / revision = 0x04xx, 0x08 resolution (8 bit).
 * - T_A: bits 15..13 are alert flags (T_A ≥ T_CRIT, > T_UPPER, < T_LOWER; set at power-on
 *   because the limits are 0), bit 12 the sign, bits 11..0 the magnitude in 1/16 °C:
 *   t = (raw & 0x0FFF) / 16, minus 256 when bit 12 is set.
 * - Resolution 0..3 = 0.5 / 0.25 / 0.125 / 0.0625 °C, conversion time 30 / 65 / 130 / 250 ms.
 *   The chip converts continuously; T_A holds the last complete conversion.
 *
 * So a round is one 2-byte read. After open() sets the resolution we wait one conversion
 * time (outside the bus lock) so the first value is a conversion at that resolution.
 */
import { z } from 'zod';
import { count } from '../config/bounds.js';
import { hex, sensorKeys } from '../config/sensor-keys.js';
import type { DriverDescriptor, I2CChip } from '../descriptor.js';
import { i2cAddressKey, i2cBusKey } from './config.js';
import { attempt, read16 } from './probe.js';
import { sleepUntil } from '../time.js';
import { SensorError, type Driver, type Measurement } from '../types.js';
import { asSensorErrors } from './errors.js';
import type { SharedI2CBus } from './shared-bus.js';

export const MCP9808_REG_AMBIENT = 0x05;
export const MCP9808_REG_MANUFACTURER_ID = 0x06;
export const MCP9808_REG_DEVICE_ID = 0x07;
export const MCP9808_REG_RESOLUTION = 0x08;
export const MCP9808_MANUFACTURER_ID = 0x0054;
export const MCP9808_DEVICE_ID = 0x04;
/** Conversion time (ms) by resolution register value 0..3. */
export const MCP9808_CONVERSION_MS = [30, 65, 130, 250] as const;

/** Ambient temperature register → °C (alert flags ignored). */
export function mcp9808Celsius(raw: number): number {
  const magnitude = (raw & 0x0fff) / 16;
  return raw & 0x1000 ? magnitude - 256 : magnitude;
}

/** Checks the ID registers; returns a reason when they are not an MCP9808's. */
export function mcp9808IdMismatch(
  manufacturerId: number,
  deviceIdWord: number,
): string | undefined {
  if (manufacturerId !== MCP9808_MANUFACTURER_ID)
    return `manufacturer ID 0x${manufacturerId.toString(16).padStart(4, '0')} (MCP9808: 0x0054)`;
  if (deviceIdWord >> 8 !== MCP9808_DEVICE_ID)
    return `device ID 0x${(deviceIdWord >> 8).toString(16).padStart(2, '0')} (MCP9808: 0x04)`;
  return undefined;
}

export function createMcp9808(config: Mcp9808Config, bus: SharedI2CBus): Driver {
  const { address, resolution } = config;
  const read16 = async (register: number, signal: AbortSignal): Promise<number> => {
    const buf = Buffer.alloc(2);
    await bus.transfer((b) => b.readI2cBlock(address, register, 2, buf), { signal });
    return buf.readUInt16BE(0);
  };
  return {
    kind: 'mcp9808',
    quantities: ['temperature'],
    resource: bus.resource,
    open: (signal) =>
      asSensorErrors(async () => {
        const mismatch = mcp9808IdMismatch(
          await read16(MCP9808_REG_MANUFACTURER_ID, signal),
          await read16(MCP9808_REG_DEVICE_ID, signal),
        );
        if (mismatch) throw new SensorError('DEVICE', `not an MCP9808: ${mismatch}`);
        await bus.transfer((b) => b.writeByte(address, MCP9808_REG_RESOLUTION, resolution), {
          signal,
        });
        // One whole conversion at the new resolution before the first read (T_A reads 0
        // until then after power-on). Not sleep(): a Node timer counts from the loop's cached
        // time and may end a fraction of a millisecond early, when the first reading would
        // still be 0 °C (test/drivers/i2c/one-bus.test.ts).
        await sleepUntil(performance.now() + MCP9808_CONVERSION_MS[resolution], signal);
      }),
    measure: (signal) =>
      asSensorErrors(async (): Promise<Measurement[]> => {
        const raw = await read16(MCP9808_REG_AMBIENT, signal);
        return [{ quantity: 'temperature', value: mcp9808Celsius(raw) }];
      }),
  };
}

const MCP9808_CHIP: I2CChip = {
  label: 'MCP9808',
  minAddress: 0x18,
  maxAddress: 0x1f,
  defaultAddress: 0x18,
  identify: async (bus, address) => {
    const ids = await attempt(async () => [
      await read16(bus, address, MCP9808_REG_MANUFACTURER_ID),
      await read16(bus, address, MCP9808_REG_DEVICE_ID),
    ]);
    if (!ids) return 'unknown (MCP9808 address range, ID registers unreadable)';
    const mismatch = mcp9808IdMismatch(ids[0], ids[1]);
    return mismatch
      ? `unknown (MCP9808 address range, but ${mismatch})`
      : `MCP9808 (manufacturer ${hex(ids[0], 4)}, device ${hex(ids[1] >> 8)} rev ${hex(ids[1] & 0xff)})`;
  },
};

const mcp9808Schema = z.strictObject({
  ...sensorKeys,
  ...i2cBusKey,
  driver: z.literal('mcp9808'),
  address: i2cAddressKey(MCP9808_CHIP),
  resolution: count(0, 3)
    .default(3)
    .describe(
      'Resolution register 0..3 = 0.5 / 0.25 / 0.125 / 0.0625 \u00b0C (30 / 65 / 130 / 250 ms).',
    ),
});
export type Mcp9808Config = z.output<typeof mcp9808Schema>;

export const mcp9808: DriverDescriptor<typeof mcp9808Schema> = {
  name: 'mcp9808',
  schema: mcp9808Schema,
  temperatureRange: { min: -40, max: 125 },
  i2c: MCP9808_CHIP,
  create: (config, seams) => createMcp9808(config, seams.i2c(config.bus)),
};
