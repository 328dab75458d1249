/**
 * What a subscriber sees of a sensor that fails for several windows: a window for every
 * period, through the outage (count 0, its faults, state failing or backoff) and after it
 * (values again). The whole agent runs; the fault is injected in the simulated device.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sleep } from '../../helpers/wait.js';
import { startSimPipeline, type SimPipeline } from '../../helpers/sim-pipeline.js';
import { schemaErrors, validateTelemetry } from '../publish/schemas.js';

interface WindowJson {
  sensor: string;
  quantity: string;
  start: number;
  end: number;
  count: number;
  mean: number | null;
  faults: number;
  state: string;
}

const WINDOW_MS = 200;
const OUTAGE_MS = 3000;
const TIMEOUT_MS = 250;

let sim: SimPipeline | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

describe('windows of a failing sensor', () => {
  it('every period has a window during a device outage: count 0 with faults and state, values again after', async () => {
    sim = await startSimPipeline({
      sensors: 1,
      config: { aggregation: { windowMs: WINDOW_MS } },
      // The backoff climbs 250, 500, 1000 ms and stays there: most outage periods see no round.
      sensor: { intervalMs: 50, timeoutMs: TIMEOUT_MS, backoffMaxMs: 1000 },
    });
    const { subscriber, http } = sim;
    const id = sim.sensorId(0);
    const windows = () =>
      subscriber
        .on('/telemetry')
        .flatMap((m) => (m.json!.windows as WindowJson[]).filter((w) => w.sensor === id));

    await subscriber.waitFor(
      () => windows().some((w) => w.count > 0),
      20_000,
      'a window with values',
    );
    const outageFrom = Date.now();
    http.inject(0, 'http-500');
    await sleep(OUTAGE_MS);
    const outageTo = Date.now();
    http.inject(0, null);
    await subscriber.waitFor(
      () => windows().some((w) => w.start >= outageTo && w.state === 'ok'),
      20_000,
      'values again after the outage',
    );
    await sim.close();

    for (const m of subscriber.on('/telemetry'))
      expect(schemaErrors(validateTelemetry, m.json)).toBe('');
    const all = windows();
    const byStart = new Map(all.map((w) => [w.start, w]));
    const starts = [...byStart.keys()].sort((a, b) => a - b);
    // No period is missing between the first and the last window, outage included.
    const missing: number[] = [];
    for (let p = starts[0]; p <= starts.at(-1)!; p += WINDOW_MS) {
      if (!byStart.has(p)) missing.push(p);
    }
    expect(missing).toEqual([]);
    expect(starts[0]).toBeLessThan(outageFrom);
    expect(starts.at(-1)!).toBeGreaterThanOrEqual(outageTo);

    // Periods inside the outage, up to the last moment a round that started before the
    // device recovered could still have succeeded (its timeout): no values, a state saying why.
    const inside = all.filter((w) => w.start >= outageFrom && w.end <= outageTo - TIMEOUT_MS);
    expect(inside.length).toBeGreaterThan(0);
    for (const w of inside) {
      expect(w).toMatchObject({ count: 0, mean: null });
      expect(['failing', 'backoff']).toContain(w.state);
      expect(w.state === 'failing').toBe(w.faults > 0);
    }
    expect(inside.some((w) => w.faults > 0)).toBe(true);
    // The backoff (1 s) outlasts a window, so some periods saw no round at all.
    expect(inside.some((w) => w.state === 'backoff')).toBe(true);
    // Values again after the outage, reported as ok.
    const after = all.find((w) => w.start >= outageTo && w.state === 'ok')!;
    expect(after.count).toBeGreaterThan(0);
    expect(after.mean).not.toBeNull();
  });
});
