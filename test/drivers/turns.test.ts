import { describe, expect, it } from 'vitest';
import { Turns } from '../../drivers/turns.js';

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
    const runs = [
      turns.run(holder.fn),
      turns.run(read.fn, 0),
      turns.run(start.fn, 26), // a conversion start, queued last
    ];
    await turn();
    holder.finish();
    await turn();
    start.finish();
    await turn();
    read.finish();
    await Promise.all(runs);
    expect(log).toEqual(['holder+', 'holder-', 'start+', 'start-', 'read+', 'read-']);
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
