/**
 * Names the chip behind an I²C address for `edge-agent scan`, from the chips the drivers
 * declare (drivers/registry.ts): each chip that may sit at the address probes it in turn
 * (by ID register where the chip has one, otherwise by a harmless read), the first that
 * recognises it names it; when none can tell, the address names the candidates.
 */
import { hex } from '../config/sensor-keys.js';
import type { I2CChip } from '../descriptor.js';
import { DRIVERS } from '../registry.js';
import type { I2CBus } from '../types.js';

export interface IdentifiedDevice {
  address: number;
  /** e.g. "MCP9808 (manufacturer 0x0054, device 0x04)" or "TMP102 or LM75". */
  chip: string;
}

const CHIPS: readonly I2CChip[] = DRIVERS.flatMap((d): I2CChip[] => (d.i2c ? [d.i2c] : []));

/** The likely chip at an address that answered. */
async function identifyChip(bus: I2CBus, address: number): Promise<string> {
  const candidates = CHIPS.filter((c) => address >= c.minAddress && address <= c.maxAddress);
  if (candidates.length === 0) return 'unknown';
  for (const chip of candidates) {
    const named = await chip.identify?.(bus, address);
    if (named !== undefined) return named;
  }
  return candidates.length === 1
    ? `${candidates[0].label} (by address)`
    : candidates.map((c) => c.label).join(' or ');
}

/** Scan the bus and name what answered, one address after the other. */
export async function identifyI2CDevices(bus: I2CBus): Promise<IdentifiedDevice[]> {
  const found: IdentifiedDevice[] = [];
  for (const address of await bus.scan())
    found.push({ address, chip: await identifyChip(bus, address) });
  return found;
}

export const formatIdentified = (d: IdentifiedDevice): string => `${hex(d.address)}: ${d.chip}`;
