/** Config keys shared by the Modbus drivers (RTU on a serial line, TCP on the network). */
import { z } from 'zod';
import { count, factor } from './config/bounds.js';
import { scalarText } from './config/describe-value.js';
import { quantity } from './config/sensor-keys.js';

/** How one Modbus register maps to a quantity. */
const modbusRegister = z.strictObject({
  quantity,
  address: count(0, 0xffff).describe('Register address (0-based, as on the wire).'),
  scale: factor(-1e6, 1e6)
    .refine((v) => v !== 0, { error: 'must not be 0 (every value would read 0)' })
    .default(0.1)
    .describe('Value = raw × scale.'),
  signed: z.boolean().default(true).describe('Raw register is int16 (true) or uint16.'),
});
/** XY-MD02 and most RS-485 temperature/humidity modules. */
const XY_MD02_REGISTERS = [
  { quantity: 'temperature' as const, address: 1, scale: 0.1, signed: true },
  { quantity: 'humidity' as const, address: 2, scale: 0.1, signed: true },
];
export const modbusKeys = {
  unitId: count(1, 247).default(1).describe('Modbus slave / unit id.'),
  function: z
    .literal([3, 4])
    .default(4)
    .describe('3 = read holding registers, 4 = read input registers.'),
  registers: z
    .array(modbusRegister)
    .min(1)
    .default(XY_MD02_REGISTERS)
    .describe('Registers to read; default: XY-MD02 (temperature 0x0001, humidity 0x0002, ×0.1).'),
};

/**
 * "unit 1 registers 1,2 (function 4)": one Modbus unit may hold several sensors at different
 * registers (a multi-channel module, or a TCP gateway), so only the same registers of the
 * same unit are one place. Read from an entry that may not have passed validation.
 */
export function modbusUnitText(entry: Readonly<Record<string, unknown>>): string {
  const registers = Array.isArray(entry.registers)
    ? (entry.registers as unknown[])
        .map((r) =>
          scalarText(
            r !== null && typeof r === 'object' ? (r as Record<string, unknown>).address : r,
          ),
        )
        .join(',')
    : '1,2';
  return `unit ${scalarText(entry.unitId ?? 1)} registers ${registers} (function ${scalarText(entry.function ?? 4)})`;
}
