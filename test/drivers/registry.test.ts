import { describe, expect, it } from 'vitest';
import { DRIVER_NAMES, DRIVERS, sensorLocation, sensorSchema } from '../../drivers/registry.js';

describe('the driver list', () => {
  it('names each driver once, by the `driver` value its schema accepts', () => {
    expect(new Set(DRIVER_NAMES).size).toBe(DRIVERS.length);
    for (const d of DRIVERS) expect(d.schema.shape.driver.value).toBe(d.name);
  });

  it('gives every I²C chip a default address within its own range, and fills it in', () => {
    for (const d of DRIVERS) {
      if (!d.i2c) continue;
      const { minAddress, maxAddress, defaultAddress } = d.i2c;
      expect(defaultAddress).toBeGreaterThanOrEqual(minAddress);
      expect(defaultAddress).toBeLessThanOrEqual(maxAddress);
      const parsed = d.schema.parse({ id: 's', driver: d.name }) as { address: number };
      expect(parsed.address).toBe(defaultAddress);
    }
  });

  it('places a sensor from its raw entry: I²C by bus and default address, others by their own key', () => {
    expect(sensorLocation({ driver: 'mcp9808' })).toEqual({
      key: 'I²C bus 1 address 0x18',
      field: 'address',
    });
    expect(sensorLocation({ driver: 'ds18b20', deviceId: '28-0316a2795aff' })).toEqual({
      key: '1-Wire device 28-0316a2795aff',
      field: 'deviceId',
    });
    expect(sensorLocation({ driver: 'http-json', url: 'http://127.0.0.1/' })).toBeUndefined();
    expect(sensorLocation({ driver: 'no-such-chip' })).toBeUndefined();
  });

  it('the config union takes an entry of every listed driver', () => {
    expect(sensorSchema.options.map((o) => o.shape.driver.value)).toEqual([...DRIVER_NAMES]);
  });
});
