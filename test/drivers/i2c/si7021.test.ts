import { describe, expect, it } from 'vitest';
import {
  SI7021_POLL_LIMIT_MS,
  SI7021_POLL_MS,
  si7021Celsius,
  si7021Crc,
  si7021Humidity,
  si7021UserRegisterFamily,
  si7021Word,
} from '../../../drivers/i2c/si7021.js';
import type { SimulatedI2CBus, TransferRecord } from '../../../simulator/i2c/bus.js';
import { SimulatedSi7021 } from '../../../simulator/i2c/chips/si7021.js';
import { SimulatedTmp102 } from '../../../simulator/i2c/chips/tmp102.js';
import { onVirtualTime } from '../../helpers/virtual-time.js';
import { i2cRig, runDriver } from '../../helpers/run-driver.js';

describe('Si7021 / HTU21D conversions and CRC', () => {
  it('CRC-8 0x31 / init 0x00 (HTU21D datasheet examples)', () => {
    expect(si7021Crc([0xdc])).toBe(0x79);
    expect(si7021Crc([0x68, 0x3a])).toBe(0x7c);
    expect(si7021Crc([0x4e, 0x85])).toBe(0x6b);
  });

  it.each([
    [0x0000, -46.85],
    [0x2000, -24.885],
    [0x4000, -2.92],
    [0x683a, 24.6869],
    [0x8000, 41.01],
    [0x8003, 41.01], // status bits masked
  ])('T raw %i → %s °C', (raw, celsius) => {
    expect(si7021Celsius(raw)).toBeCloseTo(celsius, 3);
  });

  it.each([
    [0x4000, 25.25],
    [0x4002, 25.25],
    [0x7c80, 54.79],
    [0x8000, 56.5],
    [0x0000, 0], // −6 % clamped
    [0xfffe, 100], // 119 % clamped
  ])('RH raw %i → %s %', (raw, rh) => {
    expect(si7021Humidity(raw)).toBeCloseTo(rh, 2);
  });

  it('checks the CRC of a frame', () => {
    expect(si7021Word(Uint8Array.of(0x68, 0x3a, 0x7c))).toBe(0x683a);
    expect(() => si7021Word(Uint8Array.of(0x68, 0x3a, 0x7d))).toThrow(/CRC/);
  });
});

/** Each measure command (the writes after the reset at open) with the reads that followed it. */
function rounds(sim: SimulatedI2CBus): { command: TransferRecord; reads: TransferRecord[] }[] {
  const commands = sim.transfers.filter((t) => t.kind === 'write').slice(1);
  return commands.map((command, i) => ({
    command,
    reads: sim.transfers.filter(
      (t) =>
        t.kind === 'read' &&
        t.start > command.end &&
        t.start < (commands[i + 1]?.start ?? Infinity),
    ),
  }));
}

describe('Si7021 driver against the simulated chip', () => {
  const config = {
    id: 'si',
    driver: 'si7021' as const,
    address: 0x40,
    quantities: ['temperature' as const, 'humidity' as const],
  };

  // The conversion tests run on a virtual clock (test/helpers/virtual-time.ts): when the
  // driver polls and when the chip is done are then the same on any machine, so the number of
  // refusals is a fact of the driver's schedule, not of how busy the machine is, and a good
  // round never becomes a TIMEOUT because a starved process polled after the 100 ms limit.

  it('polls through the NACKs of a conversion and reads temperature and humidity', async () => {
    const { sim, bus, chip, ok, faults } = await onVirtualTime(async () => {
      const { sim, seams, driver } = i2cRig();
      const bus = seams.i2c(1);
      const chip = sim.attach(
        0x40,
        new SimulatedSi7021({
          temperatureMs: 20,
          humidityMs: 30,
          values: { temperature: -8.4, humidity: 71 },
        }),
      );
      return { sim, bus, chip, ...(await runDriver(driver(config), { ticks: 2 })) };
    });
    expect(faults).toEqual([]);
    expect(ok.map((r) => r.quantity)).toEqual([
      'temperature',
      'humidity',
      'temperature',
      'humidity',
    ]);
    expect(ok[0].value).toBeCloseTo(-8.4, 1);
    expect(ok[1].value).toBeCloseTo(71, 1);
    // Per round: the 0xF5 command, then reads refused while converting (the first at the
    // typical 17 ms, then every 6 ms), then the first read after the 30 ms end answered.
    const measured = rounds(sim);
    expect(measured).toHaveLength(2);
    for (const { command, reads } of measured) {
      const answered = reads.at(-1)!;
      expect(answered.error).toBeUndefined();
      expect(reads.slice(0, -1).map((t) => t.error)).toEqual(['ENXIO', 'ENXIO', 'ENXIO']);
      expect(answered.start - command.end).toBeGreaterThanOrEqual(30);
      expect(answered.start - command.end).toBeLessThan(30 + SI7021_POLL_MS);
    }
    expect(chip.counters.nacks).toBe(6);
    // Expected refusals are not bus trouble.
    expect(bus.stats.failures).toBe(0);
    expect(bus.stats.reopens).toBe(0);
  });

  it('an Si7021 wanting both quantities converts once: RH, then 0xE0 for its temperature', async () => {
    const { sim, ok, faults } = await onVirtualTime(async () => {
      const { sim, driver } = i2cRig();
      sim.attach(0x40, new SimulatedSi7021({ values: { temperature: 31.5, humidity: 40 } }));
      return { sim, ...(await runDriver(driver(config), { ticks: 2 })) };
    });
    expect(faults).toEqual([]);
    expect(ok.map((r) => r.quantity)).toEqual([
      'temperature',
      'humidity',
      'temperature',
      'humidity',
    ]);
    expect(ok[0].value).toBeCloseTo(31.5, 1);
    expect(ok[1].value).toBeCloseTo(40, 0);
    // Command writes (address + 1 byte): the reset at open, then one 0xF5 per round.
    expect(sim.transfers.filter((t) => t.kind === 'write' && t.bytes === 2)).toHaveLength(3);
    // 0xE0 reads: address, command, address, MSB, LSB — no checksum byte.
    expect(sim.transfers.filter((t) => t.kind === 'write-read' && t.bytes === 5)).toHaveLength(2);
  });

  it('an HTU21D (no 0xE0) converts temperature and humidity separately', async () => {
    const { sim, ok, faults } = await onVirtualTime(async () => {
      const { sim, driver } = i2cRig();
      sim.attach(
        0x40,
        new SimulatedSi7021({ deviceId: undefined, values: { temperature: 18, humidity: 65 } }),
      );
      return { sim, ...(await runDriver(driver(config), { ticks: 2 })) };
    });
    expect(faults).toEqual([]);
    expect(ok.map((r) => Math.round(r.value))).toEqual([18, 65, 18, 65]);
    expect(sim.transfers.filter((t) => t.kind === 'write' && t.bytes === 2)).toHaveLength(5);
    expect(sim.transfers.some((t) => t.kind === 'write-read' && t.bytes === 5)).toBe(false);
  });

  it('on the Pi a NACK arrives as EREMOTEIO: still polled, never a bus reopen', async () => {
    const { sim, bus, chip, ok, faults } = await onVirtualTime(async () => {
      const { sim, seams, driver } = i2cRig({ nackCode: 'EREMOTEIO' });
      const bus = seams.i2c(1);
      const chip = sim.attach(
        0x40,
        new SimulatedSi7021({ temperatureMs: 25, values: { temperature: 5 } }),
      );
      const d = driver({ ...config, quantities: ['temperature'] });
      return { sim, bus, chip, ...(await runDriver(d, { ticks: 3 })) };
    });
    expect(faults).toEqual([]);
    expect(ok.map((r) => Math.round(r.value))).toEqual([5, 5, 5]);
    // Polled from the typical 7 ms on: refused until the 25 ms end, then answered.
    const measured = rounds(sim);
    expect(measured).toHaveLength(3);
    for (const { command, reads } of measured) {
      expect(reads.length).toBeGreaterThan(1);
      expect(reads.slice(0, -1).every((t) => t.error === 'EREMOTEIO')).toBe(true);
      expect(reads.at(-1)!.error).toBeUndefined();
      expect(reads.at(-1)!.start - command.end).toBeGreaterThanOrEqual(25);
    }
    expect(chip.counters.nacks).toBe(measured.reduce((n, r) => n + r.reads.length - 1, 0));
    expect(bus.stats.reopens).toBe(0);
    expect(sim.closes).toBe(0);
  });

  it('a conversion that never ends is a TIMEOUT after about 100 ms of polling', async () => {
    const { sim, chip, faults, ok } = await onVirtualTime(async () => {
      const { sim, driver } = i2cRig();
      const chip = sim.attach(0x40, new SimulatedSi7021({ temperatureMs: 400 }));
      const d = driver({ ...config, quantities: ['temperature'] });
      return { sim, chip, ...(await runDriver(d, { ticks: 1 })) };
    });
    expect(ok).toEqual([]);
    expect(faults.map((f) => f.code)).toEqual(['TIMEOUT']);
    // Writes: the reset at open, then the measure command; every poll after it refused.
    const command = sim.transfers.filter((t) => t.kind === 'write').at(-1)!;
    const polls = sim.transfers.filter((t) => t.kind === 'read');
    expect(polls.every((t) => t.error === 'ENXIO')).toBe(true);
    expect(polls).toHaveLength(chip.counters.nacks);
    // Polled about every 6 ms (never faster) until the 100 ms limit had passed, then gave up.
    for (let i = 1; i < polls.length; i++)
      expect(polls[i].start - polls[i - 1].end).toBeGreaterThanOrEqual(SI7021_POLL_MS - 1);
    expect(polls.at(-2)!.end - command.end).toBeLessThan(SI7021_POLL_LIMIT_MS);
    expect(polls.at(-1)!.end - command.end).toBeGreaterThanOrEqual(SI7021_POLL_LIMIT_MS);
    expect(polls.length).toBeGreaterThanOrEqual(5);
    expect(polls.length).toBeLessThanOrEqual(20);
  });

  it('works with an HTU21D (no electronic ID) and reports a corrupted CRC as a CRC fault', async () => {
    const { faults, ok } = await onVirtualTime(async () => {
      const { sim, driver } = i2cRig();
      const chip = sim.attach(
        0x40,
        new SimulatedSi7021({ deviceId: undefined, values: { temperature: 22 } }),
      );
      return runDriver(driver({ ...config, quantities: ['temperature'] }), {
        ticks: 3,
        beforeTick: (i) => {
          if (i === 1) chip.inject('crc', { transfers: 1 });
        },
      });
    });
    expect(faults.map((f) => f.code)).toEqual(['CRC']);
    expect(ok).toHaveLength(2);
    for (const r of ok) expect(r.value).toBeCloseTo(22, 1);
  });

  it('a chip at 0x40 whose user register is no Si7021/HTU21D one is refused (DEVICE)', async () => {
    const { sim, driver } = i2cRig();
    sim.attach(0x40, new SimulatedTmp102()); // reads 0x50 where the user register would be
    const { faults, ok } = await runDriver(driver({ ...config, quantities: ['temperature'] }), {
      ticks: 1,
    });
    expect(ok).toEqual([]);
    expect(faults.map((f) => f.code)).toEqual(['DEVICE']);
  });

  it('classifies user registers by their fixed bits', () => {
    expect(si7021UserRegisterFamily(0x3a)).toBe('si70xx');
    expect(si7021UserRegisterFamily(0xbb)).toBe('si70xx'); // resolution / heater bits set
    expect(si7021UserRegisterFamily(0x02)).toBe('htu21d');
    expect(si7021UserRegisterFamily(0x83)).toBe('htu21d');
    expect(si7021UserRegisterFamily(0x00)).toBeUndefined();
    expect(si7021UserRegisterFamily(0x50)).toBeUndefined();
  });

  it('rejects quantities the chip cannot measure', () => {
    const { driver } = i2cRig();
    expect(() => driver({ ...config, quantities: ['pressure'] })).toThrow(/pressure/);
  });
});
