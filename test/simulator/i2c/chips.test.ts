/** Register-level behaviour of the chip models, on a clock the test moves by hand. */
import { describe, expect, it } from 'vitest';
import { crc8 } from '../../../drivers/i2c/crc8.js';
import { bme280Temperature } from '../../../drivers/i2c/bme280.js';
import { SimulatedI2CBus } from '../../../simulator/i2c/bus.js';
import {
  EXAMPLE_BME280_CALIBRATION,
  SimulatedBme280,
} from '../../../simulator/i2c/chips/bme280.js';
import { lm75Raw, SimulatedLm75 } from '../../../simulator/i2c/chips/lm75.js';
import { mcp9808Raw, SimulatedMcp9808 } from '../../../simulator/i2c/chips/mcp9808.js';
import { sht3xFrame, SimulatedSht3x } from '../../../simulator/i2c/chips/sht3x.js';
import { SimulatedSi7021 } from '../../../simulator/i2c/chips/si7021.js';
import { SimulatedTmp102, tmp102Raw } from '../../../simulator/i2c/chips/tmp102.js';

function manualBus() {
  const clock = { t: 0 };
  const bus = new SimulatedI2CBus({ now: () => clock.t });
  return { bus, clock };
}

const word = async (bus: SimulatedI2CBus, address: number, register: number): Promise<number> => {
  const buf = Buffer.alloc(2);
  await bus.readI2cBlock(address, register, 2, buf);
  return buf.readUInt16BE(0);
};

const code = async (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (err: NodeJS.ErrnoException) => err.code,
  );

describe('TMP102 model', () => {
  it('encodes like the datasheet tables (12 and 13 bit)', () => {
    expect(tmp102Raw(25, false)).toBe(0x1900);
    expect(tmp102Raw(-25, false)).toBe(0xe700);
    expect(tmp102Raw(150, true)).toBe(0x4b01);
    expect(tmp102Raw(200, false)).toBe(0x7ff0); // clamped at the 12-bit maximum
  });

  it('power-on values, then a one-shot conversion in shutdown mode', async () => {
    const { bus, clock } = manualBus();
    bus.attach(0x48, new SimulatedTmp102({ values: { temperature: -3 }, conversionMs: 26 }));
    expect(await word(bus, 0x48, 0x01)).toBe(0x60a0);
    expect(await word(bus, 0x48, 0x02)).toBe(0x4b00);
    expect(await word(bus, 0x48, 0x03)).toBe(0x5000);
    expect(await word(bus, 0x48, 0x00)).toBe(0); // no conversion yet
    await bus.writeI2cBlock(0x48, 0x01, 2, Buffer.from([0x61, 0xa0])); // SD
    await bus.writeI2cBlock(0x48, 0x01, 2, Buffer.from([0xe1, 0xa0])); // OS + SD
    clock.t = 10;
    expect((await word(bus, 0x48, 0x01)) & 0x8000).toBe(0); // OS reads 0 while converting
    expect(await word(bus, 0x48, 0x00)).toBe(0);
    clock.t = 30;
    expect((await word(bus, 0x48, 0x01)) & 0x8000).toBe(0x8000);
    expect(await word(bus, 0x48, 0x00)).toBe(tmp102Raw(-3, false));
  });
});

describe('LM75 model', () => {
  it('converts every 100 ms; shutdown freezes the register', async () => {
    const { bus, clock } = manualBus();
    let t = 20;
    bus.attach(0x48, new SimulatedLm75({ resolutionBits: 9, values: { temperature: () => t } }));
    expect(await word(bus, 0x48, 0x03)).toBe(0x5000);
    clock.t = 50;
    expect(await word(bus, 0x48, 0x00)).toBe(lm75Raw(20, 9));
    await bus.writeByte(0x48, 0x01, 0x01);
    t = 30;
    clock.t = 500;
    expect(await word(bus, 0x48, 0x00)).toBe(lm75Raw(20, 9));
    await bus.writeByte(0x48, 0x01, 0x00);
    expect(await word(bus, 0x48, 0x00)).toBe(lm75Raw(30, 9));
  });
});

describe('MCP9808 model', () => {
  it('ID registers, T_A = 0 until the first conversion, alert flags against the limits', async () => {
    const { bus, clock } = manualBus();
    bus.attach(0x18, new SimulatedMcp9808({ values: { temperature: 25.25 } }));
    expect(await word(bus, 0x18, 0x06)).toBe(0x0054);
    expect((await word(bus, 0x18, 0x07)) >> 8).toBe(0x04);
    expect(await bus.readByte(0x18, 0x08)).toBe(3);
    clock.t = 100;
    expect(await word(bus, 0x18, 0x05)).toBe(0); // 250 ms at resolution 3
    clock.t = 260;
    // T ≥ T_CRIT (0) and T > T_UPPER (0) at power-on.
    expect(await word(bus, 0x18, 0x05)).toBe(0xc194);
    expect(mcp9808Raw(-1, 3)).toBe(0x1ff0);
    expect(mcp9808Raw(25.3, 0)).toBe(0x0190); // 0.5 °C steps
  });
});

describe('SHT3x model', () => {
  it('NACKs reads while measuring and without data; frames carry CRCs; stuck freezes values', async () => {
    const { bus, clock } = manualBus();
    let t = 20;
    const chip = bus.attach(
      0x44,
      new SimulatedSht3x({ values: { temperature: () => t, humidity: 50 } }),
    );
    const buf = Buffer.alloc(6);
    expect(await code(bus.i2cRead(0x44, 6, buf))).toBe('ENXIO');
    await bus.i2cWrite(0x44, 2, Buffer.from([0x24, 0x00]));
    clock.t = 5;
    expect(await code(bus.i2cRead(0x44, 6, buf))).toBe('ENXIO');
    clock.t = 13;
    await bus.i2cRead(0x44, 6, buf);
    expect(crc8(buf.subarray(0, 2), 0xff)).toBe(buf[2]);
    expect(crc8(buf.subarray(3, 5), 0xff)).toBe(buf[5]);
    chip.inject('stuck', {}, clock.t);
    const frames: string[] = [];
    for (const temp of [21, 22]) {
      t = temp;
      await bus.i2cWrite(0x44, 2, Buffer.from([0x24, 0x00]));
      clock.t += 20;
      await bus.i2cRead(0x44, 6, buf);
      frames.push(buf.toString('hex'));
    }
    expect(frames[0]).toBe(frames[1]);
    chip.clear('stuck');
    await bus.i2cWrite(0x44, 2, Buffer.from([0x24, 0x00]));
    clock.t += 20;
    await bus.i2cRead(0x44, 6, buf);
    expect(buf.toString('hex')).not.toBe(frames[0]);
  });

  it('status register 0x8010 after power-on, with CRC; corrupt CRC on demand', async () => {
    const { bus } = manualBus();
    const chip = bus.attach(0x44, new SimulatedSht3x());
    const buf = Buffer.alloc(3);
    await bus.i2cWrite(0x44, 2, Buffer.from([0xf3, 0x2d]));
    await bus.i2cRead(0x44, 3, buf);
    expect([...buf]).toEqual([...sht3xFrame([0x8010])]);
    chip.inject('crc', { transfers: 1 });
    await bus.i2cWrite(0x44, 2, Buffer.from([0xf3, 0x2d]));
    await bus.i2cRead(0x44, 3, buf);
    expect(crc8(buf.subarray(0, 2), 0xff)).not.toBe(buf[2]);
  });
});

describe('Si7021 model', () => {
  it('NACKs while converting; electronic ID 0x15; user register keeps its reserved bits', async () => {
    const { bus, clock } = manualBus();
    bus.attach(0x40, new SimulatedSi7021({ temperatureMs: 7 }));
    await bus.sendByte(0x40, 0xf3);
    const buf = Buffer.alloc(3);
    clock.t = 3;
    expect(await code(bus.i2cRead(0x40, 3, buf))).toBe('ENXIO');
    clock.t = 8;
    await bus.i2cRead(0x40, 3, buf);
    expect(crc8(buf.subarray(0, 2), 0)).toBe(buf[2]);
    expect(buf[1] & 0x03).toBe(0); // temperature status bits
    await bus.i2cWrite(0x40, 2, Buffer.from([0xfc, 0xc9]));
    await bus.i2cRead(0x40, 3, buf);
    expect(buf[0]).toBe(0x15);
    expect(await bus.readByte(0x40, 0xe7)).toBe(0x3a);
    await bus.writeByte(0x40, 0xe6, 0x00);
    expect(await bus.readByte(0x40, 0xe7)).toBe(0x3a);
  });

  it('an HTU21D: user register 0x02, NACKs the electronic ID command', async () => {
    const { bus } = manualBus();
    bus.attach(0x40, new SimulatedSi7021({ deviceId: undefined }));
    expect(await bus.readByte(0x40, 0xe7)).toBe(0x02);
    expect(await code(bus.i2cWrite(0x40, 2, Buffer.from([0xfc, 0xc9])))).toBe('ENXIO');
  });
});

describe('BME280 model', () => {
  it('power-on: chip id, skipped data 0x80000, NVM copy flag; forced mode measuring flag', async () => {
    const { bus, clock } = manualBus();
    bus.attach(0x76, new SimulatedBme280({ values: { temperature: 25.08 } }));
    expect(await bus.readByte(0x76, 0xd0)).toBe(0x60);
    expect(await bus.readByte(0x76, 0xf3)).toBe(0x01); // im_update right after power-on
    clock.t = 3;
    expect(await bus.readByte(0x76, 0xf3)).toBe(0x00);
    const data = Buffer.alloc(8);
    await bus.readI2cBlock(0x76, 0xf7, 8, data);
    expect(data.toString('hex')).toBe('8000008000008000');
    await bus.writeByte(0x76, 0xf4, 0x21); // osrs_t ×1, forced
    clock.t = 4;
    expect(await bus.readByte(0x76, 0xf3)).toBe(0x08);
    clock.t = 20;
    expect(await bus.readByte(0x76, 0xf3)).toBe(0x00);
    expect((await bus.readByte(0x76, 0xf4)) & 0x03).toBe(0); // back to sleep
    await bus.readI2cBlock(0x76, 0xf7, 8, data);
    const adcT = (data[3] << 12) | (data[4] << 4) | (data[5] >> 4);
    expect(bme280Temperature(adcT, EXAMPLE_BME280_CALIBRATION).celsius).toBe(25.08);
    // Pressure and humidity were not enabled: still skipped.
    expect(data.subarray(0, 3).toString('hex')).toBe('800000');
    expect(data.subarray(6, 8).toString('hex')).toBe('8000');
  });

  it('soft reset (0xB6 → 0xE0) restores the power-on registers', async () => {
    const { bus } = manualBus();
    bus.attach(0x76, new SimulatedBme280());
    await bus.writeByte(0x76, 0xf2, 0x01);
    expect(await bus.readByte(0x76, 0xf2)).toBe(0x01);
    await bus.writeByte(0x76, 0xe0, 0xb6);
    expect(await bus.readByte(0x76, 0xf2)).toBe(0x00);
    expect(await bus.readByte(0x76, 0xd0)).toBe(0x60);
  });
});
