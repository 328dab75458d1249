import { describe, expect, it } from 'vitest';
import {
  createSi7021,
  SI7021_POLL_LIMIT_MS,
  SI7021_POLL_MS,
  si7021Celsius,
  si7021Crc,
  si7021Humidity,
  si7021UserRegisterFamily,
  si7021Word,
} from '../../../drivers/i2c/si7021.js';
import { SimulatedSi7021, type Si7021Options } from '../../../simulator/i2c/chips/si7021.js';
import { SimulatedTmp102 } from '../../../simulator/i2c/chips/tmp102.js';
import { common, run, sharedOver } from './helpers.js';

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

/** Longer than the driver's poll limit (SI7021_POLL_LIMIT_MS), shorter than a clock step. */
const CONVERSION_MS = 500;
const STEP_MS = 1000;

/**
 * An Si7021 whose conversion ends only once it has refused a read: its bus clock is real
 * time plus STEP_MS for every NACK it gave. Each conversion is then refused exactly once,
 * however late the driver's first poll comes within its own (real-time) poll limit; on real
 * time alone a poll delayed past the conversion's end finds it done and no NACK happens.
 */
function chipDoneAfterOneRefusal(options: Si7021Options, busOptions: { nackCode?: 'EREMOTEIO' }) {
  const chip = new SimulatedSi7021({
    temperatureMs: CONVERSION_MS,
    humidityMs: CONVERSION_MS,
    ...options,
  });
  const { sim, bus } = sharedOver({
    ...busOptions,
    now: () => performance.now() + chip.counters.nacks * STEP_MS,
  });
  sim.attach(0x40, chip);
  return { chip, sim, bus };
}

describe('Si7021 driver against the simulated chip', () => {
  const config = {
    ...common,
    id: 'si',
    driver: 'si7021' as const,
    address: 0x40,
    quantities: ['temperature' as const, 'humidity' as const],
  };

  it('polls through the NACKs of a conversion and reads temperature and humidity', async () => {
    const { chip, sim, bus } = chipDoneAfterOneRefusal(
      { values: { temperature: -8.4, humidity: 71 } },
      {},
    );
    const { ok, faults } = await run(createSi7021(config, bus), { ticks: 2 });
    expect(faults).toEqual([]);
    expect(ok.map((r) => r.quantity)).toEqual([
      'temperature',
      'humidity',
      'temperature',
      'humidity',
    ]);
    expect(ok[0].value).toBeCloseTo(-8.4, 1);
    expect(ok[1].value).toBeCloseTo(71, 1);
    // Each round's read was refused while converting, and read again: one plain read NACKed,
    // then one answered, per round.
    expect(chip.counters.nacks).toBe(2);
    const reads = sim.transfers.filter((t) => t.kind === 'read');
    expect(reads.map((t) => t.error)).toEqual(['ENXIO', undefined, 'ENXIO', undefined]);
    // Expected refusals are not bus trouble.
    expect(bus.stats.failures).toBe(0);
    expect(bus.stats.reopens).toBe(0);
  });

  it('an Si7021 wanting both quantities converts once: RH, then 0xE0 for its temperature', async () => {
    const { sim, bus } = sharedOver();
    sim.attach(0x40, new SimulatedSi7021({ values: { temperature: 31.5, humidity: 40 } }));
    const { ok, faults } = await run(createSi7021(config, bus), { ticks: 2 });
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
    const { sim, bus } = sharedOver();
    sim.attach(
      0x40,
      new SimulatedSi7021({ deviceId: undefined, values: { temperature: 18, humidity: 65 } }),
    );
    const { ok, faults } = await run(createSi7021(config, bus), { ticks: 2 });
    expect(faults).toEqual([]);
    expect(ok.map((r) => Math.round(r.value))).toEqual([18, 65, 18, 65]);
    expect(sim.transfers.filter((t) => t.kind === 'write' && t.bytes === 2)).toHaveLength(5);
    expect(sim.transfers.some((t) => t.kind === 'write-read' && t.bytes === 5)).toBe(false);
  });

  it('on the Pi a NACK arrives as EREMOTEIO: still polled, never a bus reopen', async () => {
    const { chip, sim, bus } = chipDoneAfterOneRefusal(
      { values: { temperature: 5 } },
      { nackCode: 'EREMOTEIO' },
    );
    const { ok, faults } = await run(
      createSi7021({ ...config, quantities: ['temperature'] }, bus),
      {
        ticks: 3,
      },
    );
    expect(faults).toEqual([]);
    expect(ok.map((r) => Math.round(r.value))).toEqual([5, 5, 5]);
    expect(chip.counters.nacks).toBe(3);
    expect(sim.transfers.filter((t) => t.error !== undefined).map((t) => t.error)).toEqual([
      'EREMOTEIO',
      'EREMOTEIO',
      'EREMOTEIO',
    ]);
    expect(bus.stats.reopens).toBe(0);
    expect(sim.closes).toBe(0);
  });

  it('a conversion that never ends is a TIMEOUT after about 100 ms of polling', async () => {
    const { sim, bus } = sharedOver();
    const chip = sim.attach(0x40, new SimulatedSi7021({ temperatureMs: 60_000 }));
    const { faults, ok } = await run(
      createSi7021({ ...config, quantities: ['temperature'] }, bus),
      {
        ticks: 1,
      },
    );
    expect(ok).toEqual([]);
    expect(faults.map((f) => f.code)).toEqual(['TIMEOUT']);
    // Writes: the reset at open, then the measure command.
    const command = sim.transfers.filter((t) => t.kind === 'write').at(-1)!;
    const polls = sim.transfers.filter((t) => t.kind === 'read');
    expect(polls.length).toBe(chip.counters.nacks);
    expect(polls.every((t) => t.error === 'ENXIO')).toBe(true);
    // It gave up only once the limit had passed (the last refusal ends a few µs before the
    // driver looks at its clock, well within one poll period) ...
    expect(polls.at(-1)!.end - command.end).toBeGreaterThanOrEqual(
      SI7021_POLL_LIMIT_MS - SI7021_POLL_MS,
    );
    // ... and never polled faster than its period (Node's timers may fire up to 1 ms early),
    // so the number of polls is bounded by the limit, however fast the machine.
    for (let i = 1; i < polls.length; i++)
      expect(polls[i].start - polls[i - 1].end).toBeGreaterThanOrEqual(SI7021_POLL_MS - 1);
    expect(polls.length).toBeLessThanOrEqual(20);
  });

  it('works with an HTU21D (no electronic ID) and reports a corrupted CRC as a CRC fault', async () => {
    const { sim, bus } = sharedOver();
    const chip = sim.attach(
      0x40,
      new SimulatedSi7021({ deviceId: undefined, values: { temperature: 22 } }),
    );
    const { faults, ok } = await run(
      createSi7021({ ...config, quantities: ['temperature'] }, bus),
      {
        ticks: 3,
        beforeTick: (i) => {
          if (i === 1) chip.inject('crc', { transfers: 1 });
        },
      },
    );
    expect(faults.map((f) => f.code)).toEqual(['CRC']);
    expect(ok).toHaveLength(2);
    for (const r of ok) expect(r.value).toBeCloseTo(22, 1);
  });

  it('a chip at 0x40 whose user register is no Si7021/HTU21D one is refused (DEVICE)', async () => {
    const { sim, bus } = sharedOver();
    sim.attach(0x40, new SimulatedTmp102()); // reads 0x50 where the user register would be
    const { faults, ok } = await run(
      createSi7021({ ...config, quantities: ['temperature'] }, bus),
      {
        ticks: 1,
      },
    );
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
    const { bus } = sharedOver();
    expect(() => createSi7021({ ...config, quantities: ['pressure'] }, bus)).toThrow(/pressure/);
  });
});
