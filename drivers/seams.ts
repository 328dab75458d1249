/**
 * The seams drivers talk through. Hardware and the simulator differ only in the openers
 * handed to Seams; the drivers are the same code.
 */
import type { I2CBus, Logger } from './types.js';
import { SharedI2CBus, openI2CBus } from './i2c/shared-bus.js';
import { SerialLines, type SerialBinding } from './serial/serial-lines.js';
import { ModbusTcpPool } from './network/modbus-tcp-pool.js';
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

/**
 * The platform's serial binding, loaded on the first open or list: a native addon that only
 * serial sensors need, so a gateway without one never maps it (docs/benchmarks/footprint.md).
 */
export function lazySerialBinding(): SerialBinding {
  let loaded: Promise<SerialBinding> | undefined;
  const binding = () =>
    (loaded ??= import('@serialport/bindings-cpp').then(
      ({ autoDetect }) => autoDetect() as SerialBinding,
    ));
  return {
    list: async () => (await binding()).list(),
    open: async (options) => (await binding()).open(options),
  };
}

export function hardwareSeams(logger: Logger): Promise<Seams> {
  return Promise.resolve(
    new Seams({ openI2C: openI2CBus, serialBinding: lazySerialBinding() }, logger),
  );
}
