import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Worker } from 'node:worker_threads';
import { RingBuffer, type OverflowPolicy } from '../../../agent/queue/ring-buffer.js';
import { waitUntil } from '../../helpers/wait.js';
import { spawnTsWorker } from './fixtures/spawn-ts-worker.js';

interface Rec {
  s: number;
  q: number;
  t: number;
  v: number;
  st: number;
}

const drainAll = (ring: RingBuffer, max = Number.MAX_SAFE_INTEGER): Rec[] => {
  const out: Rec[] = [];
  ring.drain(max, (s, q, t, v, st) => out.push({ s, q, t, v, st }));
  return out;
};

/** Reference model of the ring: a bounded FIFO with the same overflow rules. */
class Model {
  items: number[] = [];
  dropped = 0;
  constructor(
    readonly capacity: number,
    readonly policy: OverflowPolicy,
  ) {}
  push(x: number): boolean {
    if (this.items.length === this.capacity) {
      if (this.policy === 'block') return false;
      this.dropped++;
      if (this.policy === 'drop-newest') return false;
      this.items.shift();
    }
    this.items.push(x);
    return true;
  }
  drain(max: number): number[] {
    return this.items.splice(0, max);
  }
}

const policies: OverflowPolicy[] = ['drop-oldest', 'drop-newest', 'block'];
type Op = { kind: 'push'; n: number } | { kind: 'drain'; max: number };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('push' as const), n: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('drain' as const), max: fc.integer({ min: 1, max: 40 }) }),
);

describe('RingBuffer (single thread, against a model)', () => {
  it('rejects capacities that are not powers of two', () => {
    expect(() => RingBuffer.create(100, 'block')).toThrow(/power of two/);
    expect(() => RingBuffer.create(0, 'block')).toThrow(RangeError);
  });

  it('keeps order, wraps around and counts drops exactly under every policy', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...policies),
        fc.constantFrom(2, 4, 8, 16, 32),
        fc.array(opArb, { maxLength: 60 }),
        (policy, capacity, ops) => {
          const ring = RingBuffer.create(capacity, policy);
          const model = new Model(capacity, policy);
          let seq = 0;
          let attempted = 0;
          for (const op of ops) {
            if (op.kind === 'push') {
              for (let i = 0; i < op.n; i++, seq++) {
                const stored = ring.push(seq % 7, seq % 3, seq * 10, seq + 0.5, seq % 2);
                expect(stored).toBe(model.push(seq));
                if (policy !== 'block' || stored) attempted++;
              }
            } else {
              const got = drainAll(ring, op.max);
              const want = model.drain(op.max);
              expect(got.map((r) => r.v - 0.5)).toEqual(want);
              for (const r of got) {
                const k = r.v - 0.5;
                expect(r).toEqual({ s: k % 7, q: k % 3, t: k * 10, v: k + 0.5, st: k % 2 });
              }
            }
            const c = ring.counters();
            expect(c.fill).toBe(model.items.length);
            expect(c.dropped).toBe(model.dropped);
            expect(c.read + c.dropped + c.fill).toBe(attempted);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('wraps its 32-bit indices past 2^32 without losing order or the written count', () => {
    const ring = RingBuffer.create(8, 'drop-oldest');
    const ctrl = new Int32Array(ring.shared, 0, 128);
    // Start both indices just below 2^32 (head at Int32 slot 16, tail at 32: see layout).
    ctrl[16] = -3;
    ctrl[32] = -3;
    const out: number[] = [];
    for (let i = 0; i < 20; i++) {
      ring.push(1, 0, i, i, 0);
      if (i % 3 === 2) ring.drain(2, (_s, _q, t) => out.push(t));
    }
    ring.drain(100, (_s, _q, t) => out.push(t));
    const c = ring.counters();
    expect(c.written).toBe(2 ** 32 - 3 + 20);
    expect(c.fill).toBe(0);
    // In order, and what is missing is exactly what was dropped.
    expect([...out].sort((a, b) => a - b)).toEqual(out);
    expect(out.length + c.dropped).toBe(20);
    expect(out.at(-1)).toBe(19);
  });

  it('block: pushAsync waits without blocking the event loop until the consumer frees space', async () => {
    const ring = RingBuffer.create(4, 'block');
    for (let i = 0; i < 4; i++) expect(ring.push(0, 0, i, i, 0)).toBe(true);
    expect(ring.push(0, 0, 4, 4, 0)).toBe(false);
    let resolved = false;
    const pending = ring.pushAsync(0, 0, 4, 4, 0).then(() => (resolved = true));
    // The event loop keeps running while the producer waits.
    let ticks = 0;
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setImmediate(r));
      ticks++;
    }
    expect(ticks).toBe(5);
    expect(resolved).toBe(false);
    expect(drainAll(ring, 1).map((r) => r.t)).toEqual([0]);
    await pending;
    expect(drainAll(ring).map((r) => r.t)).toEqual([1, 2, 3, 4]);
    expect(ring.counters()).toMatchObject({ written: 5, read: 5, dropped: 0 });
  });

  it('attach() sees the same records and counters (a restarted consumer continues)', () => {
    const a = RingBuffer.create(16, 'drop-newest');
    for (let i = 0; i < 5; i++) a.push(2, 1, i, i, 0);
    a.drain(2, () => undefined);
    const b = RingBuffer.attach(a.shared);
    expect(b.counters()).toEqual(a.counters());
    expect(drainAll(b).map((r) => r.t)).toEqual([2, 3, 4]);
    expect(a.counters().read).toBe(5);
  });

  it('waitForData returns at once when data is there and after the timeout when not', () => {
    const ring = RingBuffer.create(4, 'block');
    expect(ring.waitForData(1)).toBe(false);
    ring.push(0, 0, 0, 0, 0);
    expect(ring.waitForData(10_000)).toBe(true);
  });
});

describe('RingBuffer across threads (real Worker consumer)', () => {
  let worker: Worker | undefined;
  afterEach(async () => {
    await worker?.terminate();
    worker = undefined;
  });

  it('a consumer sleeping in waitForFill is woken by the push that reaches its mark, not before', async () => {
    const ring = RingBuffer.create(64, 'drop-newest');
    worker = spawnTsWorker(new URL('./fixtures/ring-sleeper.ts', import.meta.url), {
      sab: ring.shared,
      mark: 8,
    });
    const messages: unknown[] = [];
    worker.on('message', (m) => messages.push(m));
    const errored = new Promise((_, reject) => worker!.once('error', reject));
    await Promise.race([waitUntil(() => ring.consumerWaiting() === 8), errored]);
    for (let i = 0; i < 7; i++) ring.push(i, 0, i, i, 0);
    // Below the mark no push woke it: the push that wakes the consumer is the one that clears
    // its mark, and none did.
    expect(ring.consumerWaiting()).toBe(8);
    ring.push(7, 0, 7, 7, 0);
    expect(ring.consumerWaiting()).toBe(0);
    await Promise.race([waitUntil(() => messages.length === 2, { timeoutMs: 20_000 }), errored]);
    expect(messages[1]).toEqual({ data: true, fill: 8 });
  }, 60_000);

  const N = 200_000;
  it.each(
    policies.flatMap((policy) => [
      { policy, sleep: 'waitForData' },
      { policy, sleep: 'waitForFill' },
    ]),
  )(
    '$policy, consumer sleeping in $sleep: no torn or reordered record, and missing == dropped',
    async ({ policy, sleep }) => {
      const ring = RingBuffer.create(64, policy);
      worker = spawnTsWorker(new URL('./fixtures/ring-consumer.ts', import.meta.url), {
        sab: ring.shared,
        chunk: 32,
        work: 300,
        fillMark: sleep === 'waitForFill' ? 32 : undefined,
      });
      await new Promise((resolve, reject) => {
        worker!.once('message', resolve);
        worker!.once('error', reject);
      });
      const result = new Promise<{
        received: number;
        torn: number;
        outOfOrder: number;
        missing: number;
        last: number;
        done: boolean;
      }>((resolve, reject) => {
        worker!.once('message', resolve);
        worker!.once('error', reject);
      });
      for (let s = 0; s < N; s++) {
        const q = s & 0xffff;
        const st = (s & 0xff) % 3;
        if (!ring.push(s, q, s * 2, s + 0.25, st)) {
          if (policy === 'block') await ring.pushAsync(s, q, s * 2, s + 0.25, st);
        }
        // Bursts and pauses: the consumer both keeps up and falls behind (overflow).
        if (s % 500 === 0) await new Promise((r) => setImmediate(r));
      }
      // End marker: retried until stored (drop-newest refuses it while full).
      const deadline = Date.now() + 30_000;
      let markerRefused = 0;
      while (!ring.push(0xffffffff, 0, 0, 0, 0) && Date.now() < deadline) {
        markerRefused++;
        await new Promise((r) => setTimeout(r, 5));
      }
      const r = await result;
      const c = ring.counters();
      // drop-newest counts each refused marker push as a drop too.
      if (policy === 'drop-newest') c.dropped -= markerRefused;
      expect(r.done).toBe(true);
      expect(r.torn).toBe(0);
      expect(r.outOfOrder).toBe(0);
      if (policy === 'block') {
        expect(c.dropped).toBe(0);
        expect(r.received).toBe(N);
      } else {
        // Every reading is either received or counted as dropped (the marker is neither).
        expect(c.dropped).toBeGreaterThan(0);
        expect(r.received + c.dropped).toBe(N);
        expect(r.missing + (N - 1 - r.last)).toBe(c.dropped);
      }
    },
    60_000,
  );
});
