import { describe, expect, it } from 'vitest';
import { DelayLine } from '../../../simulator/network/delay-line.js';

/** Resolves when `n` fires were recorded, bounded by a timeout. */
function collect(n: number, timeoutMs = 5000) {
  const fired: { id: number; at: number }[] = [];
  let done!: () => void;
  const all = new Promise<void>((resolve, reject) => {
    done = resolve;
    setTimeout(() => reject(new Error(`only ${fired.length}/${n} fired`)), timeoutMs).unref();
  });
  const record = (id: number) => () => {
    fired.push({ id, at: performance.now() });
    if (fired.length === n) done();
  };
  return { fired, all, record };
}

describe('DelayLine', () => {
  it('fires each reply no earlier than delayMs after it was added, in arrival order', async () => {
    const line = new DelayLine(15);
    const { fired, all, record } = collect(6);
    const added: number[] = [];
    for (let i = 0; i < 6; i++) {
      added.push(performance.now());
      line.add(record(i));
      await new Promise((r) => setTimeout(r, 3));
    }
    await all;
    expect(fired.map((f) => f.id)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const f of fired) expect(f.at - added[f.id]).toBeGreaterThanOrEqual(15);
    expect(line.pending).toBe(0);
  });

  it('with many waiting (the plain-timer mode) still fires every one, never early', async () => {
    const line = new DelayLine(5);
    const n = 500;
    const { fired, all, record } = collect(n);
    const added = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      added[i] = performance.now();
      line.add(record(i));
    }
    expect(line.pending).toBe(n);
    await all;
    expect(fired.map((f) => f.id)).toEqual(Array.from({ length: n }, (_, i) => i));
    for (const f of fired) expect(f.at - added[f.id]).toBeGreaterThanOrEqual(5);
  });

  it('a cancelled reply never fires; the others still do', async () => {
    const line = new DelayLine(5);
    const { fired, all, record } = collect(2);
    line.add(record(0));
    const dropped = line.add(record(1));
    line.add(record(2));
    line.cancel(dropped);
    // Replies fire in the order they were added: the cancelled one's turn came before 2's.
    await all;
    expect(fired.map((f) => f.id)).toEqual([0, 2]);
  });

  it('clear() drops everything waiting', async () => {
    const line = new DelayLine(5);
    let fires = 0;
    for (let i = 0; i < 40; i++) line.add(() => fires++);
    line.clear();
    expect(line.pending).toBe(0);
    // A reply added after the clear fires after the turn of every cleared one.
    const { all, record } = collect(1);
    line.add(record(0));
    await all;
    expect(fires).toBe(0);
  });

  it('a reply added from inside a fire waits its own full delay', async () => {
    const line = new DelayLine(10);
    const { fired, all, record } = collect(2);
    let addedAt = 0;
    line.add(() => {
      record(0)();
      addedAt = performance.now();
      line.add(record(1));
    });
    await all;
    expect(fired[1].at - addedAt).toBeGreaterThanOrEqual(10);
  });
});
