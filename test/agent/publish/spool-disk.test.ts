/**
 * The spool on a disk that fails for real: a full tmpfs, a read-only remount, a corrupt or
 * missing database. Whatever happens, no seq a subscriber may have seen is handed out again,
 * and every seq that will never be published is counted and noted on the next batch.
 */
import {
  closeSync,
  mkdirSync,
  openSync,
  renameSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DISK_RETRY_MS, REOPEN_MS, Spool } from '../../../agent/publish/spool/spool.js';
import { SPOOL_FILE } from '../../../agent/publish/spool/sqlite-store.js';
import { silentLogger } from '../../../agent/ops/logger.js';
import { runTs } from '../../helpers/process.js';
import { capturingLogger } from '../../helpers/logger.js';
import { mountTmpfs, tmpfsUnavailable, type Tmpfs } from '../../helpers/tmpfs.js';
import { ext4Unavailable, mountExt4, type Ext4Loop } from '../../helpers/ext4.js';
import { useTeardown } from '../../helpers/teardown.js';

const BIG = { maxBytes: 64 * 1024 * 1024, maxAgeSec: 3600 };
const noMount = tmpfsUnavailable();
if (noMount) process.stdout.write(`spool-disk tests skipped: ${noMount}\n`);
const noExt4 = ext4Unavailable();
if (noExt4) process.stdout.write(`spool-disk ext4 tests skipped: ${noExt4}\n`);

const t = useTeardown();
function tmpfs(size: number): Tmpfs {
  const fs = mountTmpfs(size);
  t.add(() => fs.close());
  return fs;
}
function ext4(size: number): Ext4Loop {
  const fs = mountExt4(size);
  t.add(() => fs.close());
  return fs;
}

describe('spool on a full disk (item 1)', () => {
  it.skipIf(noMount !== undefined)(
    'SIGKILL after memory batches were revealed: the restart reuses none of their seqs and counts the lost ones',
    async () => {
      const disk = tmpfs(256 * 1024);
      const fixture = fileURLToPath(
        new URL('./fixtures/spool-full-disk-process.ts', import.meta.url),
      );
      const child = runTs(fixture, [disk.dir, join(disk.dir, 'filler')]);
      t.add(() => child.kill());
      await child.waitForLine(/^ready /, 60_000);
      expect(await child.kill('SIGKILL')).toBe('SIGKILL');
      const revealed = new Map<number, number>();
      const acked = new Set<number>();
      for (const l of child.lines()) {
        const r = /^revealed (\d+) (\d+)$/.exec(l);
        if (r) revealed.set(Number(r[1]), Number(r[2]));
        const a = /^acked (\d+)$/.exec(l);
        if (a) acked.add(Number(a[1]));
      }
      const ready = JSON.parse(
        /^ready (.*)$/.exec(child.lines().find((l) => l.startsWith('ready'))!)![1],
      ) as {
        diskOk: boolean;
        memoryDepth: number;
      };
      expect(ready.diskOk).toBe(false);
      // Memory batches were published while the disk was full (the broker was up).
      const maxRevealed = Math.max(...revealed.keys());
      expect(acked.size).toBeGreaterThan(0);
      expect(maxRevealed).toBeGreaterThan(3);

      disk.free();
      const spool = Spool.open(disk.dir, BIG, silentLogger);
      t.add(() => spool.close());
      // What survived is handed out with the same bytes it was revealed with.
      for (const b of spool.peek(0, 1000)) {
        if (revealed.has(b.seq)) expect(b.body[0]).toBe(revealed.get(b.seq));
      }
      const next = await spool.append(Buffer.from('{"windows":[]}'), Date.now());
      expect(next).toBeGreaterThan(maxRevealed);
      const stored = new Set(spool.peek(0, 1000).map((b) => b.seq));
      const unacked = [...revealed.keys()].filter((s) => !acked.has(s) && !stored.has(s) && s > 3);
      expect(unacked.length).toBeGreaterThan(0);
      // Every seq below `next` that is neither stored nor acked is counted and explained.
      const note = spool.peek(next - 1, 1)[0].gapBefore!;
      expect(note).toBeDefined();
      for (const s of unacked) {
        expect(s).toBeGreaterThanOrEqual(note.firstSeq);
        expect(s).toBeLessThanOrEqual(note.lastSeq);
      }
      const missing: number[] = [];
      for (let s = 4; s < next; s++) if (!acked.has(s) && !stored.has(s)) missing.push(s);
      expect(note.count).toBe(missing.length);
      expect(note.lastSeq).toBe(next - 1);
      expect(spool.stats().dropped).toBe(missing.length);
    },
    90_000,
  );

  it.skipIf(noMount !== undefined)(
    'SIGTERM-like close with the disk still full: memory batches are reported lost, never announced as kept; the stop line names the note the restart makes, which counts them once',
    async () => {
      const disk = tmpfs(256 * 1024);
      const { logger, records } = capturingLogger();
      const spool = Spool.open(disk.dir, BIG, logger);
      await spool.append(Buffer.alloc(100, 1), Date.now());
      disk.fill();
      const seqs: number[] = [];
      for (let i = 0; i < 100 && spool.stats().diskOk; i++)
        seqs.push(await spool.append(Buffer.alloc(8192, 2), Date.now()));
      for (let i = 0; i < 5; i++) seqs.push(await spool.append(Buffer.alloc(8192, 3), Date.now()));
      const inMemory = spool.stats().memoryDepth;
      expect(inMemory).toBeGreaterThanOrEqual(5);
      spool.close();
      const lostLog = records.find((r) => r.msg.includes('could not be written to disk'));
      expect(lostLog).toMatchObject({ lost: inMemory, count: inMemory });

      disk.free();
      const again = Spool.open(disk.dir, BIG, silentLogger);
      t.add(() => again.close());
      const next = await again.append(Buffer.from('{"windows":[]}'), Date.now());
      expect(next).toBeGreaterThan(Math.max(...seqs));
      const note = again.peek(next - 1, 1)[0].gapBefore!;
      const stored = again.peek(0, 1000).filter((b) => b.seq < next).length;
      // Every seq between the stored ones and `next` is counted exactly once.
      expect(note).toMatchObject({ reason: 'reserved', lastSeq: next - 1 });
      expect(again.stats().dropped).toBe(next - 1 - stored);
      expect(note.count).toBe(next - 1 - stored);
      // The stop line said what this note says.
      const { count, firstSeq, lastSeq, reason } = lostLog!;
      expect({ count, firstSeq, lastSeq, reason }).toEqual(note);
    },
    60_000,
  );
});

/** A spool with `n` committed batches (bodies byte `seq % 251`), the first `acked` acknowledged. */
async function spoolWith(dir: string, n: number, acked: number, size = 100): Promise<void> {
  const spool = Spool.open(dir, BIG, silentLogger);
  for (let i = 1; i <= n; i++) void spool.append(Buffer.alloc(size, i % 251), Date.now());
  spool.commit();
  for (let i = 1; i <= acked; i++) spool.ack(i);
  spool.close();
}

function corruptCopies(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith(`${SPOOL_FILE}.corrupt-`));
}

describe('spool that cannot be opened as it was (item 2, item 4)', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const fresh = () => {
    dir = join(
      process.env.TMPDIR ?? '/tmp',
      `spool-open-${process.pid}-${Math.random().toString(16).slice(2)}`,
    );
    return dir;
  };

  it('corrupt header: moved aside (kept, counted, logged once with what to do), numbering continues', async () => {
    await spoolWith(fresh(), 5, 2);
    const path = join(dir, SPOOL_FILE);
    const bytes = readFileSync(path);
    bytes.fill(0x5a, 0, 100);
    writeFileSync(path, bytes);
    const { logger, records } = capturingLogger();
    const spool = Spool.open(dir, BIG, logger);
    t.add(() => spool.close());
    const next = await spool.append(Buffer.from('{}'), Date.now());
    expect(next).toBeGreaterThan(5);
    expect(corruptCopies(dir)).toHaveLength(1);
    expect(spool.stats()).toMatchObject({ corruptMovedAside: 1, diskOk: true });
    const said = records.filter((r) => r.msg.includes('SPOOL DATABASE CORRUPT'));
    expect(said).toHaveLength(1);
    expect(said[0].msg).toMatch(/delete the moved file/);
    expect(said[0].stack).toBeUndefined();
    // 3..5 were unsent: their page is intact, so they are read back; 1 and 2 were
    // acknowledged. The clean stop reserved nothing ahead: nothing is lost, nothing noted.
    expect(spool.peek(0, 10).map((b) => b.seq)).toEqual([3, 4, 5, next]);
    expect(next).toBe(6);
    expect(spool.peek(next - 1, 1)[0].gapBefore).toBeUndefined();
    expect(spool.stats().dropped).toBe(0);
  });

  it('truncated file: moved aside, numbering continues', async () => {
    await spoolWith(fresh(), 40, 0, 2000);
    const path = join(dir, SPOOL_FILE);
    writeFileSync(path, readFileSync(path).subarray(0, 3 * 4096));
    const spool = Spool.open(dir, BIG, silentLogger);
    t.add(() => spool.close());
    expect(await spool.append(Buffer.from('{}'), Date.now())).toBeGreaterThan(40);
    expect(corruptCopies(dir)).toHaveLength(1);
  });

  it('deleted file: the seq mark continues the numbering and counts what the file held', async () => {
    await spoolWith(fresh(), 5, 2);
    rmSync(join(dir, SPOOL_FILE));
    const spool = Spool.open(dir, BIG, silentLogger);
    t.add(() => spool.close());
    const next = await spool.append(Buffer.from('{}'), Date.now());
    expect(next).toBeGreaterThan(5);
    const note = spool.peek(0, 10)[0].gapBefore!;
    expect(note).toMatchObject({ reason: 'database-lost', lastSeq: next - 1 });
    expect(note.firstSeq).toBeLessThanOrEqual(3);
  });

  it('garbage mid-file: quick_check at open moves it aside and salvages the readable rows; nothing is stuck', async () => {
    await spoolWith(fresh(), 300, 0, 1000);
    const path = join(dir, SPOOL_FILE);
    const bytes = readFileSync(path);
    const page = Math.floor(bytes.length / 4096 / 2);
    bytes.fill(0xa5, page * 4096, page * 4096 + 4096);
    writeFileSync(path, bytes);
    const spool = Spool.open(dir, BIG, silentLogger);
    t.add(() => spool.close());
    expect(corruptCopies(dir)).toHaveLength(1);
    const left = spool.peek(0, 1000);
    // Salvaged rows are the original bytes; the rest is counted.
    for (const b of left) expect(b.body[0]).toBe(b.seq % 251);
    expect(left.length).toBeGreaterThan(100);
    const next = await spool.append(Buffer.from('{}'), Date.now());
    expect(next).toBeGreaterThan(300);
    const have = new Set(left.map((b) => b.seq));
    const missing: number[] = [];
    for (let s = 1; s < next; s++) if (!have.has(s)) missing.push(s);
    expect(spool.stats().dropped).toBeGreaterThanOrEqual(missing.length);
  });

  it.skipIf(noMount !== undefined)(
    'read-only file system at start: no seq reserved, so batches wait unnumbered and unpublished; numbered and stored once writable, without a restart',
    async () => {
      const disk = tmpfs(1024 * 1024);
      fresh();
      await spoolWith(disk.dir, 5, 5);
      disk.remount('ro');
      const { logger, records } = capturingLogger();
      let now = Date.now();
      const spool = Spool.open(disk.dir, { ...BIG, now: () => now }, logger);
      t.add(() => spool.close());
      const seqs: number[] = [];
      const appended = [7, 8].map((byte) =>
        spool.append(Buffer.alloc(100, byte), now).then((seq) => seqs.push(seq)),
      );
      // Nothing durable can be written and the clean stop left no seq reserved: no seq given.
      expect(spool.peek(0, 10)).toEqual([]);
      expect(spool.stats()).toMatchObject({ diskOk: false, markOk: false, unnumbered: 2 });
      expect(records.filter((r) => r.level >= 50)).not.toHaveLength(0);
      for (const r of records)
        expect(r.stack ?? (r.err as { stack?: string })?.stack).toBeUndefined();

      disk.remount('rw');
      now += 60_000;
      // The background retry (once a second, real timers) reopens the database.
      const deadline = Date.now() + 20_000;
      while (!spool.stats().diskOk && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      await Promise.all(appended);
      expect(spool.stats()).toMatchObject({ diskOk: true, unnumbered: 0, memoryDepth: 0 });
      // The clean stop brought the ceiling down to 5: numbering goes on without a gap.
      expect(seqs).toEqual([6, 7]);
      expect(spool.peek(0, 10).map((x) => x.seq)).toEqual([6, 7]);
      expect(spool.peek(0, 1)[0].gapBefore).toBeUndefined();
      expect(spool.stats().dropped).toBe(0);
    },
    40_000,
  );
});

describe('state dir missing under a parent that cannot be written', () => {
  it.skipIf(noMount !== undefined)(
    'no crash: batches wait unnumbered, and the dir is created and used once the parent is writable',
    async () => {
      const disk = tmpfs(256 * 1024);
      disk.remount('ro');
      vi.useFakeTimers();
      try {
        const { logger, records } = capturingLogger();
        const spool = Spool.open(join(disk.dir, 'state'), BIG, logger);
        t.add(() => spool.close());
        const seqs: number[] = [];
        void spool.append(Buffer.alloc(10, 1), Date.now()).then((s) => seqs.push(s));
        await vi.advanceTimersByTimeAsync(REOPEN_MS);
        expect(seqs).toEqual([]);
        expect(spool.stats()).toMatchObject({ unnumbered: 1, diskOk: false });
        expect(records.find((r) => r.msg.startsWith('SPOOL DISK FAILURE'))).toMatchObject({
          code: expect.stringMatching(/^E[A-Z]+$/),
        });
        disk.remount('rw');
        await vi.advanceTimersByTimeAsync(REOPEN_MS + DISK_RETRY_MS);
        await vi.advanceTimersByTimeAsync(10);
        // Nothing was ever written anywhere: this is the gateway's first batch.
        expect(seqs).toEqual([1]);
        expect(spool.stats()).toMatchObject({ unnumbered: 0, diskOk: true });
      } finally {
        vi.useRealTimers();
      }
    },
  );
});

describe('spool on a disk that is full before the start', () => {
  it.skipIf(noMount !== undefined)(
    'opens without throwing, numbers from the mark, publishes from memory, and moves back once there is space',
    async () => {
      const disk = tmpfs(256 * 1024);
      await spoolWith(disk.dir, 5, 5);
      disk.fill();
      const { logger, records } = capturingLogger();
      const spool = Spool.open(disk.dir, BIG, logger);
      t.add(() => spool.close());
      const a = await spool.append(Buffer.alloc(100, 7), Date.now());
      expect(a).toBeGreaterThan(5);
      // The mark is written in place on the full disk: the batch may be published.
      expect(spool.peek(0, 10).map((b) => b.seq)).toEqual([a]);
      disk.free();
      const deadline = Date.now() + 20_000;
      while (!spool.stats().diskOk && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(spool.stats()).toMatchObject({ diskOk: true, memoryDepth: 0 });
      expect(spool.peek(0, 10).map((b) => b.seq)).toEqual([a]);
      expect(records.filter((r) => r.msg.startsWith('SPOOL DISK FAILURE'))).toHaveLength(1);
    },
    30_000,
  );
});

describe('memory window and disk failure log (item 5, item 6)', () => {
  it.skipIf(noMount !== undefined)(
    'memory mode is bounded by memoryMaxBytes on its own: oldest dropped, counted, noted',
    async () => {
      const disk = tmpfs(256 * 1024);
      const spool = Spool.open(disk.dir, { ...BIG, memoryMaxBytes: 64 * 1024 }, silentLogger);
      t.add(() => spool.close());
      disk.fill();
      for (let i = 0; i < 100 && spool.stats().diskOk; i++)
        await spool.append(Buffer.alloc(8192, 1), Date.now());
      const first = spool.stats().lastSeq;
      for (let i = 0; i < 20; i++) await spool.append(Buffer.alloc(8192, 2), Date.now());
      const s = spool.stats();
      expect(s.memoryDepth).toBeLessThanOrEqual(8);
      expect(s.memoryBytes).toBeLessThanOrEqual(64 * 1024);
      expect(s.dropped).toBeGreaterThanOrEqual(20 - 8);
      expect(s.lastDrop).toMatchObject({ reason: 'memory-bound' });
      expect(s.lastSeq).toBe(first + 20);
    },
    30_000,
  );

  it.skipIf(noMount !== undefined)(
    'a disk failure is logged once with its cause (code, message, no stack), then rate-limited; recovery once',
    async () => {
      const disk = tmpfs(256 * 1024);
      const { logger, records } = capturingLogger();
      let now = Date.now();
      const spool = Spool.open(disk.dir, { ...BIG, now: () => now }, logger);
      t.add(() => spool.close());
      disk.fill();
      for (let i = 0; i < 100 && spool.stats().diskOk; i++)
        await spool.append(Buffer.alloc(8192, 1), now);
      // 30 s of batches, one a second: each one retries the disk.
      for (let i = 0; i < 30; i++) {
        now += 1000;
        await spool.append(Buffer.alloc(100, 2), now);
      }
      const failures = records.filter((r) => r.msg.startsWith('SPOOL DISK FAILURE'));
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ code: expect.stringMatching(/^SQLITE_FULL|ENOSPC/) });
      expect(typeof failures[0].error).toBe('string');
      expect(JSON.stringify(records)).not.toMatch(/\n\s+at /);
      disk.free();
      now += 2000;
      await spool.append(Buffer.alloc(100, 3), now);
      expect(spool.stats().diskOk).toBe(true);
      expect(records.filter((r) => r.msg === 'spool disk works again')).toHaveLength(1);
    },
    30_000,
  );
});

describe('corruption found while running (item 4)', () => {
  it('SQLITE_CORRUPT at run time: moved aside at the next retry, readable rows salvaged, numbering continues, nothing stuck', async () => {
    const dir = join(process.env.TMPDIR ?? '/tmp', `spool-rtc-${process.pid}`);
    t.add(() => rmSync(dir, { recursive: true, force: true }));
    const { logger, records } = capturingLogger();
    const spool = Spool.open(dir, BIG, logger);
    t.add(() => spool.close());
    // More than SQLite's checkpoint threshold (1000 pages): the early rows reach the file.
    // Random bodies (first byte `seq % 251`) stay that large when the spool deflates them.
    const n = 1500;
    for (let i = 1; i <= n; i++) {
      const body = randomBytes(4000);
      body[0] = i % 251;
      void spool.append(body, Date.now());
    }
    spool.commit();
    const path = join(dir, SPOOL_FILE);
    const bytes = readFileSync(path);
    const page = Math.floor(bytes.length / 4096 / 10);
    const garbage = Buffer.alloc(4096 * 4, 0xa5);
    const fd = openSync(path, 'r+');
    writeSync(fd, garbage, 0, garbage.length, page * 4096);
    closeSync(fd);
    // Replay reads the early rows back from the file.
    const seen = spool.peek(0, n).length;
    expect(seen).toBeLessThan(n);
    const deadline = Date.now() + 10_000;
    while (!spool.stats().corruptMovedAside && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(spool.stats()).toMatchObject({ corruptMovedAside: 1, diskOk: true });
    expect(corruptCopies(dir).length).toBeGreaterThan(0);
    expect(records.filter((r) => r.msg.startsWith('SPOOL DATABASE CORRUPT'))).toHaveLength(1);
    const left = spool.peek(0, n);
    for (const b of left) expect(b.body[0]).toBe(b.seq % 251);
    expect(left.length).toBeGreaterThan(seen);
    expect(await spool.append(Buffer.from('{}'), Date.now())).toBe(n + 1);
    const have = new Set(left.map((b) => b.seq));
    let missing = 0;
    for (let s = 1; s <= n; s++) if (!have.has(s)) missing++;
    expect(spool.stats().dropped).toBeGreaterThanOrEqual(missing);
  }, 30_000);
});

describe('a database that comes back with older batches', () => {
  it('tells the publisher to rewind to them, so they are not left until the next reconnect', async () => {
    vi.useFakeTimers();
    const dir = join(process.env.TMPDIR ?? '/tmp', `spool-rewind-${process.pid}`);
    t.add(() => rmSync(dir, { recursive: true, force: true }));
    try {
      await spoolWith(dir, 5, 2);
      // The database cannot be opened for now (a directory in its place); the mark can.
      renameSync(join(dir, SPOOL_FILE), join(dir, 'away'));
      mkdirSync(join(dir, SPOOL_FILE));
      const spool = Spool.open(dir, BIG, silentLogger);
      t.add(() => spool.close());
      const rewinds: number[] = [];
      spool.onRewind((seq) => rewinds.push(seq));
      const a = await spool.append(Buffer.alloc(10, 1), Date.now());
      expect(spool.peek(0, 10).map((b) => b.seq)).toEqual([a]);
      rmSync(join(dir, SPOOL_FILE), { recursive: true });
      renameSync(join(dir, 'away'), join(dir, SPOOL_FILE));
      await vi.advanceTimersByTimeAsync(REOPEN_MS + DISK_RETRY_MS);
      expect(spool.stats().diskOk).toBe(true);
      expect(rewinds).toEqual([3]);
      expect(spool.peek(rewinds[0] - 1, 10).map((b) => b.seq)).toEqual([3, 4, 5, a]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('a file system that turns read-only while the spool runs (issue 22 item 2)', () => {
  it.skipIf(noExt4 !== undefined)(
    'batches are published on the reserved seqs and leave memory when acked; once the reserve is used up they wait unnumbered; the stop line names the note the restart makes',
    async () => {
      const disk = ext4(16 * 1024 * 1024);
      const { logger, records } = capturingLogger();
      const spool = Spool.open(disk.dir, { ...BIG, reserveSeqs: 64 }, logger);
      for (let i = 1; i <= 3; i++) await spool.append(Buffer.alloc(100, i), Date.now());
      for (const seq of [1, 2, 3]) spool.ack(seq);
      spool.commit();
      disk.forceReadOnly();

      // The first append reserved 1..64: 4..13 are published although nothing can be written.
      for (let i = 4; i <= 13; i++)
        expect(await spool.append(Buffer.alloc(100, i), Date.now())).toBe(i);
      expect(spool.stats()).toMatchObject({ diskOk: false, withheld: 0 });
      const published = spool.peek(0, 100);
      expect(published.map((b) => b.seq)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
      for (const b of published) expect(b.body[0]).toBe(b.seq);
      for (const seq of [4, 5, 6, 7, 8]) spool.ack(seq);
      expect(spool.stats()).toMatchObject({ memoryDepth: 5, markOk: false });
      expect(spool.peek(0, 100).map((b) => b.seq)).toEqual([9, 10, 11, 12, 13]);

      // 14..64 use up the reserve; the next ones get no seq and wait, counted.
      for (let i = 14; i <= 64; i++)
        expect(await spool.append(Buffer.alloc(100, 1), Date.now())).toBe(i);
      const waiting: number[] = [];
      for (let i = 0; i < 3; i++)
        void spool.append(Buffer.alloc(100, 2), Date.now()).then((seq) => waiting.push(seq));
      expect(spool.stats()).toMatchObject({ lastSeq: 64, unnumbered: 3, memoryDepth: 56 });
      expect(Math.max(...spool.peek(0, 1000).map((b) => b.seq))).toBe(64);
      expect(
        records.filter((r) => r.msg.startsWith('SPOOL: the seqs reserved ahead are used up')),
      ).toHaveLength(1);

      spool.close();
      expect(waiting).toEqual([]);
      const stop = records.find((r) => r.msg.includes('lost at this stop'));
      expect(stop).toMatchObject({ lost: 59, unnumbered: 3 });

      disk.repair();
      const again = Spool.open(disk.dir, BIG, silentLogger);
      t.add(() => again.close());
      const next = await again.append(Buffer.alloc(100, 3), Date.now());
      // No seq any subscriber may have seen is handed out again.
      expect(next).toBe(65);
      const note = again.peek(next - 1, 1)[0].gapBefore!;
      expect(note).toEqual({ count: 61, firstSeq: 4, lastSeq: 64, reason: 'reserved' });
      const { count, firstSeq, lastSeq, reason } = stop!;
      expect({ count, firstSeq, lastSeq, reason }).toEqual(note);
    },
    30_000,
  );

  it.skipIf(noExt4 !== undefined)(
    'SIGKILL while read-only: no published seq is reused and every seq neither stored nor acked is inside the note',
    async () => {
      const disk = ext4(16 * 1024 * 1024);
      const fixture = fileURLToPath(
        new URL('./fixtures/spool-read-only-process.ts', import.meta.url),
      );
      const child = runTs(fixture, [disk.dir]);
      t.add(() => child.kill());
      await child.waitForLine(/^stored$/, 30_000);
      disk.forceReadOnly();
      await child.waitForLine(/^ready /, 30_000);
      expect(await child.kill('SIGKILL')).toBe('SIGKILL');
      const published = new Map<number, number>();
      const acked = new Set<number>();
      for (const l of child.lines()) {
        const p = /^published (\d+) (\d+)$/.exec(l);
        if (p) published.set(Number(p[1]), Number(p[2]));
        const a = /^acked (\d+)$/.exec(l);
        if (a) acked.add(Number(a[1]));
      }
      // The broker was up: the batches made while read-only went out on reserved seqs.
      expect([...published.keys()]).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);

      disk.repair();
      const spool = Spool.open(disk.dir, BIG, silentLogger);
      t.add(() => spool.close());
      const stored = spool.peek(0, 1000);
      for (const b of stored)
        expect(published.has(b.seq) ? published.get(b.seq) : undefined).toBe(
          published.has(b.seq) ? b.body[0] : undefined,
        );
      const next = await spool.append(Buffer.from('{"windows":[]}'), Date.now());
      expect(next).toBeGreaterThan(13);
      const note = spool.peek(next - 1, 1)[0].gapBefore!;
      expect(note).toMatchObject({ reason: 'reserved', firstSeq: 4, lastSeq: next - 1 });
      const have = new Set(stored.map((b) => b.seq));
      for (let s = 1; s < next; s++)
        if (!have.has(s) && !acked.has(s) && s > 3) {
          expect(s).toBeGreaterThanOrEqual(note.firstSeq);
          expect(s).toBeLessThanOrEqual(note.lastSeq);
        }
      expect(spool.stats().dropped).toBe(note.count);
    },
    60_000,
  );
});
