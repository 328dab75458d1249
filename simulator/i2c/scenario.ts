/**
 * I²C part of the `edge-agent simulate` scenarios: simulated buses and the sensor entries
 * that read them. Default: bus 1 with one chip of every type. Configured: a chip of the
 * configured type at every I²C address the user's config names.
 */
import type { ConfigInput } from '../../agent/config/schema.js';
import type { SensorConfig } from '../../drivers/registry.js';
import type { I2CBus } from '../../drivers/types.js';
import { SimulatedI2CBus } from './bus.js';
import { SimulatedBme280 } from './chips/bme280.js';
import { SimulatedLm75 } from './chips/lm75.js';
import { SimulatedMcp9808 } from './chips/mcp9808.js';
import { SimulatedSht3x } from './chips/sht3x.js';
import { SimulatedSi7021 } from './chips/si7021.js';
import { SimulatedTmp102 } from './chips/tmp102.js';
import { createDefaultSimulatedI2CBus, defaultSimulatedI2CSensors } from './default-bus.js';
import type { SimulatedI2CDevice } from './device.js';

type SensorInput = NonNullable<ConfigInput['sensors']>[number];

export interface I2CSimulationOptions {
  /** Default scenario: the standard bus (every chip) as this bus number (default 1). */
  busNumber?: number;
  /** Configured scenario: create the chips these sensors name instead. */
  forSensors?: readonly SensorConfig[];
}

export interface I2CSimulation {
  /** Sensor entries reading the simulated chips (empty for the configured scenario). */
  sensors: SensorInput[];
  /** The simulated buses by number. */
  buses: Map<number, SimulatedI2CBus>;
  /** The SeamOpeners.openI2C of the simulation; an unknown bus number is an empty bus. */
  open(busNumber: number): Promise<I2CBus>;
}

/** A simulated chip for a configured I²C sensor, or undefined for other drivers. */
export function simulatedChipFor(s: SensorConfig, seed: number): SimulatedI2CDevice | undefined {
  switch (s.driver) {
    case 'tmp102':
      return new SimulatedTmp102({ seed });
    case 'lm75':
      return new SimulatedLm75({ seed, resolutionBits: s.resolutionBits });
    case 'mcp9808':
      return new SimulatedMcp9808({ seed });
    case 'sht3x':
      return new SimulatedSht3x({ seed });
    case 'bme280':
      return new SimulatedBme280({ seed });
    case 'si7021':
      return new SimulatedSi7021({ seed });
    default:
      return undefined;
  }
}

export function createI2CSimulation(options: I2CSimulationOptions = {}): I2CSimulation {
  const buses = new Map<number, SimulatedI2CBus>();
  let sensors: SensorInput[] = [];
  if (options.forSensors) {
    options.forSensors.forEach((s, i) => {
      const chip = simulatedChipFor(s, 100 + i);
      if (!chip || !('bus' in s)) return;
      let bus = buses.get(s.bus);
      if (!bus) buses.set(s.bus, (bus = new SimulatedI2CBus()));
      // Two sensors on one address are rejected by the config checks; keep the first.
      if (!bus.device(s.address)) bus.attach(s.address, chip);
    });
  } else {
    const busNumber = options.busNumber ?? 1;
    buses.set(busNumber, createDefaultSimulatedI2CBus().bus);
    sensors = defaultSimulatedI2CSensors(busNumber);
  }
  return {
    sensors,
    buses,
    open: async (busNumber) => {
      let bus = buses.get(busNumber);
      if (!bus) buses.set(busNumber, (bus = new SimulatedI2CBus()));
      return bus;
    },
  };
}
