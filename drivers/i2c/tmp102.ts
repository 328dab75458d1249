/**
 * TI TMP102 digital temperature sensor.
 *
 * Datasheet facts (SBOS397):
 * - Address 0x48–0x4B (ADD0 to GND / V+ / SDA / SCL). No ID register.
 * - Pointer register selects: 0x00 temperature (read-only), 0x01 configuration,
 *   0x02 T_LOW, 0x03 T_HIGH. Every register is 16 bits, sent MSB first (big-endian);
 *   an SMBus "read word" would arrive byte-swapped, so we read a 2-byte I²C block.
 * - Temperature, 12-bit mode: bits 15..4, two's complement, 0.0625 °C/LSB, i.e.
 *   °C = int16(raw) / 256. Bit 0 is 0.
 * - Extended mode (config EM bit, byte 2 bit 4): 13 bits 15..3, range to 150 °C; bit 0 = 1
 *   flags the format, e.g. 0x4B01 → 150 °C.
 * - Configuration (power-on 0x60A0): byte 1 = OS R1 R0 F1 F0 POL TM SD,
 *   byte 2 = CR1 CR0 AL EM 0 0 0 0. OS = 1 in shutdown mode starts one conversion.
 * - Conversion time 26 ms typical, 35 ms maximum. In shutdown mode OS reads 0 while a
 *   one-shot conversion runs and 1 once it is complete.
 *
 * Mode choice: one-shot. The chip sits in shutdown (SD) and each round starts a conversion
 * (OS). Every sample is taken in its round (its time stamp is honest, never up to 250 ms
 * stale as in the power-on 4 Hz continuous mode), the wait happens outside the bus lock so
 * it overlaps with the other sensors, and the chip does not warm itself converting between
 * samples. The OS/SD/EM bits are written again every round, so a chip that was power-cycled
 * comes back configured.
 *
 * The round ends when the chip says so, not at the worst case: from the typical 26 ms on
 * (timed from the command's end on the wire), the configuration register is read about
 * every millisecond until OS reads 1, and at the
 * 35 ms maximum the result is read whatever OS says. A typical part is read ~27 ms after the
 * start instead of 35, for one or two 5-byte reads of bus time.
 */
import { z } from 'zod';
import { hex, sensorKeys } from '../config/sensor-keys.js';
import type { DriverDescriptor, I2CChip } from '../descriptor.js';
import { i2cAddressKey, i2cBusKey } from './config.js';
import { attempt, read16 } from './probe.js';
import { sleep, sleepUntil } from '../time.js';
import type { Driver, Measurement } from '../types.js';
import { int16 } from './bytes.js';
import { asSensorErrors } from './errors.js';
import type { SharedI2CBus } from './shared-bus.js';
import { i2cWireMs } from './wire-time.js';

export const TMP102_REG_TEMPERATURE = 0x00;
export const TMP102_REG_CONFIG = 0x01;
/** Maximum one-shot conversion time. */
export const TMP102_CONVERSION_MS = 35;
/** Typical one-shot conversion time: the first look at OS. */
export const TMP102_CONVERSION_TYP_MS = 26;
/** Between two looks at OS. */
export const TMP102_POLL_MS = 1;
/** Configuration byte 1: OS (one-shot) and SD (shutdown). */
const CONFIG1_OS = 0x80;
const CONFIG1_SD = 0x01;
/** Power-on R1 R0 = 11 (read-only resolution bits). */
const CONFIG1_R1R0 = 0x60;
/** Configuration byte 2: 4 Hz conversion rate (power-on), EM (extended mode). */
const CONFIG2_CR_4HZ = 0x80;
const CONFIG2_EM = 0x10;

/**
 * Temperature register (16 bits, big-endian) → °C. Bit 0 tells the format: 0 = 12-bit,
 * 1 = 13-bit extended mode.
 */
export function tmp102Celsius(raw: number): number {
  const value = int16(raw);
  return (raw & 0x01 ? value >> 3 : value >> 4) * 0.0625;
}

/** The two configuration bytes written to start a one-shot conversion. */
export function tmp102OneShotConfig(extended: boolean): [number, number] {
  return [CONFIG1_OS | CONFIG1_R1R0 | CONFIG1_SD, CONFIG2_CR_4HZ | (extended ? CONFIG2_EM : 0)];
}

export function createTmp102(config: Tmp102Config, bus: SharedI2CBus): Driver {
  const { address, extended } = config;
  const [osConfig1, config2] = tmp102OneShotConfig(extended);
  return {
    kind: 'tmp102',
    quantities: ['temperature'],
    resource: bus.resource,
    open: (signal) =>
      asSensorErrors(async () => {
        // Shutdown mode, chosen resolution: the chip now converts only when asked.
        const cfg = Buffer.from([osConfig1 & ~CONFIG1_OS, config2]);
        await bus.transfer((b) => b.writeI2cBlock(address, TMP102_REG_CONFIG, 2, cfg), { signal });
      }),
    measure: (signal) =>
      asSensorErrors(async (): Promise<Measurement[]> => {
        const start = Buffer.from([osConfig1, config2]);
        let issued = 0;
        await bus.transfer(
          (b) => {
            issued = performance.now();
            return b.writeI2cBlock(address, TMP102_REG_CONFIG, 2, start);
          },
          { signal, priority: TMP102_CONVERSION_TYP_MS },
        );
        // The 35 ms maximum counts from when the write returned: never earlier than the
        // conversion really began.
        const started = performance.now();
        // The first look comes when a typical chip is done, timed from the command's end on
        // the wire (issued + its 4 bytes) rather than from when JavaScript saw the write
        // complete, which a busy loop delays. A look that finds OS = 0 only costs another.
        await sleepUntil(issued + i2cWireMs(4) + TMP102_CONVERSION_TYP_MS, signal);
        const config = Buffer.alloc(2);
        // Bounded by the datasheet maximum, and by a count in case the clock misbehaves.
        for (let look = 0; look < 64; look++) {
          if (performance.now() - started >= TMP102_CONVERSION_MS) break;
          await bus.transfer((b) => b.readI2cBlock(address, TMP102_REG_CONFIG, 2, config), {
            signal,
          });
          if (config[0] & CONFIG1_OS) break;
          await sleep(TMP102_POLL_MS, signal);
        }
        const buf = Buffer.alloc(2);
        await bus.transfer((b) => b.readI2cBlock(address, TMP102_REG_TEMPERATURE, 2, buf), {
          signal,
        });
        return [{ quantity: 'temperature', value: tmp102Celsius(buf.readUInt16BE(0)) }];
      }),
  };
}

const TMP102_CHIP: I2CChip = {
  label: 'TMP102',
  minAddress: 0x48,
  maxAddress: 0x4b,
  defaultAddress: 0x48,
  // TMP102's configuration is 16 bits with read-only R1:R0 = 11; an LM75's (which shares
  // these addresses) is 8 bits with bits 7..5 reserved 0.
  identify: async (bus, address) => {
    const cfg = await attempt(() => read16(bus, address, TMP102_REG_CONFIG));
    return cfg !== undefined && (cfg & 0x6000) === 0x6000
      ? `TMP102 (likely: configuration ${hex(cfg, 4)})`
      : undefined;
  },
};

const tmp102Schema = z.strictObject({
  ...sensorKeys,
  ...i2cBusKey,
  driver: z.literal('tmp102'),
  address: i2cAddressKey(TMP102_CHIP),
  extended: z
    .boolean()
    .default(false)
    .describe('Extended 13-bit mode (EM bit): range up to 150 \u00b0C.'),
});
export type Tmp102Config = z.output<typeof tmp102Schema>;

export const tmp102: DriverDescriptor<typeof tmp102Schema> = {
  name: 'tmp102',
  schema: tmp102Schema,
  temperatureRange: { min: -55, max: 150 },
  i2c: TMP102_CHIP,
  create: (config, seams) => createTmp102(config, seams.i2c(config.bus)),
};
