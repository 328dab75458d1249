/**
 * The Sparkplug node inside the whole agent (Pipeline.start against a real mosquitto): the
 * worker's windows reach it, and a reload that adds a sensor is announced by a new NBIRTH
 * before any NDATA carries the new metric (NDATA may only name metrics of the last NBIRTH).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig, type ConfigInput } from '../../../../agent/config/load.js';
import { startSimPipeline, type SimPipeline } from '../../../helpers/sim-pipeline.js';
import { startSubscriber } from '../../../helpers/subscriber.js';
import { nodeMessages } from './sparkplug-messages.js';

let sim: SimPipeline | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

describe('Sparkplug in the pipeline', () => {
  it('publishes the sensors windows as NDATA and rebirths with a sensor added by a reload before its first NDATA', async () => {
    sim = await startSimPipeline({
      sensors: 2,
      config: {
        aggregation: { windowMs: 200 },
        sparkplug: { enabled: true, groupId: 'plant' },
      },
      sensor: { intervalMs: 50 },
    });
    const sub = await startSubscriber({ url: sim.broker.url, topics: ['spBv1.0/#'] });
    try {
      const dataNames = () =>
        nodeMessages(sub.messages)
          .filter((m) => m.type === 'NDATA')
          .flatMap((m) => m.metrics.map((x) => x.name));
      await sub.waitFor(
        () => dataNames().includes('http-1/temperature'),
        60_000,
        'NDATA of http-1',
      );

      // http-1 leaves, "late" reads its endpoint: a metric the last NBIRTH did not announce.
      const current = sim.pipeline.currentConfig;
      const next = validateConfig(
        {
          ...current,
          sensors: current.sensors.map((s) => (s.id === 'http-1' ? { ...s, id: 'late' } : s)),
        } as ConfigInput,
        'test',
      );
      await sim.pipeline.reload(next);
      await sub.waitFor(() => dataNames().includes('late/temperature'), 60_000, 'NDATA of late');

      const all = nodeMessages(sub.messages);
      const firstLate = all.findIndex(
        (m) => m.type === 'NDATA' && m.metrics.some((x) => x.name === 'late/temperature'),
      );
      const births = all.slice(0, firstLate).flatMap((m, i) => (m.type === 'NBIRTH' ? [i] : []));
      expect(births.length).toBeGreaterThan(0);
      const rebirth = all[births.at(-1)!];
      expect(rebirth.metrics.map((x) => x.name)).toEqual(
        expect.arrayContaining(['bdSeq', 'http-0/temperature', 'late/temperature']),
      );
      // After the NBIRTH (seq 0) the NDATA count on from 1 without a gap.
      const after = all.slice(births.at(-1)!, firstLate + 1).map((m) => m.seq);
      expect(after).toEqual(after.map((_, i) => i % 256));
    } finally {
      await sub.close();
    }
  });
});
