/**
 * The spool's disk failover driven through its store parameter: a real SQLite store that
 * fails on command (failing-store.ts), so every path — writes refused, an open refused,
 * corruption reported while running — runs without a mount. The tmpfs and ext4 tests
 * (spool-disk.test.ts, test/chaos/disk.test.ts) drive the same paths with real faults.
 */
import { readdirSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../../../agent/ops/logger.js';
import { DISK_RETRY_MS, REOPEN_MS, Spool } from '../../../../agent/publish/spool/spool.js';
import { SPOOL_FILE } from '../../../../agent/publish/spool/sqlite-store.js';
import { capturingLogger } from '../../../helpers/logger.js';
import { useTeardown } from '../../../helpers/teardown.js';
import { FailingStore, failingStores } from './failing-store.js';

const BIG = { maxBytes: 64 * 1024 * 1024, maxAgeSec: 3600 };
const body = (n: number) => Buffer.alloc(100, n);

const t = useTeardown();
let dir: string;
beforeEach(() => {
  dir = t.tempDir('spool-failover-');
});
afterEach(() => {
  vi.useRealTimers();
});

/** A spool on a FailingStore; `now` drives its wall and monotonic clocks. */
function openFailing(
  clock: { now: number },
  logger = silentLogger,
  initially?: FailingStore['fail'],
) {
  const stores = failingStores(initially);
  const spool = t.own(Spool.open(dir, { ...BIG, now: () => clock.now }, logger, stores.open));
  return { spool, store: stores.last() };
}

describe('Spool failover, driven by a store that fails on command', () => {
  it('writes refused: batches are kept in memory and published on reserved seqs, then moved back to the database', async () => {
    const clock = { now: Date.now() };
    const { logger, records } = capturingLogger();
    const { spool, store } = openFailing(clock, logger);
    expect([
      await spool.append(body(1), clock.now),
      await spool.append(body(2), clock.now),
    ]).toEqual([1, 2]);
    store.fail = 'writes';
    expect(await spool.append(body(3), clock.now)).toBe(3);
    expect(await spool.append(body(4), clock.now)).toBe(4);
    expect(spool.stats()).toMatchObject({ diskOk: false, memoryDepth: 2, depth: 4 });
    // Within the mark's reserve, memory batches are handed out like stored ones.
    expect(spool.peek(0, 10).map((b) => b.seq)).toEqual([1, 2, 3, 4]);
    const failure = records.find((r) => r.msg.startsWith('SPOOL DISK FAILURE'));
    expect(failure).toMatchObject({ code: 'ENOSPC' });
    expect(failure?.stack).toBeUndefined();

    // Published and acknowledged from memory: settled, not counted as lost.
    spool.ack(3);
    store.fail = 'nothing';
    clock.now += DISK_RETRY_MS;
    expect(await spool.append(body(5), clock.now)).toBe(5);
    spool.commit();
    expect(spool.stats()).toMatchObject({ diskOk: true, memoryDepth: 0, depth: 4, dropped: 0 });
    expect(records.some((r) => r.msg === 'spool disk works again')).toBe(true);
    spool.close();

    // Every seq not acknowledged is in the database, with its bytes; nothing was skipped.
    const again = t.own(Spool.open(dir, BIG, silentLogger));
    const kept = again.peek(0, 10);
    expect(kept.map((b) => [b.seq, b.body[0]])).toEqual([
      [1, 1],
      [2, 2],
      [4, 4],
      [5, 5],
    ]);
    expect(kept.every((b) => b.gapBefore === undefined)).toBe(true);
    expect(await again.append(body(6), Date.now())).toBe(6);
    expect(again.stats().dropped).toBe(0);
  });

  it('open refused: numbering continues after the seq mark, memory batches are published, and the database is adopted when it opens', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const clock = { now: Date.now() };
    // Five batches, all acknowledged, stopped cleanly: the mark's ceiling is 5.
    const first = Spool.open(dir, BIG, silentLogger);
    for (let i = 1; i <= 5; i++) void first.append(body(i), Date.now());
    first.commit();
    for (let i = 1; i <= 5; i++) first.ack(i);
    first.close();

    const { spool, store } = openFailing(clock, silentLogger, 'open');
    expect(spool.stats()).toMatchObject({ diskOk: false });
    expect(await spool.append(body(6), clock.now)).toBe(6);
    expect(spool.peek(0, 10).map((b) => b.seq)).toEqual([6]);

    store.fail = 'nothing';
    clock.now += REOPEN_MS;
    await vi.advanceTimersByTimeAsync(DISK_RETRY_MS);
    expect(spool.stats()).toMatchObject({ diskOk: true, memoryDepth: 0, depth: 1, dropped: 0 });
    expect(store.opens).toBeGreaterThanOrEqual(2);
    expect(await spool.append(body(7), clock.now)).toBe(7);
    spool.commit();
    expect(spool.peek(0, 10).map((b) => b.seq)).toEqual([6, 7]);
    expect(spool.peek(0, 10)[0].gapBefore).toBeUndefined();
  });

  it('corruption reported by a write: the next retry moves the file aside, salvages its rows and numbering continues', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const clock = { now: Date.now() };
    const { logger, records } = capturingLogger();
    const { spool, store } = openFailing(clock, logger);
    for (let i = 1; i <= 3; i++) expect(await spool.append(body(i), clock.now)).toBe(i);
    store.fail = 'corrupt-once';
    expect(await spool.append(body(4), clock.now)).toBe(4);
    expect(spool.stats().diskOk).toBe(false);

    await vi.advanceTimersByTimeAsync(DISK_RETRY_MS);
    expect(spool.stats()).toMatchObject({ diskOk: true, corruptMovedAside: 1, memoryDepth: 0 });
    expect(readdirSync(dir).filter((f) => f.startsWith(`${SPOOL_FILE}.corrupt-`))).toHaveLength(1);
    expect(records.filter((r) => r.msg.startsWith('SPOOL DATABASE CORRUPT'))).toHaveLength(1);
    // The rows the moved file held were salvaged; the memory batch followed them.
    expect(spool.peek(0, 10).map((b) => [b.seq, b.body[0]])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 4],
    ]);
    expect(await spool.append(body(5), clock.now)).toBe(5);
    expect(spool.stats().dropped).toBe(0);
  });
});
