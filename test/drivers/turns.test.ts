import { describe, expect, it } from 'vitest';
import { Turns } from '../../drivers/turns.js';
import { sleepUntil } from '../../drivers/time.js';

/** A task that records when it held the turn and finishes when told. */
function task(log: string[], name: string) {
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  return {
    finish,
    fn: async () => {
      log.push(`${name}+`);
      await done;
      log.push(`${name}-`);
      return name;
    },
  };
}

const turn = () => new Promise<void>((r) => setImmediate(r));

describe('Turns', () => {
  it('one holder at a time, equal priorities in arrival order', async () => {
    const turns = new Turns();
    const log: string[] = [];
    const tasks = ['a', 'b', 'c'].map((n) => task(log, n));
    const runs = tasks.map((t) => turns.run(t.fn));
    expect(turns.depth).toBe(3);
    for (const t of tasks) {
      await turn();
      t.finish();
    }
    expect(await Promise.all(runs)).toEqual(['a', 'b', 'c']);
    expect(log).toEqual(['a+', 'a-', 'b+', 'b-', 'c+', 'c-']);
    expect(turns.depth).toBe(0);
  });

  it('a waiter of higher priority goes before earlier waiters, never before the holder', async () => {
    const turns = new Turns();
    const log: string[] = [];
    const holder = task(log, 'holder');
    const read = task(log, 'read');
    const start = task(log, 'start');
    const held = turns.run(holder.fn);
    await turn(); // the holder has the turn before the others ask
    const runs = [held, turns.run(read.fn, 0), turns.run(start.fn, 26)]; // the start asks last
    await turn();
    holder.finish();
    await turn();
    start.finish();
    await turn();
    read.finish();
    await Promise.all(runs);
    expect(log).toEqual(['holder+', 'holder-', 'start+', 'start-', 'read+', 'read-']);
  });

  it('callers asking in one synchronous run compete on priority even for a free turn', async () => {
    const turns = new Turns();
    const log: string[] = [];
    await turns.run(async () => undefined, 26); // an earlier slot: the wire's longest is 26
    const read = task(log, 'read');
    const mid = task(log, 'mid');
    const start = task(log, 'start');
    // As in a slot: the read's round happened to start first, on a free wire.
    const runs = [turns.run(read.fn, 0), turns.run(mid.fn, 15), turns.run(start.fn, 26)];
    await turn();
    start.finish();
    await turn();
    mid.finish();
    await turn();
    read.finish();
    await Promise.all(runs);
    expect(log).toEqual(['start+', 'start-', 'mid+', 'mid-', 'read+', 'read-']);
  });

  it('only the highest priority the turn has seen takes a free turn at once', async () => {
    const turns = new Turns();
    const log: string[] = [];
    const first = task(log, 'first');
    const runs = [turns.run(first.fn, 26)];
    expect(log).toEqual(['first+']); // in the caller's own synchronous run
    first.finish();
    await Promise.all(runs);
    const lower = task(log, 'lower');
    runs.push(turns.run(lower.fn, 15));
    expect(log).toEqual(['first+', 'first-']); // waits for the end of the run
    await turn();
    expect(log).toEqual(['first+', 'first-', 'lower+']);
    lower.finish();
    await Promise.all(runs);
  });

  it('a caller alone on a free turn gets it without waiting for a timer turn', async () => {
    const turns = new Turns();
    let ran = false;
    const done = turns.run(async () => (ran = true));
    await Promise.resolve(); // one microtask for the grant, one for the promise
    await Promise.resolve();
    expect(ran).toBe(true);
    await done;
  });

  it('a failing holder hands the turn on', async () => {
    const turns = new Turns();
    const failed = turns.run(() => Promise.reject(new Error('EIO')));
    const next = turns.run(async () => 'next');
    await expect(failed).rejects.toThrow('EIO');
    expect(await next).toBe('next');
    expect(turns.depth).toBe(0);
  });
});

describe('sleepUntil', () => {
  it('never resolves before the time it was given', async () => {
    for (const ms of [0.3, 1.2, 2.5, 7.4]) {
      const until = performance.now() + ms;
      await sleepUntil(until);
      expect(performance.now()).toBeGreaterThanOrEqual(until);
    }
  });

  it('resolves at once for a time already past', async () => {
    let done = false;
    const p = sleepUntil(performance.now() - 5).then(() => (done = true));
    await Promise.resolve();
    await Promise.resolve();
    expect(done).toBe(true);
    await p;
  });

  it('rejects with the reason when aborted, in its timer or in its tail', async () => {
    for (const ms of [50, 1]) {
      const controller = new AbortController();
      const waiting = sleepUntil(performance.now() + ms, controller.signal);
      controller.abort(new Error('stop'));
      await expect(waiting).rejects.toThrow('stop');
    }
    const aborted = AbortSignal.abort(new Error('already'));
    await expect(sleepUntil(performance.now() + 10, aborted)).rejects.toThrow('already');
  });
});
