/**
 * Si7021 / HTU21D model: single-byte commands; "no hold" measurements (0xF3 T, 0xF5 RH)
 * NACK the read address until the conversion is done (T 7 ms, RH 10 ms + T, typical at
 * 14 / 12 bit); result MSB LSB CRC (CRC-8 0x31 init 0x00); 0xE0 returns the temperature
 * converted with the last RH measurement (MSB LSB, no CRC; the HTU21D NACKs it); user
 * register 1 (0xE7 / 0xE6, power-on 0x3A, HTU21D 0x02); reset 0xFE; electronic ID
 * (0xFA 0x0F / 0xFC 0xC9), which the HTU21D does not answer.
 */
import { crc8 } from '../../../drivers/i2c/crc8.js';
import { clamp, Nack, SimulatedI2CDevice, type SimulatedDeviceOptions } from '../device.js';

export const si7021RawTemperature = (celsius: number): number =>
  clamp(Math.round(((clamp(celsius, -40, 125) + 46.85) * 65536) / 175.72), 0, 0xffff) & 0xfffc;
/** RH results carry status bit 1 set (bit 1 = 1: humidity measurement). */
export const si7021RawHumidity = (rh: number): number =>
  (clamp(Math.round(((clamp(rh, 0, 100) + 6) * 65536) / 125), 0, 0xffff) & 0xfffc) | 0x02;

export function si7021Frame(w: number, corrupt = false): Uint8Array {
  const bytes = [(w >> 8) & 0xff, w & 0xff];
  const crc = crc8(bytes, 0x00);
  return Uint8Array.from([...bytes, corrupt ? crc ^ 0x5a : crc]);
}

export interface Si7021Options extends SimulatedDeviceOptions {
  /** Device ID in SNB3 (0x15 Si7021, 0x14 Si7020, 0x0D Si7013); undefined = HTU21D (no ID). */
  deviceId?: number | undefined;
  temperatureMs?: number;
  humidityMs?: number;
}

export class SimulatedSi7021 extends SimulatedI2CDevice {
  readonly chip: string;
  private userRegister = 0x3a;
  /** Bits 5..3 and 1 that always read the same: 0x3A Si7021, 0x02 HTU21D. */
  private readonly fixedBits: number;
  private pending: { readyAt: number; startedAt: number; humidity: boolean } | undefined;
  private output: Uint8Array | undefined;
  /** Raw temperature converted along with the last RH measurement (0xE0). */
  private temperatureOfHumidity = 0;
  private readyAt = 0;
  private readonly deviceId: number | undefined;
  private readonly temperatureMs: number;
  private readonly humidityMs: number;

  constructor(options: Si7021Options = {}) {
    super(
      { temperature: { setPoint: 22.1, noise: 0.02 }, humidity: { setPoint: 48, noise: 0.3 } },
      options,
    );
    this.deviceId = 'deviceId' in options ? options.deviceId : 0x15;
    this.chip = this.deviceId === undefined ? 'HTU21D' : 'Si7021';
    this.fixedBits = this.deviceId === undefined ? 0x02 : 0x3a;
    this.userRegister = this.fixedBits;
    this.temperatureMs = options.temperatureMs ?? 7;
    this.humidityMs = options.humidityMs ?? 17;
  }

  protected reset(now: number): void {
    this.userRegister = this.fixedBits;
    this.pending = undefined;
    this.output = undefined;
    this.temperatureOfHumidity = 0;
    this.readyAt = now;
  }

  write(bytes: Uint8Array, now: number): void {
    if (now < this.readyAt || (this.pending && now < this.pending.readyAt))
      throw new Nack('Si7021 busy');
    this.pending = undefined;
    this.output = undefined;
    const [cmd, arg] = bytes;
    switch (cmd) {
      case 0xf3:
        this.pending = { startedAt: now, readyAt: now + this.temperatureMs, humidity: false };
        return;
      case 0xf5:
        this.pending = { startedAt: now, readyAt: now + this.humidityMs, humidity: true };
        return;
      case 0xe0: {
        if (this.deviceId === undefined) throw new Nack('HTU21D has no 0xE0');
        const t = this.temperatureOfHumidity;
        this.output = Uint8Array.of((t >> 8) & 0xff, t & 0xff);
        return;
      }
      case 0xe7:
        this.output = Uint8Array.of(this.userRegister);
        return;
      case 0xe6:
        if (arg !== undefined) this.userRegister = (arg & 0xc5) | this.fixedBits;
        return;
      case 0xfe:
        this.reset(now);
        this.readyAt = now + 5; // soft reset time: NACKs meanwhile
        return;
      case 0xfa:
      case 0xfc:
        if (this.deviceId === undefined) throw new Nack('HTU21D has no electronic ID');
        this.output =
          cmd === 0xfa
            ? Uint8Array.from([...si7021Frame(0xffff), ...si7021Frame(0xffff)])
            : Uint8Array.from([
                ...si7021Frame((this.deviceId << 8) | 0xff),
                ...si7021Frame(0xffff),
              ]);
        return;
      default:
        throw new Nack(`Si7021: unknown command 0x${cmd.toString(16)}`);
    }
  }

  read(length: number, now: number): Uint8Array {
    if (now < this.readyAt) throw new Nack('Si7021 resetting');
    if (this.pending) {
      if (now < this.pending.readyAt) throw new Nack('Si7021 converting');
      const { startedAt, humidity } = this.pending;
      this.pending = undefined;
      const raw = humidity
        ? si7021RawHumidity(this.sample('humidity', startedAt))
        : si7021RawTemperature(this.sample('temperature', startedAt));
      // An RH measurement converts the temperature too, for its compensation.
      if (humidity)
        this.temperatureOfHumidity = si7021RawTemperature(this.sample('temperature', startedAt));
      this.output = si7021Frame(raw, this.take('crc', now));
    }
    if (!this.output) throw new Nack('Si7021 has no data');
    const out = this.output;
    this.output = undefined;
    return Uint8Array.from({ length }, (_, i) => out[i] ?? 0xff);
  }
}
