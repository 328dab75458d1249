import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ACK_COMMIT_DELAY_MS,
  COMMIT_DELAY_MS,
  COMMIT_MAX_BATCHES,
  DISK_RETRY_MS,
  REOPEN_MS,
  Spool,
  SpoolInUseError,
} from '../../../agent/publish/spool/spool.js';
import { RECENT_MAX_BATCHES } from '../../../agent/publish/spool/sqlite-store.js';
import { silentLogger } from '../../../agent/ops/logger.js';
import { runTs } from '../../helpers/process.js';
import { capturingLogger } from '../../helpers/logger.js';

const BIG = { maxBytes: 64 * 1024 * 1024, maxAgeSec: 3600 };
const body = (n: number, size = 100) => new Uint8Array(size).fill(48 + (n % 10));

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'spool-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('Spool seq', () => {
  it('assigns 1, 2, 3… and hands batches out in order until acknowledged', async () => {
    const spool = Spool.open(dir, BIG, silentLogger);
    const t0 = Date.now();
    expect(await Promise.all([0, 1, 2, 3].map((i) => spool.append(body(i), t0 + i)))).toEqual([
      1, 2, 3, 4,
    ]);
    expect(spool.peek(0, 2).map((b) => b.seq)).toEqual([1, 2]);
    expect(spool.peek(2, 10).map((b) => b.seq)).toEqual([3, 4]);
    expect(spool.peek(0, 1)[0]).toMatchObject({ seq: 1, createdAt: t0 });
    expect(Buffer.from(body(0)).equals(spool.peek(0, 1)[0].body)).toBe(true);
    spool.ack(2);
    spool.ack(1);
    expect(spool.peek(0, 10).map((b) => b.seq)).toEqual([3, 4]);
    expect(spool.stats()).toMatchObject({
      depth: 2,
      bytes: 200,
      lastSeq: 4,
      dropped: 0,
      diskOk: true,
    });
    spool.ack(99); // unknown: ignored
    spool.close();
  });

  it('keeps batches and continues seq after a reopen, also when the spool was emptied', async () => {
    const a = Spool.open(dir, BIG, silentLogger);
    void a.append(body(1), Date.now());
    void a.append(body(2), Date.now());
    a.close(); // commits what is queued
    const b = Spool.open(dir, BIG, silentLogger);
    expect(b.peek(0, 10).map((x) => x.seq)).toEqual([1, 2]);
    b.ack(1);
    b.ack(2);
    expect(b.stats().depth).toBe(0);
    b.close();
    const c = Spool.open(dir, BIG, silentLogger);
    expect(c.stats()).toMatchObject({ depth: 0, lastSeq: 2 });
    expect(await c.append(body(3), Date.now())).toBe(3);
    c.close();
  });
});

describe('Spool durability', () => {
  it('fsyncs every commit by default (power cut safe) and runs NORMAL only when asked', () => {
    const full = Spool.open(dir, BIG, silentLogger);
    expect(full.syncMode()).toBe('full');
    full.close();
    const normal = Spool.open(dir, { ...BIG, synchronous: 'normal' }, silentLogger);
    expect(normal.syncMode()).toBe('normal');
    normal.close();
  });
});

describe('Spool group commit', () => {
  const seqsOf = (bs: { seq: number }[]) => bs.map((b) => b.seq);

  it('writes the appends of one moment in one transaction and hands none out before it committed', async () => {
    const spool = Spool.open(dir, BIG, silentLogger);
    const before = spool.stats().commits;
    const pending = [0, 1, 2].map((i) => spool.append(body(i), Date.now()));
    // Queued, not durable: counted, but not publishable yet.
    expect(spool.peek(0, 10)).toEqual([]);
    expect(spool.stats()).toMatchObject({ depth: 3, bytes: 300, commits: before });
    expect(await Promise.all(pending)).toEqual([1, 2, 3]);
    expect(spool.stats().commits).toBe(before + 1);
    expect(seqsOf(spool.peek(0, 10))).toEqual([1, 2, 3]);
    spool.close();
  });

  it('commits at once when the queue is full, and tells its listeners after each commit', () => {
    const spool = Spool.open(dir, BIG, silentLogger);
    let told = 0;
    spool.onCommitted(() => told++);
    for (let i = 0; i < COMMIT_MAX_BATCHES; i++) void spool.append(body(i), Date.now());
    expect(told).toBe(1);
    expect(spool.peek(0, 1000)).toHaveLength(COMMIT_MAX_BATCHES);
    spool.close();
  });

  it('deletes acked batches in the next commit; an acked batch is never handed out again', async () => {
    const spool = Spool.open(dir, BIG, silentLogger);
    await Promise.all([0, 1].map((i) => spool.append(body(i), Date.now())));
    const commits = spool.stats().commits;
    spool.ack(1);
    expect(seqsOf(spool.peek(0, 10))).toEqual([2]);
    expect(spool.stats()).toMatchObject({ depth: 1, bytes: 100, commits });
    // The DELETE and the next batch share one transaction.
    expect(await spool.append(body(2), Date.now())).toBe(3);
    expect(spool.stats().commits).toBe(commits + 1);
    spool.close();
    const again = Spool.open(dir, BIG, silentLogger);
    expect(seqsOf(again.peek(0, 10))).toEqual([2, 3]);
    again.close();
  });

  it('an ack alone commits nothing: its DELETE rides with the next batch, or waits ACK_COMMIT_DELAY_MS', async () => {
    vi.useFakeTimers();
    try {
      const spool = Spool.open(dir, BIG, silentLogger);
      void spool.append(body(0), Date.now());
      await vi.advanceTimersByTimeAsync(COMMIT_DELAY_MS + 1);
      const commits = spool.stats().commits;
      spool.ack(1);
      await vi.advanceTimersByTimeAsync(ACK_COMMIT_DELAY_MS - 1);
      expect(spool.stats()).toMatchObject({ commits, depth: 0 });
      void spool.append(body(1), Date.now());
      await vi.advanceTimersByTimeAsync(COMMIT_DELAY_MS + 1);
      expect(spool.stats().commits).toBe(commits + 1);
      // Alone: after the delay, in one commit.
      spool.ack(2);
      await vi.advanceTimersByTimeAsync(ACK_COMMIT_DELAY_MS - 1);
      expect(spool.stats().commits).toBe(commits + 1);
      await vi.advanceTimersByTimeAsync(1);
      expect(spool.stats().commits).toBe(commits + 2);
      // Nothing left for close to write: both DELETEs were in those commits.
      spool.close();
      expect(spool.stats().commits).toBe(commits + 2);
    } finally {
      vi.useRealTimers();
    }
    const db = new Database(join(dir, 'spool.sqlite'), { readonly: true });
    expect(db.prepare('SELECT count(*) AS n FROM batches').get()).toEqual({ n: 0 });
    db.close();
  });

  it('COMMIT_MAX_BATCHES acks waiting are committed without waiting for a batch', async () => {
    vi.useFakeTimers();
    try {
      const spool = Spool.open(dir, BIG, silentLogger);
      for (let i = 0; i < COMMIT_MAX_BATCHES; i++) void spool.append(body(i), Date.now());
      const commits = spool.stats().commits;
      for (let seq = 1; seq < COMMIT_MAX_BATCHES; seq++) spool.ack(seq);
      await vi.advanceTimersByTimeAsync(COMMIT_DELAY_MS + 1);
      expect(spool.stats().commits).toBe(commits);
      spool.ack(COMMIT_MAX_BATCHES);
      await vi.advanceTimersByTimeAsync(COMMIT_DELAY_MS + 1);
      expect(spool.stats()).toMatchObject({ commits: commits + 1, depth: 0 });
      spool.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('SIGKILL before the commit: the queued batches vanish, a queued ack replays, nothing stored is lost, the reserved seqs are noted', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/spool-process.ts', import.meta.url));
    const child = runTs(fixture, [dir]);
    try {
      await child.waitForLine(/^queued 8$/);
      expect(await child.kill('SIGKILL')).toBe('SIGKILL');
    } finally {
      await child.kill();
    }
    expect(child.lines()).toContain('stored 1,2,3,4,5');
    const spool = Spool.open(dir, BIG, silentLogger);
    // 1 and 2 were deleted; 3's DELETE was only queued: published again (a duplicate, no loss).
    expect(seqsOf(spool.peek(0, 10))).toEqual([3, 4, 5]);
    // 6..8 were never stored, but the start cannot tell them from seqs published while the
    // disk failed: it goes on after the reserved ceiling and notes the jump, exactly.
    const ceiling = spool.stats().lastSeq;
    expect(ceiling).toBeGreaterThanOrEqual(8);
    expect(await spool.append(body(9), Date.now())).toBe(ceiling + 1);
    expect(spool.peek(ceiling, 1)[0].gapBefore).toEqual({
      count: ceiling - 5,
      firstSeq: 6,
      lastSeq: ceiling,
      reason: 'reserved',
    });
    spool.close();
  });
});

describe('Spool ownership', () => {
  it('refuses a state dir another spool holds, and opens it once that one is closed', async () => {
    const first = Spool.open(dir, BIG, silentLogger);
    await first.append(body(1), Date.now());
    expect(() => Spool.open(dir, BIG, silentLogger)).toThrow(SpoolInUseError);
    first.close();
    const second = Spool.open(dir, BIG, silentLogger);
    expect(await second.append(body(2), Date.now())).toBe(2);
    second.close();
  });
});

describe('Spool bounds', () => {
  it('drops the oldest batches beyond maxBytes, counts them and logs their seqs', () => {
    const { logger, records } = capturingLogger();
    const spool = Spool.open(dir, { maxBytes: 1000, maxAgeSec: 3600 }, logger);
    for (let i = 0; i < 25; i++) void spool.append(body(i, 100), Date.now());
    spool.commit();
    const left = spool.peek(0, 100).map((b) => b.seq);
    expect(left).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
    expect(spool.stats()).toMatchObject({ dropped: 15, bytes: 1000, depth: 10, lastSeq: 25 });
    const warned = records.filter((r) => r.msg.includes('dropped the oldest'));
    expect(warned.reduce((n, r) => n + (r.count as number), 0)).toBe(15);
    expect(warned[0].firstSeq).toBe(1);
    spool.close();
    // The drop counter survives a restart.
    const again = Spool.open(dir, { maxBytes: 1000, maxAgeSec: 3600 }, silentLogger);
    expect(again.stats().dropped).toBe(15);
    again.close();
  });

  it('drops batches older than maxAgeSec (controllable clock)', async () => {
    let now = 1_000_000;
    const spool = Spool.open(
      dir,
      { maxBytes: 1 << 20, maxAgeSec: 60, now: () => now },
      silentLogger,
    );
    await spool.append(body(1), now);
    now += 30_000;
    await spool.append(body(2), now);
    expect(spool.stats().oldestAgeMs).toBe(30_000);
    now += 31_000;
    await spool.append(body(3), now);
    expect(spool.peek(0, 10).map((b) => b.seq)).toEqual([2, 3]);
    expect(spool.stats().dropped).toBe(1);
    spool.close();
  });
});

describe('Spool recent window (retainRecent)', () => {
  const seqsOf = (bs: { seq: number }[]) => bs.map((b) => b.seq);

  it('hands out the same batches as SQLite, in order, honouring acks', async () => {
    const t0 = Date.now();
    const spool = Spool.open(dir, BIG, silentLogger);
    await spool.append(body(0), t0 + 1);
    spool.retainRecent(true);
    for (let i = 1; i < 6; i++) await spool.append(body(i), t0 + 1 + i);
    // seq 1 predates the window (SQLite), 2..6 come from memory: one ordered answer.
    expect(seqsOf(spool.peek(0, 10))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(seqsOf(spool.peek(2, 2))).toEqual([3, 4]);
    const fromMemory = spool.peek(3, 1)[0];
    expect(fromMemory).toMatchObject({ seq: 4, createdAt: t0 + 4 });
    expect(Buffer.from(body(3)).equals(fromMemory.body)).toBe(true);
    spool.ack(4);
    spool.ack(1);
    expect(seqsOf(spool.peek(0, 10))).toEqual([2, 3, 5, 6]);
    spool.commit();
    expect(seqsOf(spool.peek(0, 10))).toEqual([2, 3, 5, 6]);
    // Turned off (disconnected): the same answer, now read back from SQLite.
    spool.retainRecent(false);
    expect(seqsOf(spool.peek(0, 10))).toEqual([2, 3, 5, 6]);
    expect(Buffer.from(body(2)).equals(spool.peek(2, 1)[0].body)).toBe(true);
    spool.close();
    const again = Spool.open(dir, BIG, silentLogger);
    expect(seqsOf(again.peek(0, 10))).toEqual([2, 3, 5, 6]);
    again.close();
  });

  it('is bounded: beyond it the older batches are read back from SQLite, in order', () => {
    const spool = Spool.open(dir, BIG, silentLogger);
    spool.retainRecent(true);
    const n = RECENT_MAX_BATCHES + 20;
    for (let i = 0; i < n; i++) void spool.append(body(i), Date.now());
    spool.commit();
    const all = spool.peek(0, 1000);
    expect(seqsOf(all)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    all.forEach((b, i) => expect(Buffer.from(body(i)).equals(b.body)).toBe(true));
    expect(seqsOf(spool.peek(10, 3))).toEqual([11, 12, 13]);
    expect(seqsOf(spool.peek(n - 2, 10))).toEqual([n - 1, n]);
    spool.close();
  });

  it('never hands out a batch the bounds dropped; the drop count equals the missing seqs', () => {
    const spool = Spool.open(dir, { maxBytes: 1000, maxAgeSec: 3600 }, silentLogger);
    spool.retainRecent(true);
    for (let i = 0; i < 25; i++) void spool.append(body(i, 100), Date.now());
    spool.commit();
    expect(seqsOf(spool.peek(0, 100))).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
    expect(spool.stats()).toMatchObject({ dropped: 15, depth: 10 });
    spool.close();
  });
});

describe('Spool disk failure', () => {
  it('never restarts numbering when neither the database nor the mark can be read: batches wait unnumbered, then continue after the last seq', async () => {
    vi.useFakeTimers();
    try {
      const state = join(dir, 'state');
      const first = Spool.open(state, BIG, silentLogger);
      for (let i = 1; i <= 3; i++) void first.append(body(i), Date.now());
      first.close();
      // The state dir is replaced by a file: nothing in it can be read or created.
      renameSync(state, join(dir, 'away'));
      writeFileSync(state, 'x');
      const { logger, records } = capturingLogger();
      const spool = Spool.open(state, BIG, logger);
      const seqs: number[] = [];
      void spool.append(body(4), Date.now()).then((s) => seqs.push(s));
      void spool.append(body(5), Date.now()).then((s) => seqs.push(s));
      await vi.advanceTimersByTimeAsync(REOPEN_MS * 2);
      expect(seqs).toEqual([]);
      expect(spool.peek(0, 10)).toEqual([]);
      expect(spool.stats()).toMatchObject({ diskOk: false, unnumbered: 2, depth: 2 });
      const unavailable = records.filter((r) => r.msg.includes('SPOOL UNAVAILABLE'));
      expect(unavailable).toHaveLength(1);
      // Back: opened again in the background, the waiting batches continue the numbering.
      rmSync(state);
      renameSync(join(dir, 'away'), state);
      await vi.advanceTimersByTimeAsync(REOPEN_MS + DISK_RETRY_MS);
      await vi.advanceTimersByTimeAsync(COMMIT_DELAY_MS + 1);
      expect(seqs).toEqual([4, 5]);
      expect(spool.stats()).toMatchObject({ diskOk: true, unnumbered: 0, lastSeq: 5, dropped: 0 });
      expect(spool.peek(0, 10).map((b) => b.seq)).toEqual([1, 2, 3, 4, 5]);
      spool.close();
    } finally {
      vi.useRealTimers();
    }
  });

  // A real full disk: a tiny tmpfs (needs CAP_SYS_ADMIN, e.g. root).
  const mnt = join(tmpdir(), `spool-tmpfs-${process.pid}`);
  let canMount = false;
  try {
    mkdirSync(mnt, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt], { stdio: 'ignore' });
    execFileSync('umount', [mnt]);
    canMount = true;
  } catch {
    canMount = false;
  }

  it.skipIf(!canMount)(
    'keeps assigning seqs in memory when the disk is full, and moves them back when there is space',
    async () => {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
      try {
        const { logger, records } = capturingLogger();
        let now = Date.now();
        const spool = Spool.open(
          mnt,
          { maxBytes: 64 << 20, maxAgeSec: 3600, now: () => now },
          logger,
        );
        const seqs: number[] = [];
        // 256 KiB fill up after a few dozen 8 KiB batches: bounded loop.
        for (let i = 0; i < 200 && spool.stats().diskOk; i++)
          seqs.push(await spool.append(body(i, 8192), now));
        expect(spool.stats().diskOk).toBe(false);
        expect(records.some((r) => r.level >= 50 && r.msg.includes('SPOOL DISK FAILURE'))).toBe(
          true,
        );
        for (let i = 0; i < 5; i++) seqs.push(await spool.append(body(i, 8192), now));
        expect(seqs).toEqual(seqs.map((_, i) => i + 1));
        expect(spool.stats().memoryDepth).toBeGreaterThanOrEqual(5);
        expect(spool.peek(0, 1000).map((b) => b.seq)).toEqual(seqs);

        // Within the retry pause the disk is not touched again: still in memory, still counting.
        const roSeq = await spool.append(body(1, 100), now);
        expect(roSeq).toBe(seqs.length + 1);
        expect(spool.stats().diskOk).toBe(false);

        // Space again: the memory window goes back to disk and survives a reopen.
        execFileSync('mount', ['-o', 'remount,rw,size=16m', mnt]);
        now += 2000;
        const last = await spool.append(body(2, 100), now);
        expect(spool.stats()).toMatchObject({ diskOk: true, memoryDepth: 0, lastSeq: last });
        spool.close();
        const reopened = Spool.open(mnt, BIG, silentLogger);
        expect(reopened.peek(0, 1000).map((b) => b.seq)).toEqual([...seqs, roSeq, last]);
        expect(reopened.stats().lastSeq).toBe(last);
        reopened.close();
      } finally {
        execFileSync('umount', ['-l', mnt]);
        rmSync(mnt, { recursive: true, force: true });
      }
    },
  );
});
