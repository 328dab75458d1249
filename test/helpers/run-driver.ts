/**
 * The one way tests run a driver: build it from its config entry through the registry
 * (`createDriver`, i.e. the driver's descriptor) and `Seams` whose openers reach simulated
 * hardware — the simulated I²C bus, a serial binding (the simulator's, or the real one over a
 * socat pty pair), a fake 1-Wire sysfs tree, loopback network simulators — or real hardware;
 * then run it through the round engine for a bounded number of ticks (`runDriver`), or call
 * the `Driver` interface directly.
 *
 * The round engine (retries, timeouts, backoff, reopen) is imported here and nowhere else in
 * the driver tests, so a rename of it touches this file only.
 */
import type { z } from 'zod';
import { sensorReadings } from '../../drivers/rounds.js';
import { createDriver, sensorSchema } from '../../drivers/registry.js';
import { Seams } from '../../drivers/seams.js';
import type { HttpJsonClient } from '../../drivers/network/http-client.js';
import type { SerialBinding } from '../../drivers/serial/serial-lines.js';
import {
  nullLogger,
  ReadingStatus,
  type Driver,
  type I2CBus,
  type Reading,
  type SensorError,
} from '../../drivers/types.js';
import { SimulatedI2CBus, type SimulatedI2CBusOptions } from '../../simulator/i2c/bus.js';
import { SimulatedSerialBinding } from '../../simulator/serial/binding.js';

/** A sensor entry as a config file has it (schema defaults not yet applied). */
export type SensorEntry = z.input<typeof sensorSchema>;

/** What the seams reach. Whatever is left out is absent (no serial ports, an empty I²C bus). */
export interface Hardware {
  /** One simulated bus answering for every bus number, or an opener per bus number. */
  i2c?: SimulatedI2CBus | ((busNumber: number) => Promise<I2CBus>);
  serial?: SerialBinding;
  /** Root of a (fake) w1 sysfs tree; every DS18B20 reads under it. */
  w1Root?: string;
  http?: HttpJsonClient;
}

export interface Rig {
  seams: Seams;
  /** The driver of this entry, made by its descriptor over the rig's seams. */
  driver(entry: SensorEntry): Driver;
  /** How often the I²C bus was opened (a reopen after failures opens it again). */
  i2cOpens(): number;
  close(): Promise<void>;
}

/** Seams over the given hardware, and drivers built from config entries over them. */
export function rig(hw: Hardware = {}): Rig {
  let opens = 0;
  const i2c = hw.i2c;
  const openI2C = async (busNumber: number): Promise<I2CBus> => {
    opens++;
    if (i2c instanceof SimulatedI2CBus) return i2c;
    if (i2c) return i2c(busNumber);
    return new SimulatedI2CBus();
  };
  const seams = new Seams(
    {
      openI2C,
      serialBinding: hw.serial ?? new SimulatedSerialBinding(),
      w1Root: hw.w1Root,
      http: hw.http,
    },
    nullLogger,
  );
  return {
    seams,
    driver: (entry) => createDriver(sensorSchema.parse(entry), seams),
    i2cOpens: () => opens,
    close: () => seams.close(),
  };
}

/** A rig over a fresh simulated I²C bus; attach chips to `sim`. */
export function i2cRig(options: SimulatedI2CBusOptions = {}): Rig & { sim: SimulatedI2CBus } {
  const sim = new SimulatedI2CBus(options);
  return { ...rig({ i2c: sim }), sim };
}

export interface RunOptions {
  /** At most this many ticks (default 200). */
  ticks?: number;
  /** Between two ticks, ms (default 20). */
  intervalMs?: number;
  /** Awaited before tick i is issued: inject faults here. */
  beforeTick?: (i: number) => void | Promise<void>;
  /**
   * Awaited after every reading, e.g. to inject a fault mid-run; the next tick waits for it,
   * so a change made here is in place before the next round, however slow the machine.
   */
  onReading?: (r: Reading, readings: Reading[], faults: SensorError[]) => void | Promise<void>;
  /** Stop once this holds (checked after every reading). */
  until?: (readings: Reading[], faults: SensorError[]) => boolean;
  /** Round timeout, ms (default 2000). */
  timeoutMs?: number;
  /** Backoff after failures (default 0: every tick gets its round). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Consecutive failures before the driver is closed and reopened (default 3). */
  reopenAfter?: number;
}

export interface RunResult {
  readings: Reading[];
  /** Every failed round's error, in order. */
  faults: SensorError[];
  ok: Reading[];
  failed: Reading[];
}

/** A timer on the global setTimeout, so vitest's fake timers (virtual-time.ts) drive it. */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function* tickStream(o: RunOptions, signal: AbortSignal): AsyncGenerator<number> {
  const count = o.ticks ?? 200;
  for (let i = 0; i < count && !signal.aborted; i++) {
    if (i > 0 && !(await pause(o.intervalMs ?? 20, signal))) return;
    await o.beforeTick?.(i);
    yield Date.now();
  }
}

/** Runs a driver through the round engine for a bounded number of ticks, sensor id "s". */
export async function runDriver(driver: Driver, o: RunOptions = {}): Promise<RunResult> {
  const ac = new AbortController();
  const readings: Reading[] = [];
  const faults: SensorError[] = [];
  const gen = sensorReadings(driver, {
    sensor: 's',
    ticks: tickStream(o, ac.signal),
    timeoutMs: o.timeoutMs ?? 2000,
    signal: ac.signal,
    backoffMinMs: o.backoffMinMs ?? 0,
    backoffMaxMs: o.backoffMaxMs ?? 0,
    reopenAfter: o.reopenAfter ?? 3,
    onFault: (e) => faults.push(e),
  });
  try {
    for await (const r of gen) {
      readings.push(r);
      await o.onReading?.(r, readings, faults);
      if (o.until?.(readings, faults)) break;
    }
  } finally {
    ac.abort();
  }
  return {
    readings,
    faults,
    ok: readings.filter((r) => r.status === ReadingStatus.Ok),
    failed: readings.filter((r) => r.status === ReadingStatus.Fault),
  };
}
