/**
 * The serial part of the default `edge-agent simulate` scenario: one RS-485 line with two
 * XY-MD02 modules (units 1 and 2, 9600 8N1) and one ASCII-line thermometer, all behind one
 * SimulatedSerialBinding, plus the sensor configs that read them.
 */
import { sensorSchema, type SensorConfig } from '../../drivers/registry.js';
import { Signal, seededRandom } from '../signal.js';
import { AsciiLineDevice } from './ascii-device.js';
import { SimulatedSerialBinding } from './binding.js';
import { ModbusRtuBusDevice, xyMd02Slave, type SimulatedModbusSlave } from './modbus-rtu-bus.js';

export const SIM_RS485_PATH = '/dev/ttySIM-rs485';
export const SIM_ASCII_PATH = '/dev/ttySIM-ascii';

export interface SerialSimulation {
  binding: SimulatedSerialBinding;
  bus: ModbusRtuBusDevice;
  /** Unit 1 and unit 2. */
  slaves: SimulatedModbusSlave[];
  ascii: AsciiLineDevice;
  /** Sensor entries for the config, already validated by the schema. */
  sensors: SensorConfig[];
  /** Stop the fault schedule (if any). */
  close(): void;
}

export interface SerialSimulationOptions {
  seed?: number;
  /** How often the ASCII thermometer prints; default 1000 ms. */
  asciiPeriodMs?: number;
  /** Prefix of the sensor ids; default "". */
  idPrefix?: string;
  /**
   * Inject one random fault this often (ms): a corrupted CRC, a missing reply or an exception
   * on a random XY-MD02, or a garbage / Err line from the ASCII thermometer. Default: never.
   */
  faultEveryMs?: number;
}

export function createSerialSimulation(o: SerialSimulationOptions = {}): SerialSimulation {
  const seed = o.seed ?? 1;
  const p = o.idPrefix ?? '';
  const slaves = [
    xyMd02Slave(1, {
      temperature: new Signal({
        setPoint: 21.5,
        noise: 0.05,
        seed: seed + 1,
        stepEveryMs: 300_000,
      }),
      humidity: new Signal({ setPoint: 45, noise: 0.3, driftAmplitude: 3, seed: seed + 2 }),
    }),
    xyMd02Slave(2, {
      temperature: new Signal({ setPoint: 4.2, noise: 0.05, seed: seed + 3 }),
      humidity: new Signal({ setPoint: 80, noise: 0.5, driftAmplitude: 2, seed: seed + 4 }),
    }),
  ];
  const bus = new ModbusRtuBusDevice(slaves);
  const ascii = new AsciiLineDevice({
    signal: new Signal({ setPoint: 55, noise: 0.1, driftAmplitude: 2, seed: seed + 5 }),
    periodMs: o.asciiPeriodMs ?? 1000,
    seed: seed + 6,
  });
  const binding = new SimulatedSerialBinding().add(SIM_RS485_PATH, bus).add(SIM_ASCII_PATH, ascii);
  const sensors = [
    { id: `${p}room-xymd02`, driver: 'modbus-rtu', port: SIM_RS485_PATH, unitId: 1 },
    { id: `${p}cold-store-xymd02`, driver: 'modbus-rtu', port: SIM_RS485_PATH, unitId: 2 },
    { id: `${p}boiler-ascii`, driver: 'ascii-line', port: SIM_ASCII_PATH },
  ].map((s) => sensorSchema.parse(s));
  let timer: NodeJS.Timeout | undefined;
  if (o.faultEveryMs && o.faultEveryMs > 0) {
    const rand = seededRandom(seed + 7);
    timer = setInterval(() => {
      const pick = Math.floor(rand() * 5);
      const slave = slaves[Math.floor(rand() * slaves.length)];
      if (pick === 0) slave.inject('crc');
      else if (pick === 1) slave.inject('timeout');
      else if (pick === 2) slave.inject('exception', 1, 0x06);
      else ascii.inject(pick === 3 ? 'garbage' : 'err');
    }, o.faultEveryMs);
    timer.unref();
  }
  return { binding, bus, slaves, ascii, sensors, close: () => clearInterval(timer) };
}
