/**
 * Config `driver` name → driver, and the seams drivers talk through. Hardware and the
 * simulator differ only in the openers handed to Seams; the drivers are the same code.
 */
import type { Logger } from '../agent/ops/logger.js';
import type { SensorConfig } from '../agent/config/schema.js';
import type { Driver, I2CBus } from './types.js';
import { SharedI2CBus, openI2CBus } from './i2c/shared-bus.js';
import { createTmp102 } from './i2c/tmp102.js';
import { createMcp9808 } from './i2c/mcp9808.js';
import { createLm75 } from './i2c/lm75.js';
import { createSht3x } from './i2c/sht3x.js';
import { createBme280 } from './i2c/bme280.js';
import { createSi7021 } from './i2c/si7021.js';
import { SerialLines, type SerialBinding } from './serial/serial-lines.js';
import { createModbusRtu } from './serial/modbus-rtu.js';
import { createAsciiLine } from './serial/ascii-line.js';
import { createDs18b20 } from './onewire/ds18b20.js';
import { ModbusTcpPool } from './network/modbus-tcp-pool.js';
import { createModbusTcp } from './network/modbus-tcp.js';
import { createHttpJson } from './network/http-json.js';
import { KeepAliveHttpClient, type HttpJsonClient } from './network/http-client.js';

export interface SeamOpeners {
  openI2C(busNumber: number): Promise<I2CBus>;
  serialBinding: SerialBinding;
  /** Replaces every DS18B20's w1Root (the simulator's fake sysfs tree). */
  w1Root?: string;
  http?: HttpJsonClient;
}

/** The shared handles: one SharedI2CBus per bus, one SerialLine per port, one TCP pool. */
export class Seams {
  private readonly buses = new Map<number, SharedI2CBus>();
  readonly serial: SerialLines;
  readonly modbusTcp: ModbusTcpPool;
  readonly http: HttpJsonClient & { destroy?(): void };

  constructor(
    readonly openers: SeamOpeners,
    logger: Logger,
  ) {
    this.serial = new SerialLines(openers.serialBinding, logger);
    this.modbusTcp = new ModbusTcpPool({ logger });
    this.http = openers.http ?? new KeepAliveHttpClient();
  }

  i2c(busNumber: number): SharedI2CBus {
    let bus = this.buses.get(busNumber);
    if (!bus) this.buses.set(busNumber, (bus = new SharedI2CBus(busNumber, this.openers.openI2C)));
    return bus;
  }

  async close(): Promise<void> {
    await Promise.allSettled([
      ...[...this.buses.values()].map((b) => b.close()),
      this.serial.closeAll(),
      this.modbusTcp.close(),
    ]);
    // Keep-alive sockets would otherwise hold the event loop open after a stop.
    this.http.destroy?.();
  }
}

export async function hardwareSeams(logger: Logger): Promise<Seams> {
  // Loaded lazily: the native serial binding is only needed on a gateway.
  const { autoDetect } = await import('@serialport/bindings-cpp');
  return new Seams({ openI2C: openI2CBus, serialBinding: autoDetect() }, logger);
}

export function createDriver(s: SensorConfig, seams: Seams): Driver {
  switch (s.driver) {
    case 'tmp102':
      return createTmp102(s, seams.i2c(s.bus));
    case 'mcp9808':
      return createMcp9808(s, seams.i2c(s.bus));
    case 'lm75':
      return createLm75(s, seams.i2c(s.bus));
    case 'sht3x':
      return createSht3x(s, seams.i2c(s.bus));
    case 'bme280':
      return createBme280(s, seams.i2c(s.bus));
    case 'si7021':
      return createSi7021(s, seams.i2c(s.bus));
    case 'modbus-rtu':
      return createModbusRtu(s, seams.serial);
    case 'ascii-line':
      return createAsciiLine(s, seams.serial);
    case 'ds18b20':
      return createDs18b20(seams.openers.w1Root ? { ...s, w1Root: seams.openers.w1Root } : s);
    case 'modbus-tcp':
      return createModbusTcp(s, seams.modbusTcp);
    case 'http-json':
      return createHttpJson(s, seams.http);
  }
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
