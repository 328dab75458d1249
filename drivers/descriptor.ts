/**
 * What a driver module declares about itself, next to its code: its config entry, its
 * chip's temperature range, where a sensor of it sits, how `scan` recognises it, and how an
 * instance is made. drivers/registry.ts lists the descriptors; the config schema, the docs,
 * the range detector's defaults and `scan` are built from that list.
 */
import type { z } from 'zod';
import type { Seams } from './seams.js';
import type { Driver, I2CBus } from './types.js';

/** A closed interval of a physical value. */
export interface Range {
  min: number;
  max: number;
}

/** Where a sensor physically sits; two enabled sensors with one `key` clash at `field`. */
export interface SensorPlace {
  key: string;
  field: string;
}

/** The addresses an I²C chip can be strapped to, and how `scan` tells it apart. */
export interface I2CChip {
  /** As `scan` prints it, e.g. "TMP102". */
  label: string;
  minAddress: number;
  maxAddress: number;
  defaultAddress: number;
  /**
   * Names the device answering at one of the chip's addresses, or undefined when no probe
   * can tell (then `scan` names every chip that may sit there). Probes read, or send only
   * commands that change nothing.
   */
  identify?(bus: I2CBus, address: number): Promise<string | undefined>;
}

/** A sensor entry of one driver: a strict object with a literal `driver` key. */
export type SensorSchema = z.ZodObject<
  { driver: z.ZodLiteral<string> } & z.core.$ZodLooseShape,
  z.core.$strict
>;

export interface DriverDescriptor<S extends SensorSchema = SensorSchema> {
  /** The config's `driver` value. */
  readonly name: z.output<S>['driver'];
  /** The whole config entry: the shared sensor keys spread in, then the driver's own. */
  readonly schema: S;
  /** Datasheet operating range of the temperature, °C; default of the "range" detector. */
  readonly temperatureRange?: Range;
  /** I²C chips: their addresses (the sensor's place is its bus and address) and scan probe. */
  readonly i2c?: I2CChip;
  /**
   * Keys of the entry that hold a file system path; a relative one is resolved against the
   * directory of the configuration file (agent/config/paths.ts).
   */
  readonly pathKeys?: readonly string[];
  /** Where a sensor sits, read from an entry that may not have passed validation. */
  location?(entry: Readonly<Record<string, unknown>>): SensorPlace | undefined;
  create(config: z.output<S>, seams: Seams): Driver;
}
