/**
 * The drivers the agent knows: the list of their descriptors. The config's sensor union,
 * DRIVER_NAMES, the docs, the range detector's defaults, the "two sensors in one place"
 * check and `scan` are built from it; adding a chip adds its descriptor here.
 */
import { z } from 'zod';
import { scalarText } from './config/describe-value.js';
import { hex } from './config/sensor-keys.js';
import type { DriverDescriptor, Range, SensorPlace, SensorSchema } from './descriptor.js';
import type { Seams } from './seams.js';
import type { Driver, Logger } from './types.js';
import { tmp102 } from './i2c/tmp102.js';
import { mcp9808 } from './i2c/mcp9808.js';
import { lm75 } from './i2c/lm75.js';
import { sht3x } from './i2c/sht3x.js';
import { bme280 } from './i2c/bme280.js';
import { si7021 } from './i2c/si7021.js';
import { modbusRtu } from './serial/modbus-rtu.js';
import { asciiLine } from './serial/ascii-line.js';
import { ds18b20 } from './onewire/ds18b20.js';
import { modbusTcp } from './network/modbus-tcp.js';
import { httpJson } from './network/http-json.js';

/** In the order the docs list them. */
export const DRIVERS = [
  tmp102,
  mcp9808,
  lm75,
  sht3x,
  bme280,
  si7021,
  modbusRtu,
  asciiLine,
  ds18b20,
  modbusTcp,
  httpJson,
] as const;

type SchemaOf<D> = D extends DriverDescriptor<infer S> ? S : never;
type Schemas<T extends readonly unknown[]> = { [K in keyof T]: SchemaOf<T[K]> };

export type DriverName = (typeof DRIVERS)[number]['name'];
export const DRIVER_NAMES: readonly DriverName[] = DRIVERS.map((d) => d.name);

/** The schemas of a list of descriptors, element for element. */
function schemasOf<T extends readonly DriverDescriptor[]>(drivers: T): Schemas<T> {
  // map keeps length and order, so element i is the schema of descriptor i.
  return drivers.map((d): SensorSchema => d.schema) as unknown as Schemas<T>;
}

/** One config entry under `sensors`, told apart by its `driver`. */
export const sensorSchema = z.discriminatedUnion('driver', schemasOf(DRIVERS));
export type SensorConfig = z.output<typeof sensorSchema>;
export type SensorConfigOf<D extends DriverName> = Extract<SensorConfig, { driver: D }>;

const BY_NAME: ReadonlyMap<string, DriverDescriptor> = new Map(
  DRIVERS.map((d): [string, DriverDescriptor] => [d.name, d]),
);

export function createDriver(s: SensorConfig, seams: Seams): Driver {
  // The descriptor found by `s.driver` is the one whose schema produced `s`.
  return BY_NAME.get(s.driver)!.create(s, seams);
}

/** The chip's datasheet temperature range, °C; undefined for drivers of no one chip. */
export function temperatureRangeOf(driver: string): Range | undefined {
  return BY_NAME.get(driver)?.temperatureRange;
}

/** The keys of a driver's entry that hold a file system path. */
export function pathKeysOf(driver: string): readonly string[] {
  return BY_NAME.get(driver)?.pathKeys ?? [];
}

/**
 * Where a sensor physically sits, for the "two sensors in one place" check; read from an
 * entry that may not have passed validation. An I²C sensor sits at its bus and address.
 */
export function sensorLocation(entry: Readonly<Record<string, unknown>>): SensorPlace | undefined {
  const d = typeof entry.driver === 'string' ? BY_NAME.get(entry.driver) : undefined;
  if (d?.i2c) {
    const address = entry.address ?? d.i2c.defaultAddress;
    return typeof address === 'number'
      ? { key: `I²C bus ${scalarText(entry.bus ?? 1)} address ${hex(address)}`, field: 'address' }
      : undefined;
  }
  return d?.location?.(entry);
}

/**
 * i2c-bus opens one file descriptor per address on first use, and two concurrent first uses
 * leak one: touch every configured address once, in turn, before sampling starts.
 */
export async function touchI2CAddresses(
  sensors: readonly SensorConfig[],
  seams: Seams,
  logger: Logger,
): Promise<void> {
  const byBus = new Map<number, number[]>();
  for (const s of sensors) {
    if ('bus' in s && 'address' in s) byBus.set(s.bus, [...(byBus.get(s.bus) ?? []), s.address]);
  }
  for (const [bus, addresses] of byBus) {
    try {
      await seams.i2c(bus).touch(addresses);
    } catch (err) {
      // An unopenable bus is the sensors' fault to report (retried with backoff), not a crash.
      logger.warn({ bus, err: (err as Error).message }, 'I²C bus not available at start-up');
    }
  }
}
