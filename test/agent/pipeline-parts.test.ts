import { describe, expect, it } from 'vitest';
import { Aggregator } from '../../agent/aggregation/aggregator.js';
import { validateConfig } from '../../agent/config/load.js';
import { reloadedSensors, workerOptions } from '../../agent/pipeline-parts.js';
import { silentLogger } from '../../agent/ops/logger.js';
import { RingBuffer } from '../../agent/queue/ring-buffer.js';
import { ReadingStatus } from '../../drivers/types.js';
import { rig } from '../helpers/run-driver.js';

describe('the sensors the aggregation worker is told about', () => {
  it("flag a temperature outside the configured range, else outside the chip's datasheet range", () => {
    const cfg = validateConfig({
      gateway: { id: 'gw-1' },
      sensors: [
        { id: 'chip', driver: 'tmp102' }, // TMP102: -55..150 °C
        { id: 'narrowed', driver: 'tmp102', address: 0x49, range: { min: 0, max: 50 } },
        { id: 'web', driver: 'http-json', url: 'http://127.0.0.1:1/t', path: 't' }, // no chip
      ],
    });
    const options = workerOptions(cfg, RingBuffer.create(16, 'drop-oldest'), cfg.sensors);
    expect(options.sensors.map((s) => s?.range)).toEqual([
      { min: -55, max: 150 },
      { min: 0, max: 50 },
      undefined,
    ]);

    const agg = new Aggregator(options.sensors, { ...options, stuckCount: 1000 }, () => {});
    for (const index of [0, 1, 2]) {
      for (const value of [20, 100, 151]) agg.add(index, 0, 5000, value, ReadingStatus.Ok);
    }
    agg.flush();
    expect(agg.stats().sensors.map((s) => s.flags.range)).toEqual([1, 2, 0]);
  });
});

describe('the sensors a reload gives the sampler and the worker', () => {
  const web = (id: string, enabled = true) => ({
    id,
    driver: 'http-json',
    url: 'http://127.0.0.1:1/t',
    path: 't',
    enabled,
  });

  it('number a new sensor after the others and keep a removed one as a series of its own', async () => {
    const hw = rig();
    try {
      const index = new Map([
        ['a', 0],
        ['b', 1],
      ]);
      const next = validateConfig({
        gateway: { id: 'gw-1' },
        sensors: [web('c'), web('a'), web('b', false)],
      });
      const { sampled, series } = await reloadedSensors(next, index, hw.seams, silentLogger);
      expect(sampled.map((s) => [s.id, s.index])).toEqual([
        ['c', 2],
        ['a', 0],
      ]);
      expect(series.map((s) => [s.id, s.driver])).toEqual([
        ['a', 'http-json'],
        ['b', 'removed'],
        ['c', 'http-json'],
      ]);
      expect(index.get('c')).toBe(2);
    } finally {
      await hw.close();
    }
  });
});
