/**
 * DS18B20 digital thermometer on 1-Wire, read through the Linux w1-gpio / w1_therm sysfs
 * tree (default /sys/bus/w1/devices).
 *
 * Datasheet facts (Maxim DS18B20, rev. 6):
 * - Family code 0x28; sysfs directory `28-<48-bit serial, hex>`, e.g. 28-0316a2795aff.
 * - Temperature register: int16, two's complement, 1/16 °C per LSB at 12 bits (table 1:
 *   +125 → 0x07D0, +85 → 0x0550, +25.0625 → 0x0191, +10.125 → 0x00A2, +0.5 → 0x0008,
 *   0 → 0x0000, −0.5 → 0xFFF8, −10.125 → 0xFF5E, −25.0625 → 0xFE6F, −55 → 0xFC90).
 * - Conversion time 93.75 / 187.5 / 375 / 750 ms at 9 / 10 / 11 / 12 bits.
 * - Power-on reset value of the register is +85 °C: a read right after power-on (or a
 *   brown-out on parasite power) returns 85000 before any conversion happened.
 *
 * sysfs format. `w1_slave` (two lines, the kernel starts a conversion and waits for it
 * inside the read):
 *     72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
 *     72 01 4b 46 7f ff 0e 10 57 t=23125
 * `crc=.. NO` means the scratchpad CRC-8 failed (bus noise): a CRC fault. The newer
 * `temperature` file holds just the millidegrees ("23125\n"); the kernel returns an error
 * on a CRC failure there. Empty reads happen when the device drops off mid-read.
 *
 * Errors: missing directory → DISCONNECTED; NO → CRC; empty or malformed → DEVICE.
 * 85000 with no earlier reading near 85 °C → status Suspect: counted as a power-on value,
 * never a measurement (agent/aggregation/aggregator.ts).
 * Reads go through a shared ReadLimiter (w1-limiter.ts) so that blocking conversions
 * cannot take every libuv thread-pool thread.
 */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { scalarText } from '../config/describe-value.js';
import { sensorKeys } from '../config/sensor-keys.js';
import type { DriverDescriptor } from '../descriptor.js';
import { ReadingStatus, SensorError, type Driver, type Measurement } from '../types.js';
import { sharedW1Reads, type ReadLimiter } from './w1-limiter.js';

export const POWER_ON_MILLI_C = 85_000;

/** Temperature register bytes (LSB, MSB) → °C, at 12 bits. */
export function ds18b20Celsius(lsb: number, msb: number): number {
  const raw = ((msb & 0xff) << 8) | (lsb & 0xff);
  return (raw >= 0x8000 ? raw - 0x10000 : raw) / 16;
}

/** Text of `w1_slave` → millidegrees; throws SensorError('CRC' | 'DEVICE'). */
export function parseW1Slave(text: string): number {
  const [first = '', second = ''] = text.split('\n');
  if (text.trim() === '') throw new SensorError('DEVICE', 'empty w1_slave read');
  const crc = /crc=[0-9a-f]{2} (YES|NO)\s*$/i.exec(first);
  if (!crc) throw new SensorError('DEVICE', `malformed w1_slave line: ${first.slice(0, 60)}`);
  if (crc[1].toUpperCase() === 'NO') throw new SensorError('CRC', 'w1_slave reports crc NO');
  const t = /t=(-?\d+)\s*$/.exec(second);
  if (!t) throw new SensorError('DEVICE', `no t= in w1_slave: ${second.slice(0, 60)}`);
  return Number(t[1]);
}

/** Text of `temperature` → millidegrees; throws SensorError('DEVICE'). */
export function parseTemperatureFile(text: string): number {
  const m = /^\s*(-?\d+)\s*$/.exec(text);
  if (!m)
    throw new SensorError('DEVICE', `temperature file holds ${JSON.stringify(text.slice(0, 20))}`);
  return Number(m[1]);
}

export interface Ds18b20Options {
  /** Bound on concurrent w1 reads; default the process-wide sharedW1Reads (half the pool). */
  limiter?: ReadLimiter;
}

export function createDs18b20(config: Ds18b20Config, options: Ds18b20Options = {}): Driver {
  const dir = join(config.w1Root, config.deviceId);
  const limiter = options.limiter ?? sharedW1Reads;
  let file: 'w1_slave' | 'temperature' = 'w1_slave';
  /** Last value not flagged, to tell a real 85 °C from the power-on value. */
  let lastGood: number | undefined;

  const missing = (err: unknown) => {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    return code === 'ENOENT' || code === 'ENODEV' || code === 'ENXIO';
  };

  return {
    kind: 'ds18b20',
    quantities: ['temperature'],
    async open() {
      try {
        await access(dir);
      } catch (err) {
        throw new SensorError('DISCONNECTED', `${config.deviceId} not on the 1-Wire bus`, {
          cause: err,
        });
      }
      // Prefer w1_slave: it shows the CRC verdict; very new kernels may only have temperature.
      file = await access(join(dir, 'w1_slave')).then(
        () => 'w1_slave' as const,
        () => 'temperature' as const,
      );
    },
    async measure(signal): Promise<Measurement[]> {
      let text: string;
      try {
        text = await limiter.run(() => readFile(join(dir, file), 'latin1'), signal);
      } catch (err) {
        if (missing(err)) {
          throw new SensorError('DISCONNECTED', `${config.deviceId} disappeared`, { cause: err });
        }
        if ((err as NodeJS.ErrnoException).code === 'EIO' && file === 'temperature') {
          throw new SensorError('CRC', 'temperature read failed (EIO: CRC or bus error)', {
            cause: err,
          });
        }
        throw err;
      }
      const milli = file === 'w1_slave' ? parseW1Slave(text) : parseTemperatureFile(text);
      const value = milli / 1000;
      const suspect =
        milli === POWER_ON_MILLI_C && (lastGood === undefined || Math.abs(lastGood - 85) > 2);
      if (!suspect) lastGood = value;
      return [
        {
          quantity: 'temperature',
          value,
          status: suspect ? ReadingStatus.Suspect : ReadingStatus.Ok,
        },
      ];
    },
    async close() {
      // After unplug/replug the device powers on again: its first 85 °C is suspect again.
      lastGood = undefined;
    },
  };
}

const ds18b20Schema = z.strictObject({
  ...sensorKeys,
  driver: z.literal('ds18b20'),
  deviceId: z
    .string()
    .regex(/^[0-9a-f]{2}-[0-9a-f]{12}$/, 'must look like 28-0316a2795aff')
    .describe('1-Wire id as it appears in sysfs, e.g. 28-0316a2795aff.'),
  w1Root: z
    .string()
    .default('/sys/bus/w1/devices')
    .describe(
      'sysfs root of the w1 bus; a relative path is resolved against the directory of the configuration file.',
    ),
});
export type Ds18b20Config = z.output<typeof ds18b20Schema>;

export const ds18b20: DriverDescriptor<typeof ds18b20Schema> = {
  name: 'ds18b20',
  schema: ds18b20Schema,
  pathKeys: ['w1Root'],
  temperatureRange: { min: -55, max: 125 },
  location: (entry) => ({ key: `1-Wire device ${scalarText(entry.deviceId)}`, field: 'deviceId' }),
  // The seams' w1Root (the simulator's fake sysfs tree) replaces every configured one.
  create: (config, seams) =>
    createDs18b20(seams.openers.w1Root ? { ...config, w1Root: seams.openers.w1Root } : config),
};
