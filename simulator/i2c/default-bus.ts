/**
 * The simulator's standard I²C bus: one chip of every supported type at its usual address,
 * used by `edge-agent scan --simulated` and the default `edge-agent simulate` scenario.
 */
import type { ConfigInput } from '../../agent/config/schema.js';
import { SimulatedI2CBus, type SimulatedI2CBusOptions } from './bus.js';
import { SimulatedBme280 } from './chips/bme280.js';
import { SimulatedLm75 } from './chips/lm75.js';
import { SimulatedMcp9808 } from './chips/mcp9808.js';
import { SimulatedSht3x } from './chips/sht3x.js';
import { SimulatedSi7021 } from './chips/si7021.js';
import { SimulatedTmp102 } from './chips/tmp102.js';

export interface DefaultSimulatedI2CBus {
  bus: SimulatedI2CBus;
  tmp102: SimulatedTmp102;
  lm75: SimulatedLm75;
  mcp9808: SimulatedMcp9808;
  sht3x: SimulatedSht3x;
  bme280: SimulatedBme280;
  si7021: SimulatedSi7021;
}

type SensorInput = NonNullable<ConfigInput['sensors']>[number];

/** Sensor entries (config input) matching the default bus, for the simulate scenario. */
export function defaultSimulatedI2CSensors(bus = 1): SensorInput[] {
  return [
    { id: 'i2c-tmp102', driver: 'tmp102', bus, address: 0x48 },
    { id: 'i2c-lm75', driver: 'lm75', bus, address: 0x49, resolutionBits: 11 },
    { id: 'i2c-mcp9808', driver: 'mcp9808', bus, address: 0x18 },
    { id: 'i2c-sht3x', driver: 'sht3x', bus, address: 0x44 },
    {
      id: 'i2c-bme280',
      driver: 'bme280',
      bus,
      address: 0x76,
      quantities: ['temperature', 'pressure', 'humidity'],
    },
    {
      id: 'i2c-si7021',
      driver: 'si7021',
      bus,
      address: 0x40,
      quantities: ['temperature', 'humidity'],
    },
  ];
}

export function createDefaultSimulatedI2CBus(
  options: SimulatedI2CBusOptions & { seed?: number } = {},
): DefaultSimulatedI2CBus {
  const seed = options.seed ?? 1;
  const bus = new SimulatedI2CBus(options);
  return {
    bus,
    tmp102: bus.attach(0x48, new SimulatedTmp102({ seed: seed + 10 })),
    lm75: bus.attach(0x49, new SimulatedLm75({ seed: seed + 20, resolutionBits: 11 })),
    mcp9808: bus.attach(0x18, new SimulatedMcp9808({ seed: seed + 30 })),
    sht3x: bus.attach(0x44, new SimulatedSht3x({ seed: seed + 40 })),
    bme280: bus.attach(0x76, new SimulatedBme280({ seed: seed + 50 })),
    si7021: bus.attach(0x40, new SimulatedSi7021({ seed: seed + 60 })),
  };
}
