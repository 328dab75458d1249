/**
 * Sensirion SHT30 / SHT31 / SHT35 humidity and temperature sensor.
 *
 * Datasheet facts (SHT3x-DIS):
 * - Address 0x44 (ADDR low) or 0x45. Commands are 16 bits, MSB first. No ID register;
 *   the status register (0xF32D) answers with a CRC, which is the presence probe.
 * - Single shot, high repeatability, clock stretching disabled: 0x2400. Clock stretching
 *   misbehaves on the Pi's I²C controller, so we never use it. Measurement takes 12.5 ms
 *   typical, 15 ms maximum; until then the sensor NACKs a read.
 * - Result: 6 bytes T(MSB, LSB) CRC RH(MSB, LSB) CRC.
 * - CRC-8 polynomial 0x31, init 0xFF, over each 2-byte word: 0xBE 0xEF → 0x92.
 * - T = −45 + 175 · raw / 65535 °C, RH = 100 · raw / 65535 %.
 * - Soft reset 0x30A2, ready after 1.5 ms.
 */
import { z } from 'zod';
import { sensorKeys } from '../config/sensor-keys.js';
import type { DriverDescriptor, I2CChip } from '../descriptor.js';
import { i2cAddressKey, i2cBusKey } from './config.js';
import { attempt } from './probe.js';
import { sleep } from '../time.js';
import { SensorError, type Driver, type Measurement } from '../types.js';
import { crc8 } from './crc8.js';
import { asSensorErrors } from './errors.js';
import type { SharedI2CBus } from './shared-bus.js';

export const SHT3X_CMD_SINGLE_SHOT_HIGH = 0x2400;
export const SHT3X_CMD_SOFT_RESET = 0x30a2;
export const SHT3X_CMD_READ_STATUS = 0xf32d;
export const SHT3X_MEASUREMENT_MS = 15;
const SHT3X_RESET_MS = 2;
export const SHT3X_CRC_INIT = 0xff;

export const sht3xCrc = (bytes: ArrayLike<number>): number => crc8(bytes, SHT3X_CRC_INIT);
export const sht3xCelsius = (raw: number): number => -45 + (175 * raw) / 65535;
export const sht3xHumidity = (raw: number): number => (100 * raw) / 65535;

/** Checks the CRC of each 2-byte word in a (word, crc)* frame and returns the words. */
export function sht3xWords(frame: Uint8Array): number[] {
  const words: number[] = [];
  for (let i = 0; i + 2 < frame.length; i += 3) {
    const expected = sht3xCrc(frame.subarray(i, i + 2));
    if (frame[i + 2] !== expected) {
      throw new SensorError(
        'CRC',
        `SHT3x CRC mismatch in word ${i / 3}: got 0x${frame[i + 2].toString(16)}, expected 0x${expected.toString(16)}`,
      );
    }
    words.push((frame[i] << 8) | frame[i + 1]);
  }
  return words;
}

/** Decodes a checked 6-byte measurement frame. */
export function sht3xDecode(frame: Uint8Array): { temperature: number; humidity: number } {
  const [t, rh] = sht3xWords(frame);
  return { temperature: sht3xCelsius(t), humidity: sht3xHumidity(rh) };
}

const command = (cmd: number): Buffer => Buffer.from([cmd >> 8, cmd & 0xff]);

export function createSht3x(config: Sht3xConfig, bus: SharedI2CBus): Driver {
  const { address } = config;
  const send = (cmd: number, signal: AbortSignal, priority = 0) =>
    bus.transfer((b) => b.i2cWrite(address, 2, command(cmd)), { signal, priority });
  const read = async (length: number, signal: AbortSignal): Promise<Buffer> => {
    const buf = Buffer.alloc(length);
    await bus.transfer((b) => b.i2cRead(address, length, buf), { signal });
    return buf;
  };
  return {
    kind: 'sht3x',
    quantities: ['temperature', 'humidity'],
    resource: bus.resource,
    open: (signal) =>
      asSensorErrors(async () => {
        await send(SHT3X_CMD_SOFT_RESET, signal);
        await sleep(SHT3X_RESET_MS, signal);
        await send(SHT3X_CMD_READ_STATUS, signal);
        sht3xWords(await read(3, signal));
      }),
    measure: (signal) =>
      asSensorErrors(async (): Promise<Measurement[]> => {
        await send(SHT3X_CMD_SINGLE_SHOT_HIGH, signal, SHT3X_MEASUREMENT_MS);
        await sleep(SHT3X_MEASUREMENT_MS, signal);
        const { temperature, humidity } = sht3xDecode(await read(6, signal));
        return [
          { quantity: 'temperature', value: temperature },
          { quantity: 'humidity', value: humidity },
        ];
      }),
  };
}

const SHT3X_CHIP: I2CChip = {
  label: 'SHT3x',
  minAddress: 0x44,
  maxAddress: 0x45,
  defaultAddress: 0x44,
  // The status register: harmless to read, and its CRC tells an SHT3x.
  identify: async (bus, address) => {
    const ok = await attempt(async () => {
      await bus.i2cWrite(address, 2, Buffer.from([0xf3, 0x2d]));
      const buf = Buffer.alloc(3);
      await bus.i2cRead(address, 3, buf);
      return crc8(buf.subarray(0, 2), 0xff) === buf[2];
    });
    return ok ? 'SHT3x (status register CRC ok)' : 'SHT3x (likely; status register unreadable)';
  },
};

const sht3xSchema = z.strictObject({
  ...sensorKeys,
  ...i2cBusKey,
  driver: z.literal('sht3x'),
  address: i2cAddressKey(SHT3X_CHIP),
});
export type Sht3xConfig = z.output<typeof sht3xSchema>;

export const sht3x: DriverDescriptor<typeof sht3xSchema> = {
  name: 'sht3x',
  schema: sht3xSchema,
  temperatureRange: { min: -40, max: 125 },
  i2c: SHT3X_CHIP,
  create: (config, seams) => createSht3x(config, seams.i2c(config.bus)),
};
