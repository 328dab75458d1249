/**
 * Names the chip behind an I²C address for `edge-agent scan`: by ID register where the chip
 * has one (MCP9808 0x06/0x07, BME280/BMP280 0xD0, Si7021 electronic ID), otherwise by a
 * harmless probe (SHT3x status with a valid CRC, TMP102's read-only R1:R0 = 11 in its
 * configuration) and, failing that, by the address range.
 * Reads only, apart from the SHT3x status command at 0x44/0x45 and the Si70xx ID command,
 * sent only to a chip whose user register already looks like an Si70xx's.
 */
import type { I2CBus } from '../types.js';
import { BME280_CHIP_ID, BMP280_CHIP_ID, BME280_REG_CHIP_ID } from './bme280.js';
import { crc8 } from './crc8.js';
import {
  MCP9808_REG_DEVICE_ID,
  MCP9808_REG_MANUFACTURER_ID,
  mcp9808IdMismatch,
} from './mcp9808.js';
import { SI7021_CMD_READ_USER_REG, si7021UserRegisterFamily } from './si7021.js';

export interface IdentifiedDevice {
  address: number;
  /** e.g. "MCP9808 (manufacturer 0x0054, device 0x04)" or "TMP102 or LM75". */
  chip: string;
}

const hex = (n: number, width = 2) => `0x${n.toString(16).padStart(width, '0')}`;

const SI70XX_IDS: Record<number, string> = { 0x0d: 'Si7013', 0x14: 'Si7020', 0x15: 'Si7021' };

async function read16(bus: I2CBus, address: number, register: number): Promise<number> {
  const buf = Buffer.alloc(2);
  await bus.readI2cBlock(address, register, 2, buf);
  return buf.readUInt16BE(0);
}

/** Runs a probe; undefined when the chip refused it. */
async function attempt<T>(probe: () => Promise<T>): Promise<T | undefined> {
  try {
    return await probe();
  } catch {
    return undefined;
  }
}

async function identifyMcp9808(bus: I2CBus, address: number): Promise<string> {
  const ids = await attempt(async () => [
    await read16(bus, address, MCP9808_REG_MANUFACTURER_ID),
    await read16(bus, address, MCP9808_REG_DEVICE_ID),
  ]);
  if (!ids) return 'unknown (MCP9808 address range, ID registers unreadable)';
  const mismatch = mcp9808IdMismatch(ids[0], ids[1]);
  return mismatch
    ? `unknown (MCP9808 address range, but ${mismatch})`
    : `MCP9808 (manufacturer ${hex(ids[0], 4)}, device ${hex(ids[1] >> 8)} rev ${hex(ids[1] & 0xff)})`;
}

async function identifyBme280(bus: I2CBus, address: number): Promise<string> {
  const id = await attempt(() => bus.readByte(address, BME280_REG_CHIP_ID));
  if (id === BME280_CHIP_ID) return `BME280 (chip id ${hex(id)})`;
  if (id === BMP280_CHIP_ID) return `BMP280 (chip id ${hex(id)}, no humidity)`;
  if (id === 0x61) return `BME680 (chip id ${hex(id)}, not supported)`;
  return id === undefined
    ? 'unknown (BME280 address, chip id unreadable)'
    : `unknown (chip id ${hex(id)})`;
}

async function identifySi70xx(bus: I2CBus, address: number): Promise<string> {
  // The user register first: a plain register read, harmless for whatever else sits at
  // 0x40 (INA219, PCA9685, HDC1080); only a chip that looks like an Si70xx gets the
  // two-byte electronic-ID command.
  const user = await attempt(() => bus.readByte(address, SI7021_CMD_READ_USER_REG));
  const family = user === undefined ? undefined : si7021UserRegisterFamily(user);
  if (family === 'htu21d') return 'HTU21D (user register 0x02 family)';
  if (family === undefined) return 'unknown (Si7021/HTU21D address)';
  const snb3 = await attempt(async () => {
    await bus.i2cWrite(address, 2, Buffer.from([0xfc, 0xc9]));
    const buf = Buffer.alloc(3);
    await bus.i2cRead(address, 3, buf);
    return crc8(buf.subarray(0, 2), 0x00) === buf[2] ? buf[0] : undefined;
  });
  if (snb3 !== undefined && SI70XX_IDS[snb3])
    return `${SI70XX_IDS[snb3]} (electronic id ${hex(snb3)})`;
  return 'Si7021-compatible (no electronic ID)';
}

async function identifySht3x(bus: I2CBus, address: number): Promise<string> {
  const ok = await attempt(async () => {
    await bus.i2cWrite(address, 2, Buffer.from([0xf3, 0x2d]));
    const buf = Buffer.alloc(3);
    await bus.i2cRead(address, 3, buf);
    return crc8(buf.subarray(0, 2), 0xff) === buf[2];
  });
  return ok ? 'SHT3x (status register CRC ok)' : 'SHT3x (likely; status register unreadable)';
}

async function identifyTmp102OrLm75(bus: I2CBus, address: number): Promise<string> {
  if (address >= 0x4c) return 'LM75 (by address)';
  // TMP102's configuration is 16 bits with read-only R1:R0 = 11; an LM75's is 8 bits with
  // bits 7..5 reserved 0.
  const cfg = await attempt(() => read16(bus, address, 0x01));
  if (cfg !== undefined && (cfg & 0x6000) === 0x6000)
    return `TMP102 (likely: configuration ${hex(cfg, 4)})`;
  return 'TMP102 or LM75';
}

/** The likely chip at an address that answered. */
export async function identifyChip(bus: I2CBus, address: number): Promise<string> {
  if (address >= 0x18 && address <= 0x1f) return identifyMcp9808(bus, address);
  if (address === 0x76 || address === 0x77) return identifyBme280(bus, address);
  if (address === 0x40) return identifySi70xx(bus, address);
  if (address === 0x44 || address === 0x45) return identifySht3x(bus, address);
  if (address >= 0x48 && address <= 0x4f) return identifyTmp102OrLm75(bus, address);
  return 'unknown';
}

/** Scan the bus and name what answered, one address after the other. */
export async function identifyI2CDevices(bus: I2CBus): Promise<IdentifiedDevice[]> {
  const found: IdentifiedDevice[] = [];
  for (const address of await bus.scan())
    found.push({ address, chip: await identifyChip(bus, address) });
  return found;
}

export const formatIdentified = (d: IdentifiedDevice): string => `${hex(d.address)}: ${d.chip}`;
