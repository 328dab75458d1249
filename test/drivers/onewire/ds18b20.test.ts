import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../helpers/wait.js';
import { sensorSchema, type SensorConfigOf } from '../../../drivers/registry.js';
import {
  createDs18b20,
  ds18b20Celsius,
  parseTemperatureFile,
  parseW1Slave,
} from '../../../drivers/onewire/ds18b20.js';
import { ReadLimiter } from '../../../drivers/onewire/w1-limiter.js';
import { quantityCode, ReadingStatus, SensorError, type Reading } from '../../../drivers/types.js';
import { Aggregator } from '../../../agent/aggregation/aggregator.js';
import { Signal } from '../../../simulator/signal.js';
import { SimulatedW1Tree } from '../../../simulator/onewire/w1-tree.js';
import { rig, runDriver } from '../../helpers/run-driver.js';

const ID = '28-0316a2795aff';
/** A DS18B20 made as the agent makes it: its entry, over seams reaching the fake w1 tree. */
const sensor = (w1Root: string, deviceId = ID) =>
  rig({ w1Root }).driver({ id: 'w1', driver: 'ds18b20', deviceId });

const config = (w1Root: string, deviceId = ID) =>
  sensorSchema.parse({
    id: 'w1',
    driver: 'ds18b20',
    deviceId,
    w1Root,
  }) as SensorConfigOf<'ds18b20'>;

let tree: SimulatedW1Tree | undefined;
afterEach(async () => {
  await tree?.close();
  tree = undefined;
});

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return e instanceof SensorError ? e.code : 'not a SensorError';
  }
  return undefined;
};

describe('DS18B20 conversion (datasheet table 1)', () => {
  it.each([
    [0x07d0, 125],
    [0x0550, 85],
    [0x0191, 25.0625],
    [0x00a2, 10.125],
    [0x0008, 0.5],
    [0x0000, 0],
    [0xfff8, -0.5],
    [0xff5e, -10.125],
    [0xfe6f, -25.0625],
    [0xfc90, -55],
  ])('register 0x%s → %d °C', (raw, celsius) => {
    expect(ds18b20Celsius(raw & 0xff, raw >> 8)).toBe(celsius);
  });
});

describe('w1 sysfs parsing', () => {
  const GOOD = '72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n';

  it('reads t= from a w1_slave with crc YES', () => {
    expect(parseW1Slave(GOOD)).toBe(23125);
    expect(parseW1Slave(GOOD.replace('t=23125', 't=-10125'))).toBe(-10125);
  });

  it('makes crc NO a CRC fault and empty or malformed text a DEVICE fault', () => {
    expect(codeOf(() => parseW1Slave(GOOD.replace('YES', 'NO')))).toBe('CRC');
    expect(codeOf(() => parseW1Slave(''))).toBe('DEVICE');
    expect(codeOf(() => parseW1Slave('72 01 4b\n'))).toBe('DEVICE');
    expect(codeOf(() => parseW1Slave(GOOD.replace('t=23125', 't=')))).toBe('DEVICE');
  });

  it('reads the newer temperature file', () => {
    expect(parseTemperatureFile('23125\n')).toBe(23125);
    expect(parseTemperatureFile('-55000')).toBe(-55000);
    expect(codeOf(() => parseTemperatureFile(''))).toBe('DEVICE');
  });
});

describe('ds18b20 driver on a simulated w1 tree', () => {
  const ok = (rs: Reading[]) => rs.filter((r) => r.status === ReadingStatus.Ok);

  async function files() {
    tree = await SimulatedW1Tree.create({
      devices: [{ id: ID, signal: new Signal({ setPoint: -7.3, noise: 0, driftAmplitude: 0 }) }],
      updateMs: 3_600_000, // refreshed by hand
    });
    return tree.device(ID);
  }

  it('flags the 85 °C power-on value as suspect, then reads the real temperature', async () => {
    const dev = await files();
    const { readings } = await runDriver(sensor(tree!.root), {
      onReading: (r) => {
        if (r.status === ReadingStatus.Suspect) void dev.refresh();
      },
      until: (rs) => ok(rs).length >= 2,
    });
    expect(readings[0]).toMatchObject({ value: 85, status: ReadingStatus.Suspect });
    // −7.3 °C in 1/16 steps is −7.3125; the kernel truncates to whole millidegrees.
    expect(ok(readings).map((r) => r.value)).toEqual([-7.312, -7.312]);
  });

  it('flags the power-on read, and the window it lands in carries no 85 °C: counted in flags.powerOn, statistics from the measurements alone', async () => {
    const dev = await files();
    const { readings } = await runDriver(sensor(tree!.root), {
      onReading: (r) => {
        if (r.status === ReadingStatus.Suspect) void dev.refresh();
      },
      until: (rs) => ok(rs).length >= 2,
    });
    expect(readings[0]).toMatchObject({ value: 85, status: ReadingStatus.Suspect });
    // The readings as the ring hands them to the aggregation worker, in one window.
    const bodies: string[] = [];
    const agg = new Aggregator(
      [{ id: 'w1', driver: 'ds18b20', quantities: ['temperature'] }],
      {
        windowMs: 3_600_000,
        stuckCount: 1000,
        spikeZ: 3.5,
        spikeHistory: 31,
        maxBytes: 64 * 1024,
        maxDelayMs: 1000,
        raw: false,
      },
      (b) => bodies.push(b.text),
    );
    const t0 = readings[0].t;
    for (const r of readings) agg.add(0, quantityCode(r.quantity), t0, r.value, r.status);
    agg.flush();
    const windows = bodies.flatMap((b) => (JSON.parse(b) as { windows: object[] }).windows);
    expect(windows).toEqual([
      expect.objectContaining({
        count: ok(readings).length,
        min: -7.312,
        max: -7.312,
        mean: -7.312,
        last: -7.312,
        faults: 0,
        flags: { range: 0, stuck: 0, spike: 0, powerOn: 1 },
      }),
    ]);
  });

  it('counts crc NO and empty reads as faults and recovers', async () => {
    const dev = await files();
    dev.inject('crc');
    dev.inject('empty');
    await dev.refresh(); // 85 °C gone: the crc NO content is now in place
    let refreshed = 0;
    const { faults, readings } = await runDriver(sensor(tree!.root), {
      reopenAfter: 10,
      // The next round reads only once the new content is written: a round that came first
      // would read the crc NO text again.
      onReading: async (r) => {
        if (r.status === ReadingStatus.Fault && refreshed++ < 5) await dev.refresh();
      },
      until: (_rs, fs) => fs.length >= 2 && _rs[_rs.length - 1].status === ReadingStatus.Ok,
    });
    expect(faults.map((f) => f.code)).toEqual(['CRC', 'DEVICE']);
    expect(readings[readings.length - 1].value).toBe(-7.312);
  });

  it('reports DISCONNECTED when the device leaves the bus and reads again after replug', async () => {
    const dev = await files();
    await dev.refresh();
    let phase: 'before' | 'unplugged' | 'replugged' = 'before';
    const { faults, readings } = await runDriver(sensor(tree!.root), {
      intervalMs: 10,
      ticks: 500,
      onReading: (r) => {
        if (phase === 'before') {
          phase = 'unplugged';
          void dev.unplug();
        } else if (phase === 'unplugged' && r.status === ReadingStatus.Fault) {
          phase = 'replugged';
          void dev.replug();
        } else if (phase === 'replugged' && r.status === ReadingStatus.Suspect) void dev.refresh();
      },
      until: (rs) => phase === 'replugged' && rs[rs.length - 1].status === ReadingStatus.Ok,
    });
    expect(faults[0].code).toBe('DISCONNECTED');
    // Replug is a power-on: the first value is 85 °C again, flagged.
    expect(
      readings.some((r, i) => i > 0 && r.status === ReadingStatus.Suspect && r.value === 85),
    ).toBe(true);
    expect(readings[readings.length - 1].value).toBe(-7.312);
  });

  it('falls back to the temperature file when there is no w1_slave', async () => {
    const dev = await files();
    await dev.refresh();
    await rm(join(dev.dir, 'w1_slave'));
    const { readings } = await runDriver(sensor(tree!.root), {
      until: (rs) => rs.length >= 1,
    });
    expect(readings[0]).toMatchObject({ value: -7.312, status: ReadingStatus.Ok });
  });

  it('reports a device that was never there as DISCONNECTED', async () => {
    await files();
    const { faults } = await runDriver(sensor(tree!.root, '28-000000000bad'), {
      until: (_rs, fs) => fs.length >= 2,
    });
    expect(faults.map((f) => f.code)).toEqual(['DISCONNECTED', 'DISCONNECTED']);
  });

  it('reads through blocking FIFO conversions, at most `limit` at a time', async () => {
    const ids = ['28-00000000000a', '28-00000000000b', '28-00000000000c', '28-00000000000d'];
    tree = await SimulatedW1Tree.create({
      mode: 'fifo',
      conversionMs: 150,
      devices: ids.map((id, i) => ({
        id,
        signal: new Signal({ setPoint: 20 + i, noise: 0, driftAmplitude: 0 }),
      })),
    });
    const limiter = new ReadLimiter(2);
    let maxActive = 0;
    const poll = setInterval(() => (maxActive = Math.max(maxActive, limiter.active)), 5);
    try {
      const runs = await Promise.all(
        ids.map((id) =>
          runDriver(createDs18b20(config(tree!.root, id), { limiter }), {
            intervalMs: 1,
            timeoutMs: 20_000,
            until: (rs) => rs.length >= 2,
          }),
        ),
      );
      runs.forEach(({ readings, faults }, i) => {
        expect(faults).toEqual([]);
        expect(readings[0]).toMatchObject({ value: 85, status: ReadingStatus.Suspect });
        expect(readings[1]).toMatchObject({ value: 20 + i, status: ReadingStatus.Ok });
      });
    } finally {
      clearInterval(poll);
    }
    expect(maxActive).toBe(2);
    // The writers report each read over a pipe: give the last report a moment (bounded).
    const served = () => ids.reduce((n, id) => n + tree!.device(id).reads, 0);
    await waitUntil(() => served() >= 8, { timeoutMs: 10_000, what: 'eight reads reported' });
    expect(served()).toBe(8);
  });
});

describe('ReadLimiter', () => {
  it('runs at most `limit` reads at once and keeps FIFO order', async () => {
    const limiter = new ReadLimiter(2);
    const started: number[] = [];
    let active = 0;
    let max = 0;
    const release: (() => void)[] = [];
    const runs = [0, 1, 2, 3, 4].map((i) =>
      limiter.run(async () => {
        started.push(i);
        max = Math.max(max, ++active);
        await new Promise<void>((r) => release.push(r));
        active--;
        return i;
      }),
    );
    for (let i = 0; i < 50 && release.length + started.length < 10; i++) {
      await new Promise((r) => setTimeout(r, 1));
      release.shift()?.();
    }
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3, 4]);
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(max).toBe(2);
  });

  it('gives up a queued read on abort, but holds a running read’s slot until it ends', async () => {
    const limiter = new ReadLimiter(1);
    let finish!: () => void;
    const ac = new AbortController();
    const running = limiter.run(
      () => new Promise<string>((r) => (finish = () => r('late'))),
      ac.signal,
    );
    const queued = limiter.run(async () => 'never', AbortSignal.abort());
    await expect(queued).rejects.toMatchObject({ code: 'TIMEOUT' });
    ac.abort();
    await expect(running).rejects.toMatchObject({ code: 'TIMEOUT' });
    // The kernel read is still going: its slot is still taken.
    expect(limiter.active).toBe(1);
    finish();
    await new Promise((r) => setTimeout(r, 1));
    expect(limiter.active).toBe(0);
    expect(await limiter.run(async () => 'next')).toBe('next');
  });
});

describe('defaultW1Concurrency', () => {
  it('takes half the libuv pool, at least one', async () => {
    const { defaultW1Concurrency } = await import('../../../drivers/onewire/w1-limiter.js');
    expect(defaultW1Concurrency({})).toBe(2);
    expect(defaultW1Concurrency({ UV_THREADPOOL_SIZE: '8' })).toBe(4);
    expect(defaultW1Concurrency({ UV_THREADPOOL_SIZE: '1' })).toBe(1);
    expect(defaultW1Concurrency({ UV_THREADPOOL_SIZE: 'lots' })).toBe(2);
  });
});
