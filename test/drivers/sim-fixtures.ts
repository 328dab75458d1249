/**
 * A simulator fixture for every driver in drivers/registry.ts: its device modelled at the
 * register / frame / sysfs / socket level, the config entry that reads it, how to hang it and
 * which faults it can show. test/drivers/conformance.test.ts runs the conformance suite on each;
 * a descriptor without a fixture here fails that test.
 */
import type { DriverName } from '../../drivers/registry.js';
import type { I2CBus } from '../../drivers/types.js';
import { SimulatedBme280 } from '../../simulator/i2c/chips/bme280.js';
import { SimulatedLm75 } from '../../simulator/i2c/chips/lm75.js';
import { SimulatedMcp9808 } from '../../simulator/i2c/chips/mcp9808.js';
import { SimulatedSht3x } from '../../simulator/i2c/chips/sht3x.js';
import { SimulatedSi7021 } from '../../simulator/i2c/chips/si7021.js';
import { SimulatedTmp102 } from '../../simulator/i2c/chips/tmp102.js';
import { i2cErrnoError, SimulatedI2CBus } from '../../simulator/i2c/bus.js';
import type { SimulatedI2CDevice } from '../../simulator/i2c/device.js';
import { startHttpSensorServer } from '../../simulator/network/http-server.js';
import { startModbusTcpSensorServer } from '../../simulator/network/modbus-tcp-server.js';
import { SimulatedW1Tree } from '../../simulator/onewire/w1-tree.js';
import { AsciiLineDevice } from '../../simulator/serial/ascii-device.js';
import { SimulatedSerialBinding } from '../../simulator/serial/binding.js';
import { ModbusRtuBusDevice, xyMd02Slave } from '../../simulator/serial/modbus-rtu-bus.js';
import { Signal } from '../../simulator/signal.js';
import type { ConformanceSubject, DeviceFault } from '../helpers/driver-conformance.js';
import { rig, type SensorEntry } from '../helpers/run-driver.js';

type Fixture = Omit<ConformanceSubject, 'kind'>;

const MISSING = 'missing device';
const CRC = 'CRC error';
const TIMEOUT = 'timeout';
const BUS_ERROR = 'bus I/O error';

/**
 * The simulated bus behind an adapter that can hold the clock: while held, every transfer
 * waits until released, then fails with ETIMEDOUT as the Pi's adapter gives up. A held bus
 * never ends a round by itself, so only an abort can.
 */
function holdableBus(bus: SimulatedI2CBus): { bus: I2CBus; hold(): void; release(): void } {
  let held: { promise: Promise<never>; release(): void } | undefined;
  const proxy = new Proxy(bus, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown =>
        held ? held.promise : (value as (...a: unknown[]) => unknown).apply(target, args);
    },
  });
  return {
    bus: proxy,
    hold: () => {
      let release = () => {};
      const promise = new Promise<never>((_, reject) => {
        release = () => reject(i2cErrnoError('ETIMEDOUT', 'i2c transfer'));
      });
      promise.catch(() => undefined);
      held = { promise, release };
    },
    release: () => {
      held?.release();
      held = undefined;
    },
  };
}

/** A chip on a simulated I²C bus; chips without a CRC show a bus I/O error instead. */
function i2cFixture(entry: SensorEntry, address: number, chip: () => SimulatedI2CDevice): Fixture {
  const hasCrc = entry.driver === 'sht3x' || entry.driver === 'si7021';
  const faults: DeviceFault[] = [
    { name: MISSING, codes: ['NACK'] },
    hasCrc ? { name: CRC, codes: ['CRC'] } : { name: BUS_ERROR, codes: ['EIO'] },
    { name: TIMEOUT, codes: ['TIMEOUT'] },
  ];
  return {
    faults,
    start: async ({ hangMs }) => {
      const sim = new SimulatedI2CBus({ hangMs });
      const device = sim.attach(address, chip());
      const adapter = holdableBus(sim);
      const r = rig({ i2c: async () => adapter.bus });
      return {
        driver: r.driver(entry),
        hang: adapter.hold,
        release: adapter.release,
        inject: (name) => {
          if (name === MISSING) device.unplug();
          else if (name === CRC) device.inject('crc');
          else if (name === BUS_ERROR) device.inject('eio');
          else device.inject('timeout');
        },
        close: () => r.close(),
      };
    },
  };
}

const signal = (setPoint: number, seed: number) => new Signal({ setPoint, noise: 0.05, seed });

const RS485 = '/dev/ttyCONF-rs485';
const ASCII = '/dev/ttyCONF-ascii';
const W1_ID = '28-0316a2795aff';

export const SIM_FIXTURES: Partial<Record<DriverName, Fixture>> = {
  tmp102: i2cFixture(
    { id: 't', driver: 'tmp102', address: 0x48 },
    0x48,
    () => new SimulatedTmp102(),
  ),
  mcp9808: i2cFixture(
    { id: 'm', driver: 'mcp9808', address: 0x18 },
    0x18,
    () => new SimulatedMcp9808(),
  ),
  lm75: i2cFixture({ id: 'l', driver: 'lm75', address: 0x49 }, 0x49, () => new SimulatedLm75()),
  sht3x: i2cFixture({ id: 's', driver: 'sht3x', address: 0x44 }, 0x44, () => new SimulatedSht3x()),
  bme280: i2cFixture(
    {
      id: 'b',
      driver: 'bme280',
      address: 0x76,
      quantities: ['temperature', 'pressure', 'humidity'],
    },
    0x76,
    () => new SimulatedBme280(),
  ),
  si7021: i2cFixture(
    { id: 'h', driver: 'si7021', address: 0x40, quantities: ['temperature', 'humidity'] },
    0x40,
    () => new SimulatedSi7021(),
  ),

  'modbus-rtu': {
    faults: [
      { name: MISSING, codes: ['DISCONNECTED'] },
      { name: CRC, codes: ['CRC'] },
      { name: TIMEOUT, codes: ['TIMEOUT'] },
    ],
    start: async () => {
      const slave = xyMd02Slave(1, { temperature: signal(21, 1), humidity: signal(50, 2) });
      const binding = new SimulatedSerialBinding().add(RS485, new ModbusRtuBusDevice([slave]));
      const r = rig({ serial: binding });
      return {
        driver: r.driver({ id: 'r', driver: 'modbus-rtu', port: RS485, unitId: 1 }),
        hang: () => slave.inject('timeout', 1000),
        // The driver's own response timeout (1 s) ends a round with no reply.
        hangTimesOut: true,
        inject: (name) => {
          if (name === MISSING) binding.unplug(RS485);
          else if (name === CRC) slave.inject('crc', 1000);
          else slave.inject('timeout', 1000);
        },
        close: () => r.close(),
      };
    },
  },

  'ascii-line': {
    faults: [
      // A streaming device is only missed when its next line is due: the round's timeout.
      { name: MISSING, codes: ['DISCONNECTED', 'TIMEOUT'] },
      { name: 'unparsable line', codes: ['PROTOCOL'] },
      { name: 'device error line', codes: ['DEVICE'] },
    ],
    start: async () => {
      const device = new AsciiLineDevice({ signal: signal(40, 3), periodMs: 20 });
      const binding = new SimulatedSerialBinding().add(ASCII, device);
      const r = rig({ serial: binding });
      return {
        driver: r.driver({ id: 'a', driver: 'ascii-line', port: ASCII }),
        // A silent thermometer: its line never comes.
        hang: () => device.detach(),
        inject: (name) => {
          if (name === MISSING) binding.unplug(ASCII);
          else device.inject(name === 'unparsable line' ? 'garbage' : 'err', 1000);
        },
        close: () => r.close(),
      };
    },
  },

  ds18b20: {
    faults: [
      { name: MISSING, codes: ['DISCONNECTED'] },
      { name: CRC, codes: ['CRC'] },
    ],
    start: async () => {
      const tree = await SimulatedW1Tree.create({
        devices: [{ id: W1_ID, signal: signal(18, 4), powerOn: false }],
        updateMs: 20,
      });
      const device = tree.device(W1_ID);
      const r = rig({ w1Root: tree.root });
      return {
        driver: r.driver({ id: 'w', driver: 'ds18b20', deviceId: W1_ID }),
        inject: async (name) => {
          if (name === MISSING) return device.unplug();
          device.inject('crc', 1000);
          await device.refresh();
        },
        close: async () => {
          await r.close();
          await tree.close();
        },
      };
    },
  },

  'modbus-tcp': {
    faults: [
      { name: MISSING, codes: ['DISCONNECTED'] },
      { name: 'exception reply', codes: ['DEVICE', 'PROTOCOL'] },
      { name: 'malformed reply', codes: ['PROTOCOL'] },
    ],
    start: async () => {
      const server = await startModbusTcpSensorServer({ delayMs: 2, units: 1, sensorsPerUnit: 1 });
      const s = server.sensor(0);
      const device = server.device(s.unitId);
      const r = rig();
      const entry: SensorEntry = {
        id: 'n',
        driver: 'modbus-tcp',
        host: s.host,
        port: s.port,
        unitId: s.unitId,
        registers: s.registers,
      };
      return {
        driver: r.driver(entry),
        hang: () => device.inject('timeout'),
        inject: async (name) => {
          if (name === MISSING) return server.close();
          device.inject(name === 'exception reply' ? 'exception' : 'malformed');
        },
        close: async () => {
          await r.close();
          await server.close().catch(() => undefined);
        },
      };
    },
  },

  'http-json': {
    faults: [
      { name: MISSING, codes: ['DISCONNECTED'] },
      { name: 'HTTP 500', codes: ['DEVICE', 'PROTOCOL'] },
      { name: 'malformed body', codes: ['PROTOCOL'] },
    ],
    start: async () => {
      const server = await startHttpSensorServer({ delayMs: 2, sensors: 1 });
      const r = rig();
      return {
        driver: r.driver({
          id: 'j',
          driver: 'http-json',
          url: server.url(0),
          path: 'data.temperature',
        }),
        hang: () => server.inject(0, 'timeout'),
        inject: async (name) => {
          if (name === MISSING) return server.close();
          server.inject(0, name === 'HTTP 500' ? 'http-500' : 'malformed');
        },
        close: async () => {
          await r.close();
          await server.close().catch(() => undefined);
        },
      };
    },
  },
};
