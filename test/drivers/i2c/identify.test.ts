import { afterEach, describe, expect, it, vi } from 'vitest';
import { scanCommand } from '../../../agent/commands/scan.js';
import { formatIdentified, identifyI2CDevices } from '../../../drivers/i2c/identify.js';
import { SimulatedI2CBus } from '../../../simulator/i2c/bus.js';
import { SimulatedBme280 } from '../../../simulator/i2c/chips/bme280.js';
import { SimulatedLm75 } from '../../../simulator/i2c/chips/lm75.js';
import { SimulatedSi7021 } from '../../../simulator/i2c/chips/si7021.js';
import { SimulatedTmp102 } from '../../../simulator/i2c/chips/tmp102.js';
import { createDefaultSimulatedI2CBus } from '../../../simulator/i2c/default-bus.js';

describe('identifyI2CDevices', () => {
  it('names every chip of the default simulated bus by its ID registers or probes', async () => {
    const { bus } = createDefaultSimulatedI2CBus();
    const lines = (await identifyI2CDevices(bus)).map(formatIdentified);
    expect(lines).toEqual([
      expect.stringMatching(/^0x18: MCP9808 \(manufacturer 0x0054, device 0x04/),
      expect.stringMatching(/^0x40: Si7021 \(electronic id 0x15\)/),
      expect.stringMatching(/^0x44: SHT3x \(status register CRC ok\)/),
      expect.stringMatching(/^0x48: TMP102 \(likely/),
      '0x49: TMP102 or LM75',
      expect.stringMatching(/^0x76: BME280 \(chip id 0x60\)/),
    ]);
  });

  it('tells a BMP280 from a BME280, an HTU21D from an Si7021, and LM75-only addresses', async () => {
    const bus = new SimulatedI2CBus();
    bus.attach(0x77, new SimulatedBme280({ chipId: 0x58 }));
    bus.attach(0x40, new SimulatedSi7021({ deviceId: undefined }));
    bus.attach(0x4e, new SimulatedLm75());
    bus.attach(0x4b, new SimulatedTmp102());
    const found = await identifyI2CDevices(bus);
    expect(found.map(formatIdentified)).toEqual([
      '0x40: HTU21D (user register 0x02 family)',
      expect.stringMatching(/^0x4b: TMP102/),
      '0x4e: LM75 (by address)',
      expect.stringMatching(/^0x77: BMP280/),
    ]);
  });

  it('an unplugged chip does not answer the scan', async () => {
    const sim = createDefaultSimulatedI2CBus();
    sim.sht3x.unplug();
    const found = await identifyI2CDevices(sim.bus);
    expect(found.map((d) => d.address)).not.toContain(0x44);
    expect(found).toHaveLength(5);
  });
});

describe('edge-agent scan', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const capture = () => {
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
    return { out, err };
  };

  it('--simulated lists the default bus', async () => {
    const { out } = capture();
    expect(await scanCommand({ simulated: true })).toBe(0);
    const text = out.join('');
    expect(text).toMatch(/6 device\(s\)/);
    expect(text).toMatch(/0x76: BME280/);
  });

  it('a bus that cannot be opened is a clear error, exit 1', async () => {
    const { err } = capture();
    expect(await scanCommand({ bus: '250' })).toBe(1);
    expect(err.join('')).toMatch(/cannot open I²C bus 250: \/dev\/i2c-250 does not exist/);
  });

  it('a bad --bus is a usage error', async () => {
    capture();
    await expect(scanCommand({ bus: '1.5' })).rejects.toThrow(/--bus/);
  });
});
