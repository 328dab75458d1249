import { describe, expect, it } from 'vitest';
import {
  I2CBusOpenError,
  openI2CBus,
  SharedI2CBus,
  type SharedI2CBusOptions,
} from '../../../drivers/i2c/shared-bus.js';
import { SimulatedI2CBus, type SimulatedI2CBusOptions } from '../../../simulator/i2c/bus.js';
import { Turns } from '../../../drivers/turns.js';
import { SimulatedMcp9808 } from '../../../simulator/i2c/chips/mcp9808.js';
import { SimulatedTmp102 } from '../../../simulator/i2c/chips/tmp102.js';

/** A SharedI2CBus over a fresh simulated bus, counting its opens. */
function sharedOver(
  options: SimulatedI2CBusOptions = {},
  busOptions: SharedI2CBusOptions = {},
): { sim: SimulatedI2CBus; bus: SharedI2CBus; opens: () => number } {
  const sim = new SimulatedI2CBus(options);
  let opens = 0;
  const open = async () => {
    opens++;
    return sim;
  };
  return { sim, bus: new SharedI2CBus(1, open, busOptions), opens: () => opens };
}

const code = async (p: Promise<unknown>): Promise<string | undefined> => {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
};

describe('SharedI2CBus', () => {
  it('names its resource after the bus number', () => {
    expect(sharedOver().bus.resource).toBe('i2c:1');
  });

  it('concurrent transfers take turns: none overlap on the wire', async () => {
    const { sim, bus } = sharedOver();
    sim.attach(0x48, new SimulatedTmp102());
    sim.attach(0x18, new SimulatedMcp9808());
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        bus.transfer((b) => b.readByte(i % 2 ? 0x48 : 0x18, 0x01)),
      ),
    );
    expect(sim.transfers).toHaveLength(20);
    expect(sim.overlaps).toBe(0);
    const sorted = [...sim.transfers].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++)
      expect(sorted[i].start).toBeGreaterThanOrEqual(sorted[i - 1].end);
  });

  it('of the transfers waiting for the bus, the one starting the longest conversion goes first', async () => {
    const { sim, bus } = sharedOver();
    sim.attach(0x48, new SimulatedTmp102());
    sim.attach(0x18, new SimulatedMcp9808());
    const holding = bus.transfer((b) => b.readByte(0x18, 0x05)); // holds the bus
    await new Promise((r) => setImmediate(r));
    await Promise.all([
      holding,
      bus.transfer((b) => b.readByte(0x18, 0x06)), // a read: priority 0
      bus.transfer((b) => b.readByte(0x48, 0x01), { priority: 15 }),
      bus.transfer((b) => b.readByte(0x48, 0x02), { priority: 26 }),
    ]);
    expect(sim.transfers.map((t) => t.address)).toEqual([0x18, 0x48, 0x48, 0x18]);
    expect(sim.overlaps).toBe(0);
  });

  it('transfers asked for in one synchronous run go longest conversion first, even on a free bus', async () => {
    const { sim, bus } = sharedOver();
    sim.attach(0x48, new SimulatedTmp102());
    sim.attach(0x18, new SimulatedMcp9808());
    // Opened (no open hop below); an earlier slot asked for a 26 ms conversion.
    await bus.transfer((b) => b.readByte(0x48, 0x01), { priority: 26 });
    sim.resetLog();
    // As the rounds of one slot: the read's round happened to start first.
    const order: number[] = [];
    const asked = (priority: number, address: number, register: number) =>
      bus.transfer(
        (b) => {
          order.push(priority);
          return b.readByte(address, register);
        },
        { priority },
      );
    await Promise.all([asked(0, 0x18, 0x06), asked(15, 0x48, 0x01), asked(26, 0x48, 0x02)]);
    expect(order).toEqual([26, 15, 0]);
    expect(sim.transfers.map((t) => t.address)).toEqual([0x48, 0x48, 0x18]);
    expect(sim.overlaps).toBe(0);
  });

  it('without the lock the same transfers do overlap (the check is real)', async () => {
    const { sim } = sharedOver();
    sim.attach(0x48, new SimulatedTmp102());
    await Promise.all(Array.from({ length: 5 }, () => sim.readByte(0x48, 0x01)));
    expect(sim.overlaps).toBeGreaterThan(0);
  });

  it('retries EIO / EREMOTEIO with backoff and succeeds', async () => {
    const { sim, bus } = sharedOver();
    const chip = sim.attach(0x48, new SimulatedTmp102());
    chip.inject('eremoteio', { transfers: 1 });
    chip.inject('eio', { transfers: 1 });
    const cfg = await bus.transfer((b) => b.readWord(0x48, 0x01));
    // SMBus words arrive low byte first: the power-on 0x60A0 reads as 0xA060.
    expect(cfg).toBe(0xa060);
    expect(bus.stats.retries).toBe(2);
    expect(bus.stats.failures).toBe(0);
    expect(sim.transfers.map((t) => t.error).sort()).toEqual(['EIO', 'EREMOTEIO', undefined]);
  });

  it('does not retry a NACK (a missing device is not bus trouble)', async () => {
    const { sim, bus } = sharedOver();
    expect(await code(bus.transfer((b) => b.readByte(0x48, 0)))).toBe('ENXIO');
    expect(sim.transfers).toHaveLength(1);
    expect(bus.stats.retries).toBe(0);
  });

  it('reopens the handle after repeated failed transfers, then works again', async () => {
    const { sim, bus, opens } = sharedOver({}, { reopenAfter: 3, retries: 2 });
    const chip = sim.attach(0x48, new SimulatedTmp102());
    await bus.touch([0x48]);
    chip.inject('eio', { transfers: 9 });
    for (let i = 0; i < 3; i++)
      expect(await code(bus.transfer((b) => b.readByte(0x48, 1)))).toBe('EIO');
    expect(bus.stats.failures).toBe(3);
    expect(bus.stats.retries).toBe(6);
    expect(bus.stats.reopens).toBe(1);
    expect(sim.closes).toBe(1);
    expect(opens()).toBe(2);
    // The reopened handle touched the known address again, then a normal transfer works.
    expect(sim.transfers.at(-1)?.kind).toBe('read');
    expect(await bus.transfer((b) => b.readByte(0x48, 1))).toBe(0x60);
  });

  it('one failing device between working ones does not reopen the bus', async () => {
    const { sim, bus } = sharedOver({}, { reopenAfter: 3, retries: 0 });
    const bad = sim.attach(0x48, new SimulatedTmp102());
    sim.attach(0x18, new SimulatedMcp9808());
    bad.inject('eio');
    for (let i = 0; i < 6; i++) {
      expect(await code(bus.transfer((b) => b.readByte(0x48, 1)))).toBe('EIO');
      await bus.transfer((b) => b.readByte(0x18, 6));
    }
    expect(bus.stats.reopens).toBe(0);
  });

  it('touch() visits each address once, in turn, and returns those that answered', async () => {
    const { sim, bus } = sharedOver();
    sim.attach(0x48, new SimulatedTmp102());
    sim.attach(0x18, new SimulatedMcp9808());
    const answered = await bus.touch([0x48, 0x18, 0x48, 0x4a]);
    expect(answered).toEqual([0x48, 0x18]);
    expect(sim.transfers.map((t) => t.address)).toEqual([0x48, 0x18, 0x4a]);
    expect(sim.overlaps).toBe(0);
  });

  it('an aborted caller stops waiting; the queue goes on', async () => {
    const turns = new Turns();
    const { sim, bus } = sharedOver({ hangMs: 150 }, { turns });
    const chip = sim.attach(0x48, new SimulatedTmp102());
    chip.inject('timeout', { transfers: 1 });
    const hung = bus.transfer((b) => b.readByte(0x48, 1), { signal: AbortSignal.timeout(20) });
    const err = (await hung.catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('TimeoutError');
    // The wire stays held by the hung transfer; the next caller gets it once it ends.
    const next = await bus.transfer((b) => b.readByte(0x48, 1));
    expect(next).toBe(0x60);
    expect(sim.overlaps).toBe(0);
    expect(sim.transfers.map((t) => t.error)).toEqual(['ETIMEDOUT', undefined]);
  });

  it('shares a given Turns with other users of the bus', async () => {
    const turns = new Turns();
    const { sim, bus } = sharedOver({}, { turns });
    sim.attach(0x48, new SimulatedTmp102());
    let inside = false;
    const other = turns.run(async () => {
      inside = true;
      await new Promise((r) => setTimeout(r, 20));
      inside = false;
    });
    const seen = await bus.transfer(async (b) => {
      const busy = inside;
      await b.readByte(0x48, 1);
      return busy;
    });
    await other;
    expect(seen).toBe(false);
  });
});

describe('SharedI2CBus opening', () => {
  it('a failed open rejects that transfer; the next transfer opens again', async () => {
    const sim = new SimulatedI2CBus();
    sim.attach(0x48, new SimulatedTmp102());
    let attempts = 0;
    const bus = new SharedI2CBus(4, async () => {
      if (++attempts === 1) throw new I2CBusOpenError('/dev/i2c-4 does not exist');
      return sim;
    });
    await expect(bus.transfer((b) => b.readByte(0x48, 1))).rejects.toThrow(/does not exist/);
    expect(await bus.transfer((b) => b.readByte(0x48, 1))).toBe(0x60);
    expect(attempts).toBe(2);
    await bus.close();
    expect(sim.closes).toBe(1);
    expect(await bus.transfer((b) => b.readByte(0x48, 1))).toBe(0x60);
    expect(attempts).toBe(3);
  });
});

describe('openI2CBus', () => {
  it('explains a missing /dev/i2c-N', async () => {
    const err = await openI2CBus(250).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(I2CBusOpenError);
    expect((err as Error).message).toMatch(/\/dev\/i2c-250 does not exist/);
  });
});
