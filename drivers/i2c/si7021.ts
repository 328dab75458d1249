/**
 * Silicon Labs Si7021 (and Si7020 / Si7013, TE HTU21D, which share the command set)
 * humidity and temperature sensor.
 *
 * Datasheet facts (Si7021-A20 rev 1.2):
 * - Address 0x40. Commands are single bytes.
 * - Measure temperature, no hold master: 0xF3; humidity, no hold master: 0xF5. "No hold"
 *   because hold-master mode stretches the clock, which the Pi's controller mishandles.
 *   While converting the chip NACKs its read address; conversion takes up to 10.8 ms (T,
 *   14 bit) and 12 ms + T for RH, so we poll the read from the typical time (7 / 17 ms)
 *   on, about every 6 ms, for up to 100 ms.
 * - Result: MSB, LSB, CRC. The two low bits of LSB are status bits (masked).
 *   CRC-8 polynomial 0x31, init 0x00.
 * - T = 175.72 · raw / 65536 − 46.85 °C; RH = 125 · raw / 65536 − 6 %, which may leave
 *   0..100 slightly and is clamped, as the datasheet advises.
 * - Reset 0xFE (15 ms). User register 1 read 0xE7: power-on 0x3A on the Si7021 (reserved
 *   bits 5..3 and 1 read 1), 0x02 on the HTU21D (bit 1 "disable OTP reload" = 1, bits 5..3
 *   reserved 0). Bit 1 reads 1 on both: the presence / identity probe, since the HTU21D
 *   lacks the electronic ID.
 * - Electronic ID second word: 0xFC 0xC9 → SNB3 (0x15 Si7021, 0x14 Si7020, 0x0D Si7013),
 *   used by `edge-agent scan`.
 * - Every RH measurement also converts the temperature it compensates with; 0xE0 reads that
 *   temperature (MSB, LSB, no checksum) without a second conversion. The HTU21D lacks 0xE0.
 *
 * When both quantities are wanted, an Si70xx converts once (RH, then 0xE0 for T): one
 * conversion (22.8 ms max) instead of two (33.6 ms max) per round, half the self-heating, and
 * the two values from the same instant. An HTU21D converts T and RH separately, each frame
 * with its own CRC.
 */
import { z } from 'zod';
import { hex, quantity, sensorKeys } from '../config/sensor-keys.js';
import type { DriverDescriptor, I2CChip } from '../descriptor.js';
import { i2cAddressKey, i2cBusKey } from './config.js';
import { attempt } from './probe.js';
import { sleep, sleepUntil } from '../time.js';
import { SensorError, type Driver, type Measurement, type Quantity } from '../types.js';
import { crc8 } from './crc8.js';
import { asSensorErrors } from './errors.js';
import type { SharedI2CBus } from './shared-bus.js';
import { I2C_ISSUE_MARGIN_MS, i2cWireMs } from './wire-time.js';

export const SI7021_CMD_MEASURE_T_NO_HOLD = 0xf3;
export const SI7021_CMD_MEASURE_RH_NO_HOLD = 0xf5;
export const SI7021_CMD_READ_T_FROM_RH = 0xe0;
export const SI7021_CMD_RESET = 0xfe;
export const SI7021_CMD_READ_USER_REG = 0xe7;
/** User register power-on values: Si7021 0x3A, HTU21D 0x02. */
export const SI7021_USER_REG_POWER_ON = 0x3a;
export const HTU21D_USER_REG_POWER_ON = 0x02;

/** The user register's family, judged by the bits that never change (5..3 and 1). */
export function si7021UserRegisterFamily(user: number): 'si70xx' | 'htu21d' | undefined {
  if ((user & 0x3a) === SI7021_USER_REG_POWER_ON) return 'si70xx';
  if ((user & 0x3a) === HTU21D_USER_REG_POWER_ON) return 'htu21d';
  return undefined;
}
export const SI7021_CRC_INIT = 0x00;
const RESET_MS = 15;
/** Typical conversion times (RH 12 bit includes its T 14 bit): the bus priority of a start. */
const SI7021_T_TYP_MS = 7;
const SI7021_RH_TYP_MS = 17;
/** Read-poll period and bound while the chip NACKs during a conversion. */
export const SI7021_POLL_MS = 6;
export const SI7021_POLL_LIMIT_MS = 100;

export const si7021Crc = (bytes: ArrayLike<number>): number => crc8(bytes, SI7021_CRC_INIT);
export const si7021Celsius = (raw: number): number => (175.72 * (raw & 0xfffc)) / 65536 - 46.85;
export const si7021Humidity = (raw: number): number =>
  Math.min(100, Math.max(0, (125 * (raw & 0xfffc)) / 65536 - 6));

/** Checks a 3-byte MSB LSB CRC frame and returns the 16-bit word. */
export function si7021Word(frame: Uint8Array): number {
  const expected = si7021Crc(frame.subarray(0, 2));
  if (frame[2] !== expected) {
    throw new SensorError(
      'CRC',
      `Si7021 CRC mismatch: got 0x${frame[2].toString(16)}, expected 0x${expected.toString(16)}`,
    );
  }
  return (frame[0] << 8) | frame[1];
}

/** ENXIO on most adapters, EREMOTEIO on the Pi: the chip refused its read address. */
const isNack = (err: unknown): boolean => {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENXIO' || code === 'EREMOTEIO';
};

const SUPPORTED: readonly Quantity[] = ['temperature', 'humidity'];

export function createSi7021(config: Si7021Config, bus: SharedI2CBus): Driver {
  const { address } = config;
  const unsupported = config.quantities.filter((q) => !SUPPORTED.includes(q));
  if (unsupported.length > 0)
    throw new Error(`si7021 cannot measure ${unsupported.join(', ')} (only temperature, humidity)`);
  const quantities = SUPPORTED.filter((q) => config.quantities.includes(q));

  const convert = async (cmd: number, signal: AbortSignal): Promise<number> => {
    const typMs = cmd === SI7021_CMD_MEASURE_RH_NO_HOLD ? SI7021_RH_TYP_MS : SI7021_T_TYP_MS;
    let issued = 0;
    await bus.transfer(
      (b) => {
        issued = performance.now();
        return b.sendByte(address, cmd);
      },
      { signal, priority: typMs },
    );
    const buf = Buffer.alloc(3);
    const deadline = performance.now() + SI7021_POLL_LIMIT_MS;
    // The first poll when a typical chip is done, timed from the command's end on the wire
    // (address + command: 2 bytes); then every SI7021_POLL_MS. Polling from the command on
    // cost two refused reads a round and read a typical chip up to 6 ms after its end.
    await sleepUntil(issued + I2C_ISSUE_MARGIN_MS + i2cWireMs(2) + typMs, signal);
    for (;;) {
      try {
        // No retry: a NACK here means "still converting", not bus trouble.
        await bus.transfer((b) => b.i2cRead(address, 3, buf), { signal, retry: false });
        return si7021Word(buf);
      } catch (err) {
        if (!isNack(err) || signal.aborted) throw err;
        if (performance.now() >= deadline)
          throw new SensorError(
            'TIMEOUT',
            `Si7021 still converting after ${SI7021_POLL_LIMIT_MS} ms`,
            {
              cause: err,
            },
          );
      }
      await sleep(SI7021_POLL_MS, signal);
    }
  };

  /** The temperature of the RH measurement just read (0xE0: two bytes, no checksum). */
  const temperatureOfHumidity = async (signal: AbortSignal): Promise<number> => {
    const buf = Buffer.alloc(2);
    await bus.transfer((b) => b.readI2cBlock(address, SI7021_CMD_READ_T_FROM_RH, 2, buf), {
      signal,
    });
    return buf.readUInt16BE(0);
  };
  /** Set by open(): only an Si70xx has 0xE0. */
  let oneConversion = false;

  return {
    kind: 'si7021',
    quantities,
    resource: bus.resource,
    open: (signal) =>
      asSensorErrors(async () => {
        await bus.transfer((b) => b.sendByte(address, SI7021_CMD_RESET), { signal });
        await sleep(RESET_MS, signal);
        const user = await bus.transfer((b) => b.readByte(address, SI7021_CMD_READ_USER_REG), {
          signal,
        });
        const family = si7021UserRegisterFamily(user);
        if (family === undefined)
          throw new SensorError(
            'DEVICE',
            `not an Si7021/HTU21D: user register 0x${user.toString(16)} (expected 0x3a or 0x02 in bits 5..3, 1)`,
          );
        oneConversion = family === 'si70xx' && quantities.length === 2;
      }),
    measure: (signal) =>
      asSensorErrors(async (): Promise<Measurement[]> => {
        if (oneConversion) {
          const humidity = si7021Humidity(await convert(SI7021_CMD_MEASURE_RH_NO_HOLD, signal));
          const temperature = si7021Celsius(await temperatureOfHumidity(signal));
          return quantities.map((q) => ({
            quantity: q,
            value: q === 'temperature' ? temperature : humidity,
          }));
        }
        const out: Measurement[] = [];
        for (const q of quantities) {
          if (q === 'temperature') {
            const raw = await convert(SI7021_CMD_MEASURE_T_NO_HOLD, signal);
            out.push({ quantity: q, value: si7021Celsius(raw) });
          } else {
            const raw = await convert(SI7021_CMD_MEASURE_RH_NO_HOLD, signal);
            out.push({ quantity: q, value: si7021Humidity(raw) });
          }
        }
        return out;
      }),
  };
}

const SI70XX_IDS: Record<number, string> = { 0x0d: 'Si7013', 0x14: 'Si7020', 0x15: 'Si7021' };

const SI7021_CHIP: I2CChip = {
  label: 'Si7021',
  minAddress: 0x40,
  maxAddress: 0x40,
  defaultAddress: 0x40,
  identify: async (bus, address) => {
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
  },
};

const si7021Schema = z.strictObject({
  ...sensorKeys,
  ...i2cBusKey,
  driver: z.literal('si7021'),
  address: i2cAddressKey(SI7021_CHIP),
  quantities: z
    .array(quantity)
    .min(1)
    .default(['temperature'])
    .describe('Quantities to report: temperature and/or humidity.'),
});
export type Si7021Config = z.output<typeof si7021Schema>;

export const si7021: DriverDescriptor<typeof si7021Schema> = {
  name: 'si7021',
  schema: si7021Schema,
  temperatureRange: { min: -40, max: 125 },
  i2c: SI7021_CHIP,
  create: (config, seams) => createSi7021(config, seams.i2c(config.bus)),
};
