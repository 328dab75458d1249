/**
 * Store-and-forward spool: every batch is written here, with its seq, before it is
 * published, and deleted only when the broker acknowledged it (PUBACK).
 *
 * - SQLite via better-sqlite3 12 (13 crashes on Node 20), WAL. synchronous=FULL by default:
 *   every commit is fsynced, so a power cut (common on a gateway) cannot roll back the last
 *   batches and their seq, which would then be handed out again. `spool.synchronous: normal`
 *   trades that for speed: still safe against SIGKILL (the WAL is in the page cache).
 * - Group commit: appends and acks made within a few milliseconds are written in ONE
 *   transaction (with FULL, one fsync for the lot instead of one per batch and one per ack),
 *   committed COMMIT_DELAY_MS after the first of them, or at once when the queue reaches
 *   COMMIT_MAX_*. A queued batch is invisible until its transaction committed: `append`
 *   resolves with its seq, and `peek` hands it out, only then — so nothing is published
 *   before it is durable, and a seq is never revealed before it is stored. A crash before the
 *   commit loses the queued batches (at most COMMIT_DELAY_MS worth, like a batch still on its
 *   way from the worker) together with their seqs, which nobody ever saw: the next start
 *   hands those numbers out again without any subscriber seeing a seq twice.
 *   A queued ack only delays the DELETE: the batch is never handed out again, and if the
 *   DELETE is lost to a crash the batch is replayed (a duplicate, never a loss).
 * - seq is stored in the same transaction as the batch and the highest seq ever stored is
 *   kept in `meta`, so an empty spool, or a restart, continues after it: never reused.
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
  /** Group commit: longest wait for more appends and acks (default COMMIT_DELAY_MS; 0 = end of turn). */
  commitDelayMs?: number;
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
  /** The highest seq ever assigned (the last ones may still wait for their commit). */
  lastSeq: number;
  /** False while the disk fails and batches live in memory only. */
  diskOk: boolean;
  /** Batches held in memory because the disk failed. */
  memoryDepth: number;
  /** Transactions that wrote queued batches or acks (batches per commit = group size). */
  commits: number;
  /** Batches the broker refused for good and that were moved to the dead letters, ever (persisted). */
  setAside: number;
  /** Dead letters kept for inspection now (not in depth or bytes). */
  deadLetters: number;
  deadLetterBytes: number;
  /** Dead letters dropped, oldest first, to keep them within their bound, ever (persisted). */
  deadLettersDropped: number;
}

/** A batch the broker refused for good, kept for inspection (never published again). */
export interface DeadLetter extends SpooledBatch {
  reason: string;
  setAsideAt: number;
}

export const SPOOL_FILE = 'spool.sqlite';

/** Another process has the spool open: running anyway would reuse seqs. */
export class SpoolInUseError extends Error {
  override name = 'SpoolInUseError';
}
const DISK_RETRY_MS = 1000;
/** Dead letters may take this share of spool.maxBytes; beyond it the oldest are dropped. */
export const DEAD_LETTER_SHARE = 0.1;
const DROP_CHUNK = 256;
/** Bounds of the recent-batches window (see the header): a few in-flight windows' worth. */
export const RECENT_MAX_BATCHES = 64;
export const RECENT_MAX_BYTES = 8 * 1024 * 1024;
/**
 * Group commit: a commit waits at most this long for more appends and acks. Batches that
 * arrive while the main thread is blocked in an fsync group up by themselves; the delay also
 * groups batches that arrive a little apart. Short next to any window (seconds).
 */
export const COMMIT_DELAY_MS = 2;
/**
 * SQLite's page cache for the spool, in KiB. better-sqlite3 builds SQLite with a 16 MB
 * default (SQLITE_DEFAULT_CACHE_SIZE=-16000). While connected the spool's pages are reused
 * (rows are deleted on PUBACK) and the cache stays small, but during an outage every batch
 * writes new pages and the cache filled up to its 16 MB: the agent's RSS grew by ≈ 14 MB
 * through a 60 s outage at 10,000 readings/s (docs/benchmarks/publish.md). The cached pages
 * are blob pages written once and read, if ever, at replay (oldest first, so not the cached
 * ones); the B-tree interior pages are a few dozen. SQLite's stock default (2 MB) keeps them
 * and bounds the outage's growth.
 */
export const PAGE_CACHE_KIB = 2000;
/** A queue this large is committed at once rather than after the delay. */
export const COMMIT_MAX_BATCHES = 64;
export const COMMIT_MAX_BYTES = 16 * 1024 * 1024;

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
  /**
   * Acked on-disk batches whose DELETE is queued for the next commit (or failed): never
   * hand them out again.
   */
  private readonly ackedOnDisk = new Map<number, number>();
  /** Payload bytes of the batches in ackedOnDisk. */
  private ackedBytes = 0;
  /** Appends waiting for the next commit, in seq order. */
  private queued: Array<{ batch: SpooledBatch; resolve: (seq: number) => void }> = [];
  private queuedBytes = 0;
  /** Cancels the scheduled commit; set while one is scheduled. */
  private cancelCommit: (() => void) | undefined;
  private commits = 0;
  private readonly commitListeners = new Set<() => void>();
  private setAsideCount = 0;
  private deadDisk = 0;
  private deadDiskBytes = 0;
  private deadDropped = 0;
  /** Dead letters the disk could not take, in seq order; bounded like those on disk. */
  private readonly deadMemory = new Map<number, DeadLetter>();
  private deadMemoryBytes = 0;
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
      spool.db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
      spool.db.exec(`
        CREATE TABLE IF NOT EXISTS batches (
          seq INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, body BLOB NOT NULL);
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS dead_letters (
          seq INTEGER PRIMARY KEY, created_at INTEGER, body BLOB, reason TEXT,
          set_aside_at INTEGER);`);
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
      spool.setAsideCount = meta('set_aside');
      spool.deadDropped = meta('dead_letters_dropped');
      const dead = spool.db
        .prepare('SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS b FROM dead_letters')
        .get() as { n: number; b: number };
      spool.deadDisk = dead.n;
      spool.deadDiskBytes = dead.b;
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
   * Queue a batch for the next commit; resolves with its seq once it is stored (see the
   * header), never rejects: with a failing disk it resolves once the batch is in the memory
   * window. The spool keeps a reference to `body` (no copy): do not modify it afterwards.
   */
  append(body: Uint8Array, createdAt: number): Promise<number> {
    const seq = this.lastSeq + 1;
    this.lastSeq = seq;
    const view = Buffer.isBuffer(body)
      ? body
      : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const batch: SpooledBatch = { seq, createdAt, body: view };
    this.retryDisk();
    if (!this.diskOk) {
      // Whatever is still queued goes to memory first: the memory window stays in seq order.
      this.commit();
      this.keepInMemory([batch]);
      this.enforceBounds();
      this.notifyCommitted();
      return Promise.resolve(seq);
    }
    return new Promise((resolve) => {
      this.queued.push({ batch, resolve });
      this.queuedBytes += view.length;
      if (this.queued.length >= COMMIT_MAX_BATCHES || this.queuedBytes >= COMMIT_MAX_BYTES)
        this.commit();
      else this.scheduleCommit();
    });
  }

  /**
   * Write the queued appends and acks now, in one transaction. Runs by itself after the
   * commit delay; call it to make them durable sooner (close() does).
   */
  commit(): void {
    this.cancelScheduledCommit();
    if (this.queued.length === 0 && !(this.diskOk && this.ackedOnDisk.size > 0)) return;
    const queued = this.queued;
    this.queued = [];
    this.queuedBytes = 0;
    const batches = queued.map((q) => q.batch);
    if (this.diskOk && this.writeToDisk(batches, batches.at(-1)?.seq)) {
      for (const b of batches) this.remember(b);
    } else {
      this.keepInMemory(batches);
    }
    this.enforceBounds();
    for (const q of queued) q.resolve(q.batch.seq);
    if (batches.length > 0) this.notifyCommitted();
  }

  /** Called after each commit that stored batches (the publisher pumps then). */
  onCommitted(listener: () => void): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
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

  /**
   * The broker has the batch: forget it. The DELETE goes into the next commit; until then
   * (or if it fails) the batch is never handed out again. Unknown seqs are ignored.
   */
  ack(seq: number): void {
    const recent = this.unremember(seq);
    const inMemory = this.memory.get(seq);
    if (inMemory) {
      this.memory.delete(seq);
      this.memoryBytes -= inMemory.body.length;
      return;
    }
    // Queued batches were never handed out: only committed seqs can be acknowledged.
    if (!this.db || this.ackedOnDisk.has(seq) || seq > this.lastSeq - this.queued.length) return;
    const bytes = recent?.body.length ?? this.storedBytes(seq);
    if (bytes === undefined) return; // dropped meanwhile
    this.ackedOnDisk.set(seq, bytes);
    this.ackedBytes += bytes;
    this.scheduleCommit();
  }

  /**
   * The broker refused this batch for good: move it out of the publish queue into the dead
   * letters (one transaction: DELETE from batches, INSERT into dead_letters), so the batches
   * after it flow on. It is never handed out again and is counted in `setAside`; dead letters
   * are kept for inspection within DEAD_LETTER_SHARE of maxBytes, the oldest dropped (counted).
   * False for a seq that is not waiting to be published (unknown, acked, dropped or not yet
   * committed).
   */
  setAside(seq: number, reason: string): boolean {
    if (this.queued.some((q) => q.batch.seq === seq)) return false;
    const at = this.now();
    const inMemory = this.memory.get(seq);
    if (inMemory) {
      this.memory.delete(seq);
      this.memoryBytes -= inMemory.body.length;
      this.keepDeadInMemory({ ...inMemory, reason, setAsideAt: at });
      this.countSetAside();
      return true;
    }
    if (!this.db || this.ackedOnDisk.has(seq)) return false;
    const recent = this.recent.get(seq);
    try {
      const row = this.db.transaction(() => {
        const r = this.sql(
          'DELETE FROM batches WHERE seq = ? RETURNING created_at AS createdAt, body',
        ).get(seq) as { createdAt: number; body: Buffer } | undefined;
        if (!r) return undefined;
        this.sql(
          'INSERT OR REPLACE INTO dead_letters (seq, created_at, body, reason, set_aside_at) VALUES (?, ?, ?, ?, ?)',
        ).run(seq, r.createdAt, r.body, reason, at);
        this.sql(
          'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
        ).run('set_aside', this.setAsideCount + 1);
        return r;
      })();
      if (!row) return false;
      this.unremember(seq);
      this.diskDepth--;
      this.diskBytes -= row.body.length;
      this.deadDisk++;
      this.deadDiskBytes += row.body.length;
      this.setAsideCount++;
      this.enforceDeadLetterBound();
      return true;
    } catch (err) {
      this.diskFailed(err, 'set aside');
      // The disk cannot move it: keep it as an in-memory dead letter and delete the row like
      // an acked one (pending until the disk works), so it is never handed out again.
      const bytes = recent?.body.length ?? this.storedBytes(seq);
      if (bytes === undefined) return false;
      this.unremember(seq);
      this.ackedOnDisk.set(seq, bytes);
      this.ackedBytes += bytes;
      if (recent) this.keepDeadInMemory({ ...recent, reason, setAsideAt: at });
      this.countSetAside();
      return true;
    }
  }

  /** The dead letters kept now, oldest first (for inspection and tests). */
  deadLetters(): DeadLetter[] {
    const out: DeadLetter[] = [];
    if (this.db && this.deadDisk > 0) {
      try {
        const rows = this.sql(
          'SELECT seq, created_at, body, reason, set_aside_at FROM dead_letters ORDER BY seq',
        ).all() as Array<Row & { reason: string; set_aside_at: number }>;
        for (const r of rows)
          out.push({
            seq: r.seq,
            createdAt: r.created_at,
            body: r.body,
            reason: r.reason,
            setAsideAt: r.set_aside_at,
          });
      } catch (err) {
        this.diskFailed(err, 'read dead letters');
      }
    }
    out.push(...this.deadMemory.values());
    return out.sort((a, b) => a.seq - b.seq);
  }

  /** The synchronous mode SQLite actually runs with; undefined while in memory. */
  syncMode(): 'full' | 'normal' | 'off' | 'extra' | undefined {
    const mode = this.db?.pragma('synchronous', { simple: true }) as number | undefined;
    return mode === undefined ? undefined : (['off', 'normal', 'full', 'extra'] as const)[mode];
  }

  stats(): SpoolStats {
    const oldest = this.oldest();
    return {
      depth: this.diskDepth - this.ackedOnDisk.size + this.memory.size + this.queued.length,
      bytes: this.diskBytes - this.ackedBytes + this.memoryBytes + this.queuedBytes,
      dropped: this.dropped,
      oldestAgeMs: oldest ? Math.max(0, this.now() - oldest.createdAt) : 0,
      lastSeq: this.lastSeq,
      diskOk: this.diskOk,
      memoryDepth: this.memory.size,
      commits: this.commits,
      setAside: this.setAsideCount,
      deadLetters: this.deadDisk + this.deadMemory.size,
      deadLetterBytes: this.deadDiskBytes + this.deadMemoryBytes,
      deadLettersDropped: this.deadDropped,
    };
  }

  /** Commits what is queued, then closes the database. */
  close(): void {
    this.commit();
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

  private scheduleCommit(): void {
    if (this.cancelCommit) return;
    const delay = this.options.commitDelayMs ?? COMMIT_DELAY_MS;
    const run = () => {
      this.cancelCommit = undefined;
      this.commit();
    };
    if (delay > 0) {
      const timer = setTimeout(run, delay);
      this.cancelCommit = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(run);
      this.cancelCommit = () => clearImmediate(immediate);
    }
  }

  private cancelScheduledCommit(): void {
    this.cancelCommit?.();
    this.cancelCommit = undefined;
  }

  private notifyCommitted(): void {
    for (const listener of this.commitListeners) listener();
  }

  /** Acked on-disk batches whose DELETE has not been committed yet. */
  private pendingDeletes(): number[] {
    return this.diskOk ? [...this.ackedOnDisk.keys()] : [];
  }

  private keepInMemory(batches: SpooledBatch[]): void {
    for (const b of batches) {
      this.memory.set(b.seq, b);
      this.memoryBytes += b.body.length;
    }
  }

  /**
   * One transaction: the pending DELETEs of acked batches, the inserts, and `last_seq`
   * (when given). With synchronous=FULL it is fsynced once, before this returns.
   */
  private writeToDisk(batches: SpooledBatch[], lastSeq: number | undefined): boolean {
    const db = this.db;
    if (!db) return false;
    const deletes = this.pendingDeletes();
    try {
      const remove = this.sql('DELETE FROM batches WHERE seq = ? RETURNING length(body) AS n');
      const insert = this.sql('INSERT INTO batches (seq, created_at, body) VALUES (?, ?, ?)');
      const setMeta = this.sql(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      );
      let removed = 0;
      let removedBytes = 0;
      db.transaction(() => {
        for (const seq of deletes) {
          const row = remove.get(seq) as { n: number } | undefined;
          if (row) {
            removed++;
            removedBytes += row.n;
          }
        }
        for (const b of batches) insert.run(b.seq, b.createdAt, b.body);
        if (lastSeq !== undefined) setMeta.run('last_seq', lastSeq);
      })();
      this.commits++;
      for (const seq of deletes) this.settleAck(seq);
      this.diskDepth -= removed;
      this.diskBytes -= removedBytes;
      for (const b of batches) {
        this.diskDepth++;
        this.diskBytes += b.body.length;
      }
      return true;
    } catch (err) {
      // Acked batches not deleted stay in ackedOnDisk: a duplicate after a restart at worst.
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

  private unremember(seq: number): SpooledBatch | undefined {
    const b = this.recent.get(seq);
    if (!b) return undefined;
    this.recent.delete(seq);
    this.recentBytes -= b.body.length;
    return b;
  }

  /** Payload bytes of an on-disk batch; undefined when it is not there. */
  private storedBytes(seq: number): number | undefined {
    try {
      const row = this.sql('SELECT length(body) AS n FROM batches WHERE seq = ?').get(seq) as
        { n: number } | undefined;
      return row?.n;
    } catch (err) {
      this.diskFailed(err, 'read');
      return 0; // still never hand it out again
    }
  }

  /** An acked batch's DELETE is done: no longer pending. */
  private settleAck(seq: number): boolean {
    const bytes = this.ackedOnDisk.get(seq);
    if (bytes === undefined) return false;
    this.ackedOnDisk.delete(seq);
    this.ackedBytes -= bytes;
    return true;
  }

  /** Empty the window; everything on disk is read from SQLite again. */
  private forgetRecent(): void {
    this.recent.clear();
    this.recentBytes = 0;
    // Queued batches are not on disk yet: the commit remembers them (or moves recentFrom).
    this.recentFrom = this.lastSeq - this.queued.length + 1;
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
    // Nothing is queued while the disk fails: every seq assigned so far is in `pending`.
    const pending = [...this.memory.values()];
    // With nothing pending this probes with the metadata write alone.
    if (!this.writeToDisk(pending, this.lastSeq)) return;
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
      const outcome = this.dropOne(oldest.seq, oldest.onDisk);
      if (!outcome) break;
      if (outcome === 'dropped') droppedSeqs.push(oldest.seq);
      if (droppedSeqs.length >= DROP_CHUNK) this.reportDrops(droppedSeqs.splice(0));
    }
    if (droppedSeqs.length > 0) this.reportDrops(droppedSeqs);
  }

  /** Drop one batch; a row whose ack was not deleted yet is 'settled', not counted. */
  private dropOne(seq: number, onDisk: boolean): 'dropped' | 'settled' | false {
    if (!onDisk) {
      const b = this.memory.get(seq);
      if (!b) return false;
      this.memory.delete(seq);
      this.memoryBytes -= b.body.length;
      this.dropped++;
      return 'dropped';
    }
    try {
      const row = this.sql('DELETE FROM batches WHERE seq = ? RETURNING length(body) AS n').get(
        seq,
      ) as { n: number } | undefined;
      if (!row) return false;
      this.unremember(seq);
      this.diskDepth--;
      this.diskBytes -= row.n;
      if (this.settleAck(seq)) return 'settled';
      this.dropped++;
      return 'dropped';
    } catch (err) {
      this.diskFailed(err, 'drop');
      return false;
    }
  }

  private keepDeadInMemory(letter: DeadLetter): void {
    this.unremember(letter.seq);
    this.deadMemory.set(letter.seq, letter);
    this.deadMemoryBytes += letter.body.length;
    this.enforceDeadLetterBound();
  }

  /** A set-aside counted where the disk could not record it: persisted with the next meta write. */
  private countSetAside(): void {
    this.setAsideCount++;
    this.writeMeta('set_aside', this.setAsideCount);
  }

  private writeMeta(key: string, value: number): void {
    if (!this.db || !this.diskOk) return;
    try {
      this.sql(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ).run(key, value);
    } catch (err) {
      this.diskFailed(err, `write ${key}`);
    }
  }

  /** Dead letters stay within DEAD_LETTER_SHARE of maxBytes: drop the oldest, counted. */
  private enforceDeadLetterBound(): void {
    const limit = Math.floor(this.options.maxBytes * DEAD_LETTER_SHARE);
    let droppedNow = 0;
    // Each pass drops one dead letter: bounded by how many there are.
    for (let pass = this.deadDisk + this.deadMemory.size; pass > 0; pass--) {
      if (this.deadDiskBytes + this.deadMemoryBytes <= limit) break;
      const mem = this.deadMemory.values().next();
      let diskOldest: number | undefined;
      if (this.db && this.deadDisk > 0) {
        try {
          diskOldest =
            (this.sql('SELECT min(seq) AS m FROM dead_letters').get() as { m: number | null }).m ??
            undefined;
        } catch (err) {
          this.diskFailed(err, 'bound dead letters');
        }
      }
      if (!mem.done && (diskOldest === undefined || mem.value.seq < diskOldest)) {
        this.deadMemory.delete(mem.value.seq);
        this.deadMemoryBytes -= mem.value.body.length;
      } else if (diskOldest !== undefined) {
        try {
          const row = this.sql(
            'DELETE FROM dead_letters WHERE seq = ? RETURNING length(body) AS n',
          ).get(diskOldest) as { n: number } | undefined;
          this.deadDisk--;
          this.deadDiskBytes -= row?.n ?? 0;
        } catch (err) {
          this.diskFailed(err, 'bound dead letters');
          break;
        }
      } else break;
      this.deadDropped++;
      droppedNow++;
    }
    if (droppedNow > 0) {
      this.writeMeta('dead_letters_dropped', this.deadDropped);
      this.logger.warn(
        { count: droppedNow, deadLettersDropped: this.deadDropped },
        'dead letters over their bound: dropped the oldest',
      );
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
