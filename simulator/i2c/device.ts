/**
 * What every simulated I²C chip shares: fault injection (on demand or scheduled), the
 * values it measures (plausible signals, fixed values or functions of time), a stuck-value
 * fault, and unplug / replug with a power-on reset.
 */
import type { Quantity } from '../../drivers/types.js';
import { Signal, type SignalOptions } from '../signal.js';

/**
 * Faults a device can show:
 * - eio / eremoteio: the transfer fails with that errno (EREMOTEIO = 121, the Pi's usual one)
 * - nack: the address is not acknowledged
 * - timeout: the transfer hangs (clock held low) until the adapter gives up with ETIMEDOUT
 * - crc: the next CRC-protected frame carries a wrong checksum (SHT3x, Si7021)
 * - stuck: the measured values freeze
 * - unplugged: NACKs everything and is missing from scans; when it ends the chip powers on
 *   again with its registers at their reset values
 * - power-on: a brown-out, once, at the scheduled time: registers back to their power-on
 *   values (BME280 data 0x80000 and no humidity, TMP102 / MCP9808 0 °C until the first
 *   conversion, SHT3x status 0x8010)
 */
export const I2C_FAULTS = [
  'eio',
  'eremoteio',
  'nack',
  'timeout',
  'crc',
  'stuck',
  'unplugged',
  'power-on',
] as const;
export type I2CFault = (typeof I2C_FAULTS)[number];

export interface FaultWindow {
  /** Start this many ms from now (default 0: at once). */
  afterMs?: number;
  /** Last this long (default: until cleared or the transfers are used up). */
  forMs?: number;
  /** Affect at most this many transfers (frames for crc). Default: unlimited. */
  transfers?: number;
}

interface FaultEntry {
  fault: I2CFault;
  from: number;
  until: number;
  left: number;
}

/** The device refuses the transfer (address or data NACK). */
export class Nack extends Error {
  override name = 'Nack';
}

/** How a device value evolves: a fixed number, a plausible signal, or any function of time. */
export type ValueSource = number | SignalOptions | ((t: number) => number);

const toValueFn = (source: ValueSource, seed: number): ((t: number) => number) => {
  if (typeof source === 'number') return () => source;
  if (typeof source === 'function') return source;
  const signal = new Signal({ seed, ...source });
  return (t) => signal.at(t);
};

export interface SimulatedDeviceOptions {
  /** Per-quantity value sources; each chip has plausible defaults. */
  values?: Partial<Record<Quantity, ValueSource>>;
  seed?: number;
}

export abstract class SimulatedI2CDevice {
  /** Chip name, e.g. "TMP102". */
  abstract readonly chip: string;
  /** Counts what the device saw, for tests and the simulator's own report. */
  readonly counters = { writes: 0, reads: 0, nacks: 0, faults: 0, powerOns: 0 };
  private readonly faults: FaultEntry[] = [];
  private readonly values = new Map<Quantity, (t: number) => number>();
  private readonly stuckAt = new Map<Quantity, number>();
  private wasUnplugged = false;
  private readonly seed: number;
  /** The bus clock once attached; schedules and power-on times use it. */
  private clock: () => number = () => performance.now();

  protected constructor(
    defaults: Partial<Record<Quantity, ValueSource>>,
    options: SimulatedDeviceOptions,
  ) {
    this.seed = options.seed ?? 1;
    const merged = { ...defaults, ...options.values };
    for (const [q, source] of Object.entries(merged) as [Quantity, ValueSource][]) {
      this.setValue(q, source);
    }
  }

  /** Master writes bytes after the address was acknowledged. Throws Nack to refuse. */
  abstract write(bytes: Uint8Array, now: number): void;
  /** Master reads `length` bytes. Throws Nack to refuse (e.g. still converting). */
  abstract read(length: number, now: number): Uint8Array;
  /** Registers to their power-on values. */
  protected abstract reset(now: number): void;

  /** Called by the bus on attach: the device then runs on the bus's clock. */
  useClock(clock: () => number): void {
    this.clock = clock;
  }

  setValue(quantity: Quantity, source: ValueSource): void {
    this.values.set(quantity, toValueFn(source, this.seed + this.values.size));
  }

  /** The physical value at time t (ms), honouring the stuck fault. */
  protected sample(quantity: Quantity, t: number): number {
    const fn = this.values.get(quantity);
    if (!fn) return 0;
    if (this.isActive('stuck', t)) {
      const frozen = this.stuckAt.get(quantity);
      if (frozen !== undefined) return frozen;
      const v = fn(t);
      this.stuckAt.set(quantity, v);
      return v;
    }
    this.stuckAt.delete(quantity);
    return fn(t);
  }

  /** Power-cycle the chip now: registers back to their reset values. */
  powerOn(now: number = this.clock()): void {
    this.counters.powerOns++;
    this.reset(now);
  }

  /** Inject a fault now or on a schedule (relative to `now`). */
  inject(fault: I2CFault, window: FaultWindow = {}, now: number = this.clock()): void {
    const from = now + (window.afterMs ?? 0);
    this.faults.push({
      fault,
      from,
      until: window.forMs === undefined ? Infinity : from + window.forMs,
      // A power-on happens once; other faults last until their window or count ends.
      left: window.transfers ?? (fault === 'power-on' ? 1 : Infinity),
    });
  }

  /** Remove injected faults (all, or of one kind). */
  clear(fault?: I2CFault): void {
    for (let i = this.faults.length - 1; i >= 0; i--) {
      if (fault === undefined || this.faults[i].fault === fault) this.faults.splice(i, 1);
    }
  }

  unplug(now: number = this.clock()): void {
    this.inject('unplugged', {}, now);
  }

  /** Plug back in: the chip powers on with reset register values. */
  replug(now: number = this.clock()): void {
    this.clear('unplugged');
    if (this.wasUnplugged) {
      this.wasUnplugged = false;
      this.powerOn(now);
    }
  }

  isActive(fault: I2CFault, now: number): boolean {
    return this.faults.some(
      (f) => f.fault === fault && f.left > 0 && now >= f.from && now < f.until,
    );
  }

  /** Uses up one transfer of an active fault; true when it applies to this transfer. */
  take(fault: I2CFault, now: number): boolean {
    const entry = this.faults.find(
      (f) => f.fault === fault && f.left > 0 && now >= f.from && now < f.until,
    );
    if (!entry) return false;
    entry.left--;
    this.counters.faults++;
    return true;
  }

  /** Whether the chip answers at all now; runs the power-on when an unplug has ended. */
  present(now: number): boolean {
    if (this.take('unplugged', now)) {
      this.wasUnplugged = true;
      return false;
    }
    if (this.wasUnplugged) {
      this.wasUnplugged = false;
      this.powerOn(now);
    }
    if (this.take('power-on', now)) this.powerOn(now);
    return true;
  }
}

/** Two's complement of v in `bits` bits. */
export const twosComplement = (v: number, bits: number): number => v & ((1 << bits) - 1);
export const clamp = (v: number, min: number, max: number): number =>
  Math.min(max, Math.max(min, v));
