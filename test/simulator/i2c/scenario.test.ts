import { describe, expect, it } from 'vitest';
import { sensorSchema, type SensorConfig } from '../../../drivers/registry.js';
import { createI2CSimulation } from '../../../simulator/i2c/scenario.js';
import { SimulatedI2CBus } from '../../../simulator/i2c/bus.js';
import { SimulatedBme280 } from '../../../simulator/i2c/chips/bme280.js';

describe('createI2CSimulation', () => {
  it('default: one valid sensor entry per chip of the default bus, on the given bus number', async () => {
    const sim = createI2CSimulation({ busNumber: 3 });
    const sensors = sim.sensors.map((s) => sensorSchema.parse(s));
    expect(sensors.map((s) => s.driver).sort()).toEqual([
      'bme280',
      'lm75',
      'mcp9808',
      'sht3x',
      'si7021',
      'tmp102',
    ]);
    const bus = await sim.open(3);
    const addresses = await bus.scan();
    for (const s of sensors) {
      expect('bus' in s && s.bus).toBe(3);
      expect(addresses).toContain('address' in s ? s.address : -1);
    }
  });

  it('configured: a chip of the configured type at each configured address, per bus', async () => {
    const configured: SensorConfig[] = [
      sensorSchema.parse({ id: 'a', driver: 'bme280', bus: 0, address: 0x77 }),
      sensorSchema.parse({ id: 'b', driver: 'lm75', bus: 1, address: 0x4c, resolutionBits: 9 }),
      sensorSchema.parse({ id: 'c', driver: 'http-json', url: 'http://127.0.0.1:1/x', path: 't' }),
    ];
    const sim = createI2CSimulation({ forSensors: configured });
    expect(sim.sensors).toEqual([]);
    expect(await (await sim.open(0)).scan()).toEqual([0x77]);
    expect(await (await sim.open(1)).scan()).toEqual([0x4c]);
    expect(sim.buses.get(0)?.device(0x77)).toBeInstanceOf(SimulatedBme280);
    expect(sim.buses.get(1)?.device(0x4c)?.chip).toBe('LM75');
    // A bus nobody configured is an empty bus, not an error.
    const other = await sim.open(7);
    expect(other).toBeInstanceOf(SimulatedI2CBus);
    expect(await other.scan()).toEqual([]);
  });
});

describe('power-on fault', () => {
  it('resets the registers once, at the scheduled time', async () => {
    const clock = { t: 0 };
    const bus = new SimulatedI2CBus({ now: () => clock.t });
    const chip = bus.attach(0x76, new SimulatedBme280());
    await bus.writeByte(0x76, 0xf2, 0x01);
    chip.inject('power-on', { afterMs: 100 });
    clock.t = 50;
    expect(await bus.readByte(0x76, 0xf2)).toBe(0x01);
    clock.t = 120;
    expect(await bus.readByte(0x76, 0xf2)).toBe(0x00);
    await bus.writeByte(0x76, 0xf2, 0x01);
    clock.t = 200;
    expect(await bus.readByte(0x76, 0xf2)).toBe(0x01);
    expect(chip.counters.powerOns).toBe(2);
  });
});
