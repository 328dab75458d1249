import { describe, expect, it } from 'vitest';
import { holdWire, SimulatedI2CBus } from '../../../simulator/i2c/bus.js';
import { SimulatedMcp9808 } from '../../../simulator/i2c/chips/mcp9808.js';
import { SimulatedSht3x } from '../../../simulator/i2c/chips/sht3x.js';
import { SimulatedTmp102 } from '../../../simulator/i2c/chips/tmp102.js';

/** A bus on a clock the test moves by hand. */
function manualBus(options: ConstructorParameters<typeof SimulatedI2CBus>[0] = {}) {
  const clock = { t: 1000 };
  const bus = new SimulatedI2CBus({ ...options, now: () => clock.t });
  return { bus, clock };
}

const failure = async (p: Promise<unknown>): Promise<NodeJS.ErrnoException | undefined> => {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
};

describe('SimulatedI2CBus', () => {
  it('a byte takes 9 clocks: 400 kHz is four times faster than 100 kHz', () => {
    const slow = new SimulatedI2CBus({ clockHz: 100_000 });
    const fast = new SimulatedI2CBus({ clockHz: 400_000 });
    expect(slow.wireMs(10)).toBeCloseTo(0.92, 5);
    expect(slow.wireMs(10) / fast.wireMs(10)).toBeCloseTo(4, 5);
  });

  it('holds the wire for sub-millisecond times by the clock, not by a timer tick', async () => {
    for (const ms of [0.05, 0.3, 0.95, 2.4]) {
      const t0 = performance.now();
      await holdWire(ms);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(ms);
    }
    const bus = new SimulatedI2CBus();
    bus.attach(0x18, new SimulatedMcp9808());
    await bus.readI2cBlock(0x18, 0x05, 2, Buffer.alloc(2));
    const [t] = bus.transfers;
    expect(t.end - t.start).toBeGreaterThanOrEqual(bus.wireMs(5));
  });

  it('logs each transfer with its kind and wire bytes', async () => {
    const bus = new SimulatedI2CBus();
    bus.attach(0x18, new SimulatedMcp9808());
    await bus.readI2cBlock(0x18, 0x06, 2, Buffer.alloc(2));
    await bus.writeByte(0x18, 0x08, 1);
    await bus.receiveByte(0x18);
    expect(bus.transfers.map((t) => [t.kind, t.bytes])).toEqual([
      ['write-read', 5], // address+W, pointer, address+R, 2 data
      ['write', 3],
      ['read', 2],
    ]);
    for (const t of bus.transfers) expect(t.end).toBeGreaterThan(t.start);
  });

  it('SMBus words arrive low byte first, I²C blocks in wire order', async () => {
    const bus = new SimulatedI2CBus();
    bus.attach(0x18, new SimulatedMcp9808());
    expect(await bus.readWord(0x18, 0x06)).toBe(0x5400);
    const buf = Buffer.alloc(2);
    await bus.readI2cBlock(0x18, 0x06, 2, buf);
    expect(buf.readUInt16BE(0)).toBe(0x0054);
    await bus.writeWord(0x18, 0x02, 0x4001); // T_UPPER = 0x0140 on the wire after the swap
    await bus.readI2cBlock(0x18, 0x02, 2, buf);
    expect(buf.readUInt16BE(0)).toBe(0x0140);
  });

  it('an empty address NACKs with ENXIO (EREMOTEIO when configured like the Pi)', async () => {
    const err = await failure(new SimulatedI2CBus().readByte(0x50, 0));
    expect(err?.code).toBe('ENXIO');
    expect(err?.errno).toBe(-6);
    const pi = await failure(new SimulatedI2CBus({ nackCode: 'EREMOTEIO' }).readByte(0x50, 0));
    expect(pi?.code).toBe('EREMOTEIO');
    expect(pi?.errno).toBe(-121);
  });

  it('counts transfers that start while another is on the wire', async () => {
    const bus = new SimulatedI2CBus();
    bus.attach(0x48, new SimulatedTmp102());
    await Promise.all([bus.readByte(0x48, 1), bus.readByte(0x48, 1)]);
    expect(bus.overlaps).toBe(1);
    expect(bus.transfers.filter((t) => t.overlapped)).toHaveLength(1);
    await bus.readByte(0x48, 1);
    expect(bus.overlaps).toBe(1);
  });

  it('faults for a number of transfers', async () => {
    const bus = new SimulatedI2CBus();
    const chip = bus.attach(0x48, new SimulatedTmp102());
    chip.inject('nack', { transfers: 2 });
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await failure(bus.readByte(0x48, 1)))?.code);
    expect(codes).toEqual(['ENXIO', 'ENXIO', undefined]);
    expect(chip.counters.faults).toBe(2);
  });

  it('scheduled faults follow the bus clock (afterMs, forMs)', async () => {
    const { bus, clock } = manualBus();
    const chip = bus.attach(0x48, new SimulatedTmp102());
    chip.inject('eremoteio', { afterMs: 100, forMs: 50 }, clock.t);
    const at = async (t: number) => {
      clock.t = t;
      return (await failure(bus.readByte(0x48, 1)))?.code;
    };
    expect(await at(1050)).toBeUndefined();
    expect(await at(1100)).toBe('EREMOTEIO');
    expect(await at(1149)).toBe('EREMOTEIO');
    expect(await at(1150)).toBeUndefined();
    chip.inject('eio', {}, clock.t);
    expect(await at(5000)).toBe('EIO');
    chip.clear('eio');
    expect(await at(5001)).toBeUndefined();
  });

  it('a timeout fault holds the wire, then fails with ETIMEDOUT', async () => {
    const bus = new SimulatedI2CBus({ hangMs: 60 });
    const chip = bus.attach(0x48, new SimulatedTmp102());
    chip.inject('timeout', { transfers: 1 });
    const err = await failure(bus.readByte(0x48, 1));
    expect(err?.code).toBe('ETIMEDOUT');
    const [t] = bus.transfers;
    expect(t.error).toBe('ETIMEDOUT');
    expect(t.end - t.start).toBeGreaterThanOrEqual(55);
  });

  it('unplugged chips vanish from scans; replugging powers them on with reset registers', async () => {
    const { bus, clock } = manualBus();
    const chip = bus.attach(0x48, new SimulatedTmp102());
    bus.attach(0x44, new SimulatedSht3x());
    await bus.writeI2cBlock(0x48, 0x01, 2, Buffer.from([0x61, 0xa0])); // shutdown
    expect(await bus.scan()).toEqual([0x44, 0x48]);
    chip.unplug(clock.t);
    expect(await bus.scan()).toEqual([0x44]);
    expect((await failure(bus.readByte(0x48, 1)))?.code).toBe('ENXIO');
    chip.replug(clock.t);
    expect(await bus.scan()).toEqual([0x44, 0x48]);
    const buf = Buffer.alloc(2);
    await bus.readI2cBlock(0x48, 0x01, 2, buf);
    expect(buf.readUInt16BE(0)).toBe(0x60a0);
    expect(chip.counters.powerOns).toBe(2);
  });

  it('a scheduled unplug ends with a power-on', async () => {
    const { bus, clock } = manualBus();
    const chip = bus.attach(0x48, new SimulatedTmp102());
    chip.inject('unplugged', { forMs: 100 }, clock.t);
    expect(await bus.scan()).toEqual([]);
    clock.t += 150;
    expect(await bus.scan()).toEqual([0x48]);
    expect(chip.counters.powerOns).toBe(2);
  });

  it('rejects a second chip on one address and addresses outside 7 bits', () => {
    const bus = new SimulatedI2CBus();
    bus.attach(0x48, new SimulatedTmp102());
    expect(() => bus.attach(0x48, new SimulatedTmp102())).toThrow(/in use/);
    expect(() => bus.attach(0x80, new SimulatedTmp102())).toThrow(RangeError);
  });

  it('keeps a bounded transfer log', async () => {
    const bus = new SimulatedI2CBus({ logLimit: 3 });
    bus.attach(0x48, new SimulatedTmp102());
    for (let i = 0; i < 5; i++) await bus.readByte(0x48, 1);
    expect(bus.transfers).toHaveLength(3);
  });
});

describe('fault counts', () => {
  it('an unplug limited to N transfers ends after them, with a power-on', async () => {
    const bus = new SimulatedI2CBus();
    const chip = bus.attach(0x48, new SimulatedTmp102());
    chip.inject('unplugged', { transfers: 2 });
    const codes: (string | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      codes.push(
        await bus.readByte(0x48, 1).then(
          () => undefined,
          (e: NodeJS.ErrnoException) => e.code,
        ),
      );
    }
    expect(codes).toEqual(['ENXIO', 'ENXIO', undefined]);
    expect(chip.counters.powerOns).toBe(2);
  });
});
