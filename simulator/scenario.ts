/**
 * Scenarios for `edge-agent simulate`: the simulated devices, the seams that reach them and
 * the sensor entries that read them. The agent runs its real drivers against these.
 *
 * - default: one sensor of every driver type (I²C bus 1 with all six chips, an RS-485 line
 *   with two XY-MD02, an ASCII thermometer, DS18B20s in a fake sysfs tree, a Modbus TCP
 *   gateway and an HTTP sensor on loopback), so a newcomer sees them all;
 * - network fleet: N Modbus TCP sensors of a given latency (the concurrency demo);
 * - configured: the devices a user's config names, at the addresses it names.
 */
import type { Logger } from '../agent/ops/logger.js';
import type { ConfigInput } from '../agent/config/schema.js';
import type { SensorConfig } from '../drivers/registry.js';
import { Seams } from '../drivers/seams.js';
import { simulateNetworkDevices } from './network/configured-devices.js';
import { startHttpSensorServer } from './network/http-server.js';
import { startModbusTcpSensorServer } from './network/modbus-tcp-server.js';
import { createSerialSimulation } from './serial/scenario.js';
import { SimulatedSerialBinding } from './serial/binding.js';
import { ModbusRtuBusDevice, xyMd02Slave } from './serial/modbus-rtu-bus.js';
import { AsciiLineDevice } from './serial/ascii-device.js';
import type { SimulatedI2CBus } from './i2c/bus.js';
import { createI2CSimulation } from './i2c/scenario.js';
import { SimulatedW1Tree } from './onewire/w1-tree.js';
import { Signal } from './signal.js';

type SensorInput = NonNullable<ConfigInput['sensors']>[number];

export interface Simulation {
  /** Sensor entries for the config. */
  sensors: SensorInput[];
  seams: Seams;
  /** Overrides for the config's sampling / buffer sections. */
  sampling?: NonNullable<ConfigInput['sampling']>;
  buffer?: NonNullable<ConfigInput['buffer']>;
  describe(): string;
  close(): Promise<void>;
  /** The simulated I²C buses by number, for their transfer logs (configured scenario). */
  i2cBuses?: ReadonlyMap<number, SimulatedI2CBus>;
}

/**
 * The simulated ASCII thermometers print twice per default sampling interval. The driver
 * hands each round the newest line or waits for the next one; a device printing exactly as
 * often as it is sampled, from the moment its port opened, makes every round wait about one
 * interval, so its windows closed that much after the others' and came in a batch of their
 * own (docs/payload.md).
 */
const ASCII_PERIOD_MS = 500;

/** Unused seams still need a binding; this one has no ports. */
const noSerial = () => new SimulatedSerialBinding();

export async function startDefaultScenario(logger: Logger): Promise<Simulation> {
  const i2c = createI2CSimulation({ busNumber: 1 });
  const serial = createSerialSimulation({ asciiPeriodMs: ASCII_PERIOD_MS });
  const onewire = await oneWireFor([
    { id: 'ds18b20-tank-top', driver: 'ds18b20', deviceId: '28-0316a2795aff' },
    { id: 'ds18b20-tank-bottom', driver: 'ds18b20', deviceId: '28-0316a2795b01' },
  ]);
  const modbus = await startModbusTcpSensorServer({ delayMs: 15, units: 1, sensorsPerUnit: 2 });
  const http = await startHttpSensorServer({ delayMs: 25, sensors: 1 });
  const mb = modbus.sensor(0);
  const sensors: SensorInput[] = [
    ...i2c.sensors,
    ...serial.sensors,
    ...onewire.sensors,
    {
      id: 'line-modbus-tcp',
      driver: 'modbus-tcp',
      host: mb.host,
      port: mb.port,
      unitId: mb.unitId,
      registers: mb.registers,
    },
    { id: 'roof-http', driver: 'http-json', url: http.url(0), path: 'data.temperature' },
  ];
  const seams = new Seams(
    { openI2C: i2c.open, serialBinding: serial.binding, w1Root: onewire.root },
    logger,
  );
  return {
    sensors,
    seams,
    describe: () =>
      `I²C bus 1: ${i2c.sensors.length} chips; RS-485 + ASCII serial: ${serial.sensors.length}; ` +
      `1-Wire: ${onewire.sensors.length}; Modbus TCP 127.0.0.1:${modbus.port}; HTTP 127.0.0.1:${http.port}`,
    close: async () => {
      await Promise.allSettled([modbus.close(), http.close(), onewire.close()]);
    },
  };
}

export interface NetworkFleetOptions {
  count: number;
  latencyMs: number;
  intervalMs: number;
  logger: Logger;
}

/** N Modbus TCP sensors behind simulated gateways (100 per unit id), each answering after latencyMs. */
export async function startNetworkFleet(o: NetworkFleetOptions): Promise<Simulation> {
  const perUnit = 100;
  const server = await startModbusTcpSensorServer({
    delayMs: o.latencyMs,
    units: Math.max(1, Math.ceil(o.count / perUnit)),
    sensorsPerUnit: perUnit,
  });
  const sensors: SensorInput[] = [];
  for (let i = 0; i < o.count; i++) {
    const s = server.sensor(i);
    sensors.push({
      id: `net-${i}`,
      driver: 'modbus-tcp',
      host: s.host,
      port: s.port,
      unitId: s.unitId,
      // Temperature only: one register per request keeps the demo about latency.
      registers: s.registers.filter((r) => r.quantity === 'temperature'),
      intervalMs: o.intervalMs,
    });
  }
  const seams = new Seams(
    {
      openI2C: () => Promise.reject(new Error('no I²C in the network fleet')),
      serialBinding: noSerial(),
    },
    o.logger,
  );
  return {
    sensors,
    seams,
    // Spread first samples over one interval so N sensors do not fire in the same millisecond.
    sampling: { startSpreadMs: o.intervalMs, timeoutMs: Math.max(1000, o.latencyMs * 5) },
    buffer: { capacity: 1 << 18 },
    describe: () =>
      `${o.count} Modbus TCP sensors on 127.0.0.1:${server.port}, ${o.latencyMs} ms latency, every ${o.intervalMs} ms`,
    close: () => server.close(),
  };
}

/**
 * A user's config on simulated hardware: every I²C chip, serial device and DS18B20 it names
 * is created at the address / unit / id it names, and every Modbus TCP and HTTP device is
 * served on 127.0.0.1 in place of the host it names (network/configured-devices.ts).
 */
export interface ConfiguredSimulationOptions {
  /**
   * The fake w1 tree's mode: 'files' (default; reads return at once) or 'fifo' (a read
   * blocks for the conversion time and holds a thread-pool thread, as the kernel's does).
   */
  w1Mode?: 'files' | 'fifo';
}

export async function simulateConfiguredSensors(
  sensors: SensorConfig[],
  logger: Logger,
  options: ConfiguredSimulationOptions = {},
): Promise<Simulation> {
  const i2c = createI2CSimulation({ forSensors: sensors });
  const network = await simulateNetworkDevices(sensors);
  let onewire: Awaited<ReturnType<typeof oneWireFor>>;
  try {
    onewire = await oneWireFor(sensors, options.w1Mode);
  } catch (err) {
    await network.close();
    throw err;
  }
  const seams = new Seams(
    { openI2C: i2c.open, serialBinding: serialDevicesFor(sensors), w1Root: onewire.root },
    logger,
  );
  return {
    sensors: network.sensors,
    seams,
    describe: () =>
      network.replaced.length === 0
        ? 'devices created from the configuration'
        : `devices created from the configuration; network devices simulated on loopback: ${network.replaced.join(', ')}`,
    i2cBuses: i2c.buses,
    close: async () => {
      await Promise.allSettled([onewire.close(), network.close()]);
    },
  };
}

/** A fake w1 sysfs tree holding the DS18B20s these sensors name. */
async function oneWireFor(sensors: readonly SensorInput[], mode?: 'files' | 'fifo') {
  const ds = sensors.flatMap((s) => (s.driver === 'ds18b20' ? [s] : []));
  const tree = await SimulatedW1Tree.create({
    mode,
    devices: ds.map((s, i) => ({
      id: s.deviceId,
      signal: new Signal({ setPoint: 18 + 4 * i, noise: 0.03, seed: 100 + i }),
    })),
  });
  return { root: tree.root, sensors: ds, close: () => tree.close() };
}

/**
 * XY-MD02-style slaves at every unit id, and an ASCII thermometer on every port, that the
 * configured serial sensors name (registers 0x0001/0x0002 as the XY-MD02 has them).
 */
function serialDevicesFor(sensors: readonly SensorConfig[]): SimulatedSerialBinding {
  const binding = new SimulatedSerialBinding();
  const units = new Map<string, number[]>();
  let seed = 200;
  for (const s of sensors) {
    if (s.driver === 'modbus-rtu') units.set(s.port, [...(units.get(s.port) ?? []), s.unitId]);
    if (s.driver === 'ascii-line') {
      binding.add(
        s.port,
        new AsciiLineDevice({
          signal: new Signal({ setPoint: 40, noise: 0.1, seed: seed++ }),
          periodMs: ASCII_PERIOD_MS,
        }),
      );
    }
  }
  for (const [port, ids] of units) {
    const slaves = ids.map((id) =>
      xyMd02Slave(id, {
        temperature: new Signal({ setPoint: 20 + id, noise: 0.05, seed: seed++ }),
        humidity: new Signal({ setPoint: 50, noise: 0.3, seed: seed++ }),
      }),
    );
    binding.add(port, new ModbusRtuBusDevice(slaves));
  }
  return binding;
}
