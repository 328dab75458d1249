/**
 * A simulated I²C bus behind the same I2CBus seam as i2c-bus. Each transfer takes the time
 * its bytes need on the wire (9 clocks per byte plus start/stop at 100 or 400 kHz, held to
 * a few µs, not to the 1 ms grain of Node's timers) and is recorded in `transfers`, so tests can check what the hardware cannot tolerate: two
 * transfers on one bus at the same time. The bus does not serialise anything itself — that
 * is SharedI2CBus's job, and an overlap here means a caller broke the rule.
 */
import { i2cWireMs } from '../../drivers/i2c/wire-time.js';
import { sleepUntil } from '../../drivers/time.js';
import type { I2CBus } from '../../drivers/types.js';
import { Nack, type SimulatedI2CDevice } from './device.js';

export type TransferKind = 'write' | 'read' | 'write-read' | 'scan';

export interface TransferRecord {
  address: number;
  /** Bus clock (ms) when the transfer took the wire, and when it let go. */
  start: number;
  end: number;
  kind: TransferKind;
  /** Bytes on the wire, address bytes included. */
  bytes: number;
  /** errno code when the transfer failed. */
  error?: string;
  /** Another transfer was on the wire when this one started. */
  overlapped: boolean;
}

export interface SimulatedI2CBusOptions {
  /** SCL frequency: 100 kHz (standard) or 400 kHz (fast mode). */
  clockHz?: 100_000 | 400_000;
  /** Bus clock in ms; performance.now() by default. */
  now?: () => number;
  /**
   * errno of a NACK: ENXIO, as most Linux adapters report an address NACK; the Pi's
   * i2c-bcm2835 reports EREMOTEIO instead.
   */
  nackCode?: 'ENXIO' | 'EREMOTEIO';
  /** How long a "timeout" fault holds the wire before the adapter gives up. */
  hangMs?: number;
  /** Keep at most this many transfer records (oldest dropped). */
  logLimit?: number;
}

const ERRNO: Record<string, number> = {
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  ETIMEDOUT: 110,
  EREMOTEIO: 121,
};
const DESCRIPTION: Record<string, string> = {
  EIO: 'i/o error',
  ENXIO: 'no such device or address',
  EBADF: 'bad file descriptor',
  ETIMEDOUT: 'connection timed out',
  EREMOTEIO: 'remote I/O error',
};

/** An error shaped like the errno errors i2c-bus throws. */
export function i2cErrnoError(code: string, syscall: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: ${DESCRIPTION[code] ?? code}, ${syscall}`);
  err.code = code;
  err.errno = -(ERRNO[code] ?? 5);
  err.syscall = syscall;
  return err;
}

/**
 * Holds the wire `ms` of real time with sub-millisecond precision, so a simulated bus's cycle
 * time is the wire's and not the timer's: a bare setTimeout rounds a sub-millisecond
 * transfer up to whole milliseconds. The drivers' own precise wait does it.
 */
export function holdWire(ms: number): Promise<void> {
  return sleepUntil(performance.now() + ms);
}

export class SimulatedI2CBus implements I2CBus {
  readonly transfers: TransferRecord[] = [];
  /** Transfers that started while another was on the wire. */
  overlaps = 0;
  /** close() calls (SharedI2CBus reopens); the simulated wire itself stays usable. */
  closes = 0;
  readonly clockHz: number;
  private readonly devices = new Map<number, SimulatedI2CDevice>();
  private readonly now: () => number;
  private readonly nackCode: string;
  private readonly hangMs: number;
  private readonly logLimit: number;
  private active = 0;

  constructor(options: SimulatedI2CBusOptions = {}) {
    this.clockHz = options.clockHz ?? 100_000;
    this.now = options.now ?? (() => performance.now());
    this.nackCode = options.nackCode ?? 'ENXIO';
    this.hangMs = options.hangMs ?? 1000;
    this.logLimit = options.logLimit ?? 10_000;
  }

  attach<D extends SimulatedI2CDevice>(address: number, device: D): D {
    if (address < 0x03 || address > 0x77) throw new RangeError(`invalid 7-bit address ${address}`);
    if (this.devices.has(address))
      throw new Error(`address 0x${address.toString(16)} already in use`);
    this.devices.set(address, device);
    device.useClock(this.now);
    device.powerOn(this.now());
    return device;
  }

  device(address: number): SimulatedI2CDevice | undefined {
    return this.devices.get(address);
  }

  get addresses(): number[] {
    return [...this.devices.keys()].sort((a, b) => a - b);
  }

  /** Time the wire needs for `bytes` bytes: 9 clocks each, plus start and stop. */
  wireMs(bytes: number): number {
    return i2cWireMs(bytes, false, this.clockHz);
  }

  /** Clears the transfer log and the overlap count. */
  resetLog(): void {
    this.transfers.length = 0;
    this.overlaps = 0;
  }

  // ---- the I2CBus seam -----------------------------------------------------------------

  async i2cRead(address: number, length: number, buffer: Buffer) {
    const data = await this.transfer(address, 'read', 'i2cRead', undefined, length);
    buffer.set(data.subarray(0, length));
    return { bytesRead: length, buffer };
  }

  async i2cWrite(address: number, length: number, buffer: Buffer) {
    await this.transfer(address, 'write', 'i2cWrite', buffer.subarray(0, length));
    return { bytesWritten: length, buffer };
  }

  async readByte(address: number, command: number): Promise<number> {
    const data = await this.transfer(address, 'write-read', 'readByte', Uint8Array.of(command), 1);
    return data[0];
  }

  /** SMBus words travel low byte first. */
  async readWord(address: number, command: number): Promise<number> {
    const data = await this.transfer(address, 'write-read', 'readWord', Uint8Array.of(command), 2);
    return data[0] | (data[1] << 8);
  }

  async readI2cBlock(address: number, command: number, length: number, buffer: Buffer) {
    const data = await this.transfer(
      address,
      'write-read',
      'readI2cBlock',
      Uint8Array.of(command),
      length,
    );
    buffer.set(data.subarray(0, length));
    return { bytesRead: length, buffer };
  }

  async writeByte(address: number, command: number, byte: number): Promise<void> {
    await this.transfer(address, 'write', 'writeByte', Uint8Array.of(command, byte & 0xff));
  }

  async writeWord(address: number, command: number, word: number): Promise<void> {
    await this.transfer(
      address,
      'write',
      'writeWord',
      Uint8Array.of(command, word & 0xff, (word >> 8) & 0xff),
    );
  }

  async writeI2cBlock(address: number, command: number, length: number, buffer: Buffer) {
    const bytes = new Uint8Array(length + 1);
    bytes[0] = command;
    bytes.set(buffer.subarray(0, length), 1);
    await this.transfer(address, 'write', 'writeI2cBlock', bytes);
    return { bytesWritten: length, buffer };
  }

  async sendByte(address: number, byte: number): Promise<void> {
    await this.transfer(address, 'write', 'sendByte', Uint8Array.of(byte & 0xff));
  }

  async receiveByte(address: number): Promise<number> {
    return (await this.transfer(address, 'read', 'receiveByte', undefined, 1))[0];
  }

  /** Addresses that acknowledge, like i2cdetect (one probe byte per address). */
  async scan(): Promise<number[]> {
    const start = this.begin();
    const found = this.addresses.filter((a) => this.devices.get(a)?.present(start.at) === true);
    await holdWire(this.wireMs(0x77 - 0x03 + 1));
    this.finish(start, 0, 'scan', 0x77 - 0x03 + 1);
    return found;
  }

  async close(): Promise<void> {
    this.closes++;
  }

  // ---- one transfer on the wire ----------------------------------------------------------

  private begin(): { at: number; overlapped: boolean } {
    const overlapped = this.active > 0;
    if (overlapped) this.overlaps++;
    this.active++;
    return { at: this.now(), overlapped };
  }

  private finish(
    begun: { at: number; overlapped: boolean },
    address: number,
    kind: TransferKind,
    bytes: number,
    error?: string,
  ): void {
    this.active--;
    if (this.transfers.length >= this.logLimit) this.transfers.shift();
    this.transfers.push({
      address,
      start: begun.at,
      end: this.now(),
      kind,
      bytes,
      overlapped: begun.overlapped,
      ...(error ? { error } : {}),
    });
  }

  private async transfer(
    address: number,
    kind: TransferKind,
    syscall: string,
    out?: Uint8Array,
    readLength?: number,
  ): Promise<Uint8Array> {
    const begun = this.begin();
    const now = begun.at;
    const device = this.devices.get(address);
    const total =
      1 + (out?.length ?? 0) + (readLength !== undefined ? (out ? 1 : 0) + readLength : 0);
    let bytes = total;
    let error: string | undefined;
    let data: Uint8Array = new Uint8Array(0);
    let holdMs = 0;
    try {
      if (!device || !device.present(now) || device.take('nack', now)) {
        bytes = 1;
        error = this.nackCode;
        if (device) device.counters.nacks++;
      } else if (device.take('eio', now)) {
        error = 'EIO';
      } else if (device.take('eremoteio', now)) {
        error = 'EREMOTEIO';
      } else if (device.take('timeout', now)) {
        error = 'ETIMEDOUT';
        holdMs = this.hangMs;
      } else {
        // A chip acts on a write once its bytes are in (a conversion starts at the end of
        // the command, not at its START condition); a read after a write comes after it.
        const afterWrite = out ? now + this.wireMs(1 + out.length) : now;
        try {
          if (out) {
            device.counters.writes++;
            device.write(out, afterWrite);
          }
          if (readLength !== undefined) {
            device.counters.reads++;
            data = device.read(readLength, afterWrite);
          }
        } catch (err) {
          if (!(err instanceof Nack)) throw err;
          device.counters.nacks++;
          error = this.nackCode;
          // The NACK comes on the (repeated) read address byte.
          bytes = 1 + (out ? out.length + 1 : 0);
        }
      }
      await holdWire(this.wireMs(bytes) + holdMs);
    } finally {
      this.finish(begun, address, kind, bytes, error);
    }
    if (error) throw i2cErrnoError(error, syscall);
    return data;
  }
}
