/**
 * The spool's age bound counts elapsed time: a wall clock set late (a Pi that booted without
 * NTP) neither drops the backlog when it steps to the right time nor keeps it forever after
 * a step back. Wall and monotonic clocks are separate, controllable functions here.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool } from '../../../agent/publish/spool/spool.js';
import { AgeClock, WALL_FLOOR } from '../../../agent/publish/spool/age-clock.js';
import { silentLogger } from '../../../agent/ops/logger.js';

const body = (n: number) => new Uint8Array(100).fill(48 + (n % 10));
const Y2020 = Date.UTC(2020, 0, 1);
const NOW = Date.UTC(2026, 2, 1);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'spool-age-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function clocks(wall0: number) {
  const c = { wall: wall0, mono: 1000 };
  const advance = (ms: number) => {
    c.wall += ms;
    c.mono += ms;
  };
  const options = {
    maxBytes: 1 << 20,
    maxAgeSec: 60,
    now: () => c.wall,
    monotonic: () => c.mono,
  };
  return { c, advance, options };
}

describe('spool age bound across clock steps', () => {
  it('a backlog spooled at 2020 is not dropped when the clock steps to now; it ages by elapsed time', async () => {
    const { c, advance, options } = clocks(Y2020);
    const spool = Spool.open(dir, options, silentLogger);
    for (let i = 0; i < 10; i++) {
      await spool.append(body(i), c.wall);
      advance(2000);
    }
    c.wall = NOW; // NTP
    advance(1000);
    await spool.append(body(10), c.wall);
    expect(spool.stats()).toMatchObject({ depth: 11, dropped: 0, oldestAgeMs: 21_000 });
    // Elapsed time still counts: past maxAgeSec the oldest go.
    advance(45_000);
    await spool.append(body(11), c.wall);
    expect(spool.stats().dropped).toBe(3);
    expect(spool.peek(0, 100)[0].seq).toBe(4);
    spool.close();
  });

  it('a step back does not keep the backlog past its age', async () => {
    const { c, advance, options } = clocks(NOW);
    const spool = Spool.open(dir, options, silentLogger);
    await spool.append(body(0), c.wall);
    c.wall -= 3_600_000;
    advance(61_000);
    await spool.append(body(1), c.wall);
    expect(spool.peek(0, 10).map((b) => b.seq)).toEqual([2]);
    spool.close();
  });

  it('across a restart: the downtime counts when the wall clock is plausible, not when it was unset', async () => {
    {
      const { c, advance, options } = clocks(NOW);
      const spool = Spool.open(dir, options, silentLogger);
      await spool.append(body(0), c.wall);
      advance(10_000);
      await spool.append(body(1), c.wall);
      spool.close();
      // Down for 20 s by a set clock: ages go on from 10 s.
      const again = clocks(c.wall + 20_000);
      const reopened = Spool.open(dir, again.options, silentLogger);
      expect(reopened.stats().oldestAgeMs).toBe(30_000);
      reopened.close();
    }
    rmSync(dir, { recursive: true, force: true });
    {
      // Spooled with the clock at 2020 (below WALL_FLOOR), started again after NTP set it.
      const { c, advance, options } = clocks(Y2020);
      const spool = Spool.open(dir, options, silentLogger);
      await spool.append(body(0), c.wall);
      advance(10_000);
      await spool.append(body(1), c.wall);
      spool.close();
      const again = clocks(NOW);
      const reopened = Spool.open(dir, again.options, silentLogger);
      expect(reopened.stats()).toMatchObject({ depth: 2, dropped: 0, oldestAgeMs: 10_000 });
      again.advance(51_000);
      await reopened.append(body(2), again.c.wall);
      expect(reopened.peek(0, 10).map((b) => b.seq)).toEqual([2, 3]);
      reopened.close();
    }
  });

  it('on the same boot, the downtime comes from the monotonic clock whatever the wall clock says', () => {
    let mono = 5000;
    let wall = Y2020;
    const boot = () => ({ id: 'boot-1', ms: mono });
    const a = new AgeClock({ wall: () => wall, mono: () => mono, boot });
    a.stamp(1);
    mono += 7000;
    wall += 7000;
    const saved = a.save();
    mono += 4000; // down 4 s; NTP meanwhile
    wall = NOW;
    const b = new AgeClock({ wall: () => wall, mono: () => mono, boot });
    b.resume(saved);
    expect(b.ageOf(1, Y2020)).toBe(11_000);
    // Another boot with an implausible saved wall time: the downtime is not known, not counted.
    const c = new AgeClock({
      wall: () => wall,
      mono: () => 0,
      boot: () => ({ id: 'boot-2', ms: 0 }),
    });
    c.resume(saved);
    expect(c.ageOf(1, Y2020)).toBe(7000);
    expect(Y2020).toBeLessThan(WALL_FLOOR);
  });
});
