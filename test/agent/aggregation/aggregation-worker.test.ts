import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../helpers/wait.js';
import {
  AggregationWorker,
  type AggregatorOptions,
  type EncodedBatch,
} from '../../../agent/aggregation/aggregation-worker.js';
import { RingBuffer, type OverflowPolicy } from '../../../agent/queue/ring-buffer.js';

interface WindowJson {
  sensor: string;
  start: number;
  count: number;
  mean: number | null;
  faults: number;
}

const W = 1000;
// Timestamps a day ahead: the wall clock never closes these windows, only readings or flush.
const T0 = Math.ceil((Date.now() + 86_400_000) / W) * W;

let current: AggregationWorker | undefined;
afterEach(async () => {
  await current?.stop();
  current = undefined;
});

function start(policy: OverflowPolicy, capacity: number, extra: Partial<AggregatorOptions> = {}) {
  const ring = RingBuffer.create(capacity, policy);
  const batches: EncodedBatch[] = [];
  const errors: Error[] = [];
  const worker = AggregationWorker.start({
    ring: ring.shared,
    sensors: [
      { id: 'a', driver: 'tmp102' },
      { id: 'b', driver: 'ds18b20' },
    ],
    windowMs: W,
    stuckCount: 1_000_000,
    spikeZ: 1e9,
    spikeHistory: 31,
    maxBytes: 64 * 1024,
    maxDelayMs: 10_000,
    raw: false,
    coalesceMs: 0,
    faultInjection: true,
    checkMs: 100,
    ...extra,
  });
  current = worker;
  worker.onBatch((b) => batches.push(b));
  worker.onError((e) => errors.push(e));
  const windows = (): WindowJson[] =>
    batches.flatMap(
      (b) =>
        (JSON.parse(Buffer.from(b.body).toString('utf8')) as { windows: WindowJson[] }).windows,
    );
  return { ring, worker, batches, errors, windows };
}

describe('AggregationWorker', () => {
  it('aggregates readings from the ring into encoded batches and reports stats', async () => {
    const { ring, worker, batches, windows } = start('block', 256);
    for (let i = 0; i < 3000; i++) {
      await ring.pushAsync(i % 2, 0, T0 + (i % 1500) * 2, 20 + (i % 7), i % 10 === 9 ? 2 : 0);
    }
    await worker.flush();
    expect(batches.every((b) => b.body instanceof Uint8Array)).toBe(true);
    const ws = windows();
    expect(ws.reduce((n, w) => n + w.count, 0)).toBe(2700);
    expect(ws.reduce((n, w) => n + w.faults, 0)).toBe(300);
    expect(batches.reduce((n, b) => n + b.windows, 0)).toBe(ws.length);
    const stats = await worker.stats();
    expect(stats).toMatchObject({ readings: 2700, faults: 300, restarts: 0 });
    expect(stats.sensors.map((s) => s.id)).toEqual(['a', 'b']);
    expect(ring.counters()).toMatchObject({ written: 3000, read: 3000, dropped: 0 });
  });

  it('restarts a crashed worker on the same ring: only the dead worker’s open window is lost', async () => {
    const { ring, worker, errors, windows } = start('block', 1024);
    // Window 0 gets 500 readings; one reading in window 1 closes it (and stays open itself).
    for (let i = 0; i < 500; i++) await ring.pushAsync(0, 0, T0 + i, 1, 0);
    await ring.pushAsync(0, 0, T0 + W, 2, 0);
    await waitUntil(() => windows().some((w) => w.start === T0), {
      timeoutMs: 30_000,
      what: 'window 0 emitted',
    });
    expect(ring.counters().fill).toBe(0);

    await worker.injectFault('crash');
    await waitUntil(() => errors.length > 0, { timeoutMs: 30_000, what: 'crash reported' });
    // While the worker is dead or restarting: more than the ring holds, under block.
    for (let i = 0; i < 5000; i++) await ring.pushAsync(0, 0, T0 + 2 * W + (i % W), 3, 0);
    await worker.flush();

    expect(worker.restarts).toBe(1);
    expect(errors.map((e) => e.message).join('\n')).toMatch(/injected worker crash/);
    const byStart = new Map(windows().map((w) => [w.start, w.count]));
    expect(byStart.get(T0)).toBe(500);
    expect(byStart.has(T0 + W)).toBe(false); // the dead worker's open window: lost, as documented
    expect(byStart.get(T0 + 2 * W)).toBe(5000); // everything that waited in the ring
    expect(ring.counters()).toMatchObject({ written: 5501, read: 5501, dropped: 0 });
  });

  it('a terminated worker loses nothing that was still in the ring, and nothing twice', async () => {
    const { ring, worker, errors, windows } = start('block', 512);
    // One reading per window, value = sequence number: each window names its reading.
    const N = 4000;
    let readAtDeath = -1;
    for (let i = 0; i < N; i++) {
      await ring.pushAsync(1, 0, T0 + i * W, i, 0);
      if (i === 1500) {
        await worker.killWorker();
        readAtDeath = ring.counters().read;
      }
    }
    await waitUntil(() => errors.length > 0, { timeoutMs: 30_000, what: 'exit reported' });
    await worker.flush();
    expect(worker.restarts).toBe(1);
    const seen = windows().map((w) => w.mean!);
    expect(new Set(seen).size).toBe(seen.length); // no duplicates
    const missing = new Set(Array.from({ length: N }, (_, i) => i));
    for (const v of seen) missing.delete(v);
    // Lost readings had all been taken out of the ring by the dead worker.
    for (const v of missing) expect(v).toBeLessThan(readAtDeath);
    expect(seen.length).toBeGreaterThan(N - readAtDeath - 1);
    expect(ring.counters()).toMatchObject({ written: N, read: N });
  });

  it('detects a hung worker (no heartbeat, ring not empty), replaces it and drains the ring', async () => {
    const { ring, worker, errors, windows } = start('drop-newest', 4096, { hangMs: 1500 });
    await ring.pushAsync(0, 0, T0, 1, 0);
    await worker.flush(); // worker is up
    await worker.injectFault('hang', 30_000);
    expect(worker.isDraining()).toBe(true); // nothing to drain yet: not a failure
    for (let i = 0; i < 1000; i++) ring.push(0, 0, T0 + W + i, 2, 0);
    await waitUntil(() => worker.restarts === 1, { timeoutMs: 20_000, what: 'hang detected' });
    await worker.flush();
    expect(errors.map((e) => e.message).join('\n')).toMatch(/stopped draining/);
    const byStart = new Map(windows().map((w) => [w.start, w.count]));
    expect(byStart.get(T0 + W)).toBe(1000);
    expect(ring.counters()).toMatchObject({ written: 1001, read: 1001, dropped: 0 });
    expect(worker.isDraining()).toBe(true);
  });

  it('applies a sensor list update without losing the unchanged sensors’ windows', async () => {
    const { ring, worker, windows } = start('block', 256);
    await ring.pushAsync(0, 0, T0, 1, 0);
    await ring.pushAsync(1, 0, T0, 2, 0);
    // b stays at index 1 (its driver changed: it starts a fresh window), c is new at index 2.
    await worker.updateSensors([
      { id: 'a', driver: 'tmp102' },
      { id: 'b', driver: 'lm75' },
      { id: 'c', driver: 'lm75' },
    ]);
    await ring.pushAsync(0, 0, T0 + 1, 3, 0);
    await ring.pushAsync(1, 0, T0 + 1, 4, 0);
    await ring.pushAsync(2, 0, T0 + 1, 5, 0);
    await worker.flush();
    const counts = windows()
      .map((w) => `${w.sensor}:${w.count}`)
      .sort();
    expect(counts).toEqual(['a:2', 'b:1', 'b:1', 'c:1']);
    expect((await worker.stats()).unknownSensor).toBe(0);
  });
});
