/**
 * Store-and-forward spool: every batch is written here, with its seq, before it is
 * published, and deleted only when the broker acknowledged it (PUBACK).
 *
 * - SQLite via better-sqlite3 12 (13 crashes on Node 20), WAL. synchronous=FULL by default:
 *   every commit is fsynced, so a power cut (common on a gateway) cannot roll back the last
 *   batches and their seq, which would then be handed out again. `spool.synchronous: normal`
 *   trades that for speed: still safe against SIGKILL (the WAL is in the page cache).
 * - seq is assigned in the same transaction as the batch and the highest seq ever assigned
 *   is kept in `meta`, so an empty spool, or a restart, continues after it: never reused.
 * - Bounded by payload bytes and by age: the oldest batches are dropped first and counted
 *   (persistently), with their seqs logged, so a subscriber's gap is explained.
 * - A failing disk (full, read-only, I/O error) is logged loudly and the spool keeps going
 *   on an in-memory window under the same bounds, still assigning seqs; it retries the
 *   disk at most once a second and moves the memory window back to disk when it works.
 * - Read-back avoidance: while the publisher is connected (`retainRecent(true)`), the bodies
 *   of the batches just written to disk are also kept in a small bounded window (RECENT_*),
 *   so handing them out does not read them back from SQLite; replay after a reconnect or a
 *   restart, and anything older than the window, still comes from SQLite. The window holds
 *   copies of rows that are on disk: it changes no durability, ack or drop rule, and it is
 *   emptied while disconnected so an outage does not grow memory.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../ops/logger.js';

export interface SpoolOptions {
  /** Bound on the stored payload bytes (not the file size). */
  maxBytes: number;
  /** Batches older than this are dropped. */
  maxAgeSec: number;
  /** SQLite synchronous mode; default full (see the header). */
  synchronous?: 'full' | 'normal';
  /** Clock, for tests of the age bound. */
  now?: () => number;
}

export interface SpooledBatch {
  seq: number;
  createdAt: number;
  body: Buffer;
}

export interface SpoolStats {
  /** Batches waiting to be acknowledged. */
  depth: number;
  bytes: number;
  /** Batches dropped by the bounds, ever (persisted). */
  dropped: number;
  /** Age of the oldest unacknowledged batch, 0 when empty. */
  oldestAgeMs: number;
  /** The highest seq ever assigned. */
  lastSeq: number;
  /** False while the disk fails and batches live in memory only. */
  diskOk: boolean;
  /** Batches held in memory because the disk failed. */
  memoryDepth: number;
}

export const SPOOL_FILE = 'spool.sqlite';

/** Another process has the spool open: running anyway would reuse seqs. */
export class SpoolInUseError extends Error {
  override name = 'SpoolInUseError';
}
const DISK_RETRY_MS = 1000;
const DROP_CHUNK = 256;
/** Bounds of the recent-batches window (see the header): a few in-flight windows' worth. */
export const RECENT_MAX_BATCHES = 64;
export const RECENT_MAX_BYTES = 8 * 1024 * 1024;

type Row = { seq: number; created_at: number; body: Buffer };

export class Spool {
  private db: Database.Database | undefined;
  private diskOk: boolean;
  private lastDiskTry = 0;
  private lastSeq = 0;
  private dropped = 0;
  private diskDepth = 0;
  private diskBytes = 0;
  /** Batches the disk could not take, in seq order (Map keeps insertion order). */
  private readonly memory = new Map<number, SpooledBatch>();
  private memoryBytes = 0;
  /** Acked batches whose delete failed on disk: never hand them out again. */
  private readonly ackedOnDisk = new Set<number>();
  /**
   * Bodies of on-disk batches, in seq order. Invariant: every unacknowledged, undropped
   * on-disk batch with seq >= recentFrom is in this map, so peek reads SQLite only below it.
   */
  private readonly recent = new Map<number, SpooledBatch>();
  private recentBytes = 0;
  private recentFrom = 1;
  private keepRecent = false;
  private readonly now: () => number;
  /** Prepared statements, compiled once per connection. */
  private readonly statements = new Map<string, Database.Statement>();

  private constructor(
    readonly path: string,
    private readonly options: SpoolOptions,
    private readonly logger: Logger,
  ) {
    this.now = options.now ?? Date.now;
    this.diskOk = false;
  }

  /**
   * Open (or create) the spool in `dir`. Throws SpoolInUseError when another process holds
   * it; any other disk trouble is logged and the spool runs in memory.
   */
  static open(dir: string, options: SpoolOptions, logger: Logger): Spool {
    const spool = new Spool(join(dir, SPOOL_FILE), options, logger);
    try {
      mkdirSync(dir, { recursive: true });
      // timeout 0: another process holding the lock is an answer, not something to wait for.
      spool.db = new Database(spool.path, { timeout: 0 });
      // One writer per state dir: two agents sharing it would hand out the same seqs.
      // EXCLUSIVE also keeps the WAL index in process memory (no -shm file).
      spool.db.pragma('locking_mode = EXCLUSIVE');
      spool.db.pragma('journal_mode = WAL');
      spool.db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      spool.db.exec(`
        CREATE TABLE IF NOT EXISTS batches (
          seq INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, body BLOB NOT NULL);
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);`);
      const meta = (key: string) =>
        (
          spool.db!.prepare('SELECT value FROM meta WHERE key = ?').get(key) as
            { value: number } | undefined
        )?.value ?? 0;
      const totals = spool.db
        .prepare(
          'SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS b, max(seq) AS m FROM batches',
        )
        .get() as { n: number; b: number; m: number | null };
      spool.lastSeq = Math.max(meta('last_seq'), totals.m ?? 0);
      spool.recentFrom = spool.lastSeq + 1;
      spool.dropped = meta('dropped');
      spool.diskDepth = totals.n;
      spool.diskBytes = totals.b;
      // A write takes the exclusive lock now, rather than at the first batch.
      spool.db
        .prepare(
          'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
        )
        .run('opened_at', Date.now());
      spool.diskOk = true;
      logger.info({ path: spool.path, depth: totals.n, lastSeq: spool.lastSeq }, 'spool opened');
    } catch (err) {
      spool.db?.close();
      spool.db = undefined;
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
        throw new SpoolInUseError(
          `the spool ${spool.path} is in use by another process (another edge-agent on the same state directory?)`,
        );
      }
      // Without a disk we still run, but the seqs already used are unknown: say so.
      logger.error(
        { err, path: spool.path },
        'SPOOL DISK UNAVAILABLE: cannot open the spool; batches are kept in memory only and seq starts again at 1',
      );
    }
    spool.enforceBounds();
    return spool;
  }

  /**
   * Store a batch; returns its seq. Never throws for disk trouble. The spool keeps a
   * reference to `body` (no copy): the caller must not modify it afterwards.
   */
  append(body: Uint8Array, createdAt: number): number {
    const seq = this.lastSeq + 1;
    const view = Buffer.isBuffer(body)
      ? body
      : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const batch: SpooledBatch = { seq, createdAt, body: view };
    this.retryDisk();
    if (this.diskOk && this.writeToDisk([batch])) {
      this.remember(batch);
    } else {
      this.memory.set(seq, batch);
      this.memoryBytes += batch.body.length;
    }
    this.lastSeq = seq;
    this.enforceBounds();
    return seq;
  }

  /**
   * Keep the bodies of newly written batches in memory (the publisher turns this on while
   * connected). Turning it off empties the window: later peeks read SQLite.
   */
  retainRecent(on: boolean): void {
    this.keepRecent = on;
    if (!on) this.forgetRecent();
  }

  /** Up to `limit` unacknowledged batches with seq > afterSeq, in seq order. */
  peek(afterSeq: number, limit: number): SpooledBatch[] {
    const fromDisk: SpooledBatch[] = [];
    // Older than the recent window: read back from SQLite (replay).
    if (this.db && this.diskDepth > 0 && afterSeq + 1 < this.recentFrom) {
      try {
        const rows = this.sql(
          'SELECT seq, created_at, body FROM batches WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?',
        ).all(afterSeq, this.recentFrom, limit + this.ackedOnDisk.size) as Row[];
        for (const r of rows) {
          if (!this.ackedOnDisk.has(r.seq))
            fromDisk.push({ seq: r.seq, createdAt: r.created_at, body: r.body });
          if (fromDisk.length >= limit) break;
        }
      } catch (err) {
        this.diskFailed(err, 'read');
      }
    }
    if (fromDisk.length < limit) {
      for (const b of this.recent.values()) {
        if (b.seq > afterSeq) fromDisk.push(b);
        if (fromDisk.length >= limit) break;
      }
    }
    const fromMemory: SpooledBatch[] = [];
    for (const b of this.memory.values()) {
      if (b.seq > afterSeq) fromMemory.push(b);
      if (fromMemory.length >= limit) break;
    }
    if (fromMemory.length === 0) return fromDisk.slice(0, limit);
    return [...fromDisk, ...fromMemory].sort((a, b) => a.seq - b.seq).slice(0, limit);
  }

  /** The broker has the batch: forget it. Unknown seqs (already dropped) are ignored. */
  ack(seq: number): void {
    this.unremember(seq);
    const inMemory = this.memory.get(seq);
    if (inMemory) {
      this.memory.delete(seq);
      this.memoryBytes -= inMemory.body.length;
      return;
    }
    if (!this.db) return;
    try {
      const row = this.sql('DELETE FROM batches WHERE seq = ? RETURNING length(body) AS n').get(
        seq,
      ) as { n: number } | undefined;
      if (row) {
        this.diskDepth--;
        this.diskBytes -= row.n;
      }
      this.ackedOnDisk.delete(seq);
    } catch (err) {
      // It would be published again after a restart: a duplicate, never a loss.
      this.ackedOnDisk.add(seq);
      this.diskFailed(err, 'delete');
    }
  }

  /** The synchronous mode SQLite actually runs with; undefined while in memory. */
  syncMode(): 'full' | 'normal' | 'off' | 'extra' | undefined {
    const mode = this.db?.pragma('synchronous', { simple: true }) as number | undefined;
    return mode === undefined ? undefined : (['off', 'normal', 'full', 'extra'] as const)[mode];
  }

  stats(): SpoolStats {
    const oldest = this.oldest();
    return {
      depth: this.diskDepth - this.ackedOnDisk.size + this.memory.size,
      bytes: this.diskBytes + this.memoryBytes,
      dropped: this.dropped,
      oldestAgeMs: oldest ? Math.max(0, this.now() - oldest.createdAt) : 0,
      lastSeq: this.lastSeq,
      diskOk: this.diskOk,
      memoryDepth: this.memory.size,
    };
  }

  close(): void {
    this.forgetRecent();
    this.statements.clear();
    try {
      this.db?.close();
    } catch (err) {
      this.logger.warn({ err }, 'spool close failed');
    }
    this.db = undefined;
  }

  private sql(text: string): Database.Statement {
    let stmt = this.statements.get(text);
    if (!stmt) {
      stmt = this.db!.prepare(text);
      this.statements.set(text, stmt);
    }
    return stmt;
  }

  private writeToDisk(batches: SpooledBatch[]): boolean {
    const db = this.db;
    if (!db) return false;
    try {
      const insert = this.sql('INSERT INTO batches (seq, created_at, body) VALUES (?, ?, ?)');
      const setMeta = this.sql(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      );
      db.transaction(() => {
        let last = this.lastSeq;
        for (const b of batches) {
          insert.run(b.seq, b.createdAt, b.body);
          last = Math.max(last, b.seq);
        }
        setMeta.run('last_seq', last);
      })();
      for (const b of batches) {
        this.diskDepth++;
        this.diskBytes += b.body.length;
      }
      return true;
    } catch (err) {
      this.diskFailed(err, 'write');
      return false;
    }
  }

  /** Keep a just-written batch's body (bounded: the oldest fall back to SQLite reads). */
  private remember(batch: SpooledBatch): void {
    if (!this.keepRecent) {
      this.recentFrom = batch.seq + 1;
      return;
    }
    this.recent.set(batch.seq, batch);
    this.recentBytes += batch.body.length;
    while (this.recent.size > RECENT_MAX_BATCHES || this.recentBytes > RECENT_MAX_BYTES) {
      const oldest = this.recent.values().next().value as SpooledBatch;
      this.recent.delete(oldest.seq);
      this.recentBytes -= oldest.body.length;
      this.recentFrom = oldest.seq + 1;
    }
  }

  private unremember(seq: number): void {
    const b = this.recent.get(seq);
    if (!b) return;
    this.recent.delete(seq);
    this.recentBytes -= b.body.length;
  }

  /** Empty the window; everything on disk is read from SQLite again. */
  private forgetRecent(): void {
    this.recent.clear();
    this.recentBytes = 0;
    this.recentFrom = this.lastSeq + 1;
  }

  private diskFailed(err: unknown, op: string): void {
    this.lastDiskTry = this.now();
    if (!this.diskOk) return;
    this.diskOk = false;
    this.logger.error(
      { err, path: this.path, op },
      'SPOOL DISK FAILURE: keeping batches in memory (same bounds) until the disk works again',
    );
  }

  /** While the disk is failing, try again at most once a second; move memory back on success. */
  private retryDisk(): void {
    if (this.diskOk || !this.db || this.now() - this.lastDiskTry < DISK_RETRY_MS) return;
    this.lastDiskTry = this.now();
    this.diskOk = true;
    const pending = [...this.memory.values()];
    if (pending.length === 0) {
      // Probe with the metadata write alone.
      if (!this.writeToDisk([])) return;
    } else if (!this.writeToDisk(pending)) return;
    this.forgetRecent();
    this.memory.clear();
    this.memoryBytes = 0;
    this.logger.warn({ path: this.path, moved: pending.length }, 'spool disk works again');
  }

  private oldest(): { seq: number; createdAt: number; onDisk: boolean } | undefined {
    let disk: { seq: number; created_at: number } | undefined;
    if (this.db && this.diskDepth > 0) {
      try {
        disk = this.sql('SELECT seq, created_at FROM batches ORDER BY seq LIMIT 1').get() as
          { seq: number; created_at: number } | undefined;
      } catch {
        disk = undefined;
      }
    }
    const mem = this.memory.values().next();
    const m = mem.done ? undefined : mem.value;
    if (disk && (!m || disk.seq < m.seq))
      return { seq: disk.seq, createdAt: disk.created_at, onDisk: true };
    return m ? { seq: m.seq, createdAt: m.createdAt, onDisk: false } : undefined;
  }

  /** Drop the oldest batches while over the byte or age bound; count and log them. */
  private enforceBounds(): void {
    const maxAgeMs = this.options.maxAgeSec * 1000;
    const droppedSeqs: number[] = [];
    // Each pass drops one batch; the bound on passes keeps a corrupt count from looping forever.
    for (let pass = 0; pass < 1_000_000; pass++) {
      const overBytes = this.diskBytes + this.memoryBytes > this.options.maxBytes;
      const oldest = this.oldest();
      if (!oldest) break;
      const tooOld = this.now() - oldest.createdAt > maxAgeMs;
      if (!overBytes && !tooOld) break;
      if (!this.dropOne(oldest.seq, oldest.onDisk)) break;
      droppedSeqs.push(oldest.seq);
      if (droppedSeqs.length >= DROP_CHUNK) this.reportDrops(droppedSeqs.splice(0));
    }
    if (droppedSeqs.length > 0) this.reportDrops(droppedSeqs);
  }

  private dropOne(seq: number, onDisk: boolean): boolean {
    if (!onDisk) {
      const b = this.memory.get(seq);
      if (!b) return false;
      this.memory.delete(seq);
      this.memoryBytes -= b.body.length;
      this.dropped++;
      return true;
    }
    try {
      const row = this.sql('DELETE FROM batches WHERE seq = ? RETURNING length(body) AS n').get(
        seq,
      ) as { n: number } | undefined;
      if (!row) return false;
      this.unremember(seq);
      this.diskDepth--;
      this.diskBytes -= row.n;
      this.ackedOnDisk.delete(seq);
      this.dropped++;
      return true;
    } catch (err) {
      this.diskFailed(err, 'drop');
      return false;
    }
  }

  private reportDrops(seqs: number[]): void {
    if (this.db && this.diskOk) {
      try {
        this.sql(
          'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
        ).run('dropped', this.dropped);
      } catch (err) {
        this.diskFailed(err, 'count drops');
      }
    }
    this.logger.warn(
      {
        count: seqs.length,
        firstSeq: seqs[0],
        lastSeq: seqs[seqs.length - 1],
        dropped: this.dropped,
      },
      'spool full or too old: dropped the oldest batches',
    );
  }
}
