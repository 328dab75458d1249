/**
 * The spool's rows in SQLite (better-sqlite3 12; 13 crashes on Node 20), the file
 * `spool.sqlite` in the state directory.
 *
 * - WAL, `locking_mode = EXCLUSIVE`: one writer per state directory (two agents sharing it
 *   would hand out the same seqs), and the WAL index stays in process memory (no -shm file).
 * - synchronous=FULL by default: every transaction is fsynced before `write` returns, so a
 *   power cut cannot roll back batches whose seq was handed out. NORMAL is still safe against
 *   SIGKILL (the WAL is in the page cache).
 * - `PRAGMA quick_check` at open: a damaged page would otherwise surface as batches that never
 *   publish. A `-wal` of another database file (meta `file_id`) counts as damage too: SQLite
 *   would apply its pages to this file. The Spool moves a corrupt file aside (salvage.ts).
 * - Bodies are stored deflated when that makes them smaller (body-codec.ts, column `enc`); the
 *   `size` column keeps the payload bytes, which the bounds count. Rows without them (a file
 *   from before) are read as stored. Columns missing from an older file are added at open.
 * - Pending deletes: an acknowledged row is never read again, and its DELETE goes into the next
 *   `write` transaction (one fsync for the batches and the acks). If that DELETE is lost to a
 *   crash, the batch is replayed: a duplicate, never a loss.
 * - Read-back cache: while `retainRecent(true)` (the publisher is connected), the bodies of the
 *   rows just written are also kept in a small bounded window (RECENT_*), so handing them out
 *   does not read them back. The window holds copies of rows that are on disk: it changes no
 *   durability, ack or drop rule. Invariant: every unacknowledged row with seq >= recentFrom
 *   is in the window, so `read` queries SQLite only below it.
 *
 * The BatchStore methods report a failing disk through `failed` and return what they did;
 * the methods used while opening (`open`, `load`, `readMeta`, `setMeta`, `importRows`) throw,
 * so the Spool can let go of a database it could not adopt.
 */
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../../ops/logger.js';
import { ensurePrivateFile, mkdirsPrivate, narrowToPrivate } from '../../ops/private-files.js';
import { decodeBody, encodeBody } from './body-codec.js';
import { parseGap } from './gap-note.js';
import { isCorruption, walIsForeign } from './salvage.js';
import type { BatchStore, DeadLetter, DroppedRow, SpooledBatch } from './store.js';

export const SPOOL_FILE = 'spool.sqlite';
/**
 * SQLite's page cache for the spool, in KiB: enough for the B-tree interior pages, not for
 * the data pages an outage writes (read, if ever, at replay), so memory stays bounded however
 * long the outage. SQLite's stock default, which better-sqlite3's build raises.
 */
export const PAGE_CACHE_KIB = 2000;
/** Bounds of the read-back cache (see the header): a few in-flight windows' worth. */
export const RECENT_MAX_BATCHES = 64;
export const RECENT_MAX_BYTES = 8 * 1024 * 1024;

/** A meta row written in the same transaction as the rows. */
export type MetaEntry = readonly [key: string, value: number | string];

export type OpenResult = 'ok' | 'in-use' | 'corrupt';

type Row = { seq: number; created_at: number; body: Buffer; gap: string | null; enc: unknown };

/** Payload bytes of a row: `size`, or the stored length for rows written as is without it. */
const PAYLOAD = 'coalesce(size, length(body))';
/** Columns of `batches` added after its first version, with their types. */
const ADDED_COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ['gap', 'TEXT'],
  ['enc', 'INTEGER'],
  ['size', 'INTEGER'],
];

const UPSERT_META =
  'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value';
/**
 * meta unsent_from, written in every transaction that removes or adds rows: every seq below it
 * is settled (acknowledged, dropped or set aside), so a salvage of a damaged file knows which
 * of the seqs it cannot read back were still to be published. The parameter is the next seq
 * for an empty table.
 */
const UPSERT_UNSENT =
  "INSERT INTO meta (key, value) VALUES ('unsent_from', coalesce((SELECT min(seq) FROM batches), ?)) ON CONFLICT(key) DO UPDATE SET value = excluded.value";

export interface SqliteStoreOptions {
  synchronous?: 'full' | 'normal';
  /** Store bodies deflated where that makes them smaller (default true). */
  deflate?: boolean;
  logger: Logger;
  /** A disk failure during a BatchStore method (the method then returns what it did). */
  failed: (err: unknown, op: string) => void;
}

export class SqliteStore implements BatchStore {
  readonly path: string;
  private db: Database.Database | undefined;
  /** Prepared statements, compiled once per connection. */
  private readonly statements = new Map<string, Database.Statement>();
  /** Rows in the table (acknowledged ones whose DELETE is pending included) and their bytes. */
  private rows = 0;
  private rowBytes = 0;
  /** The highest seq the table may hold. */
  private topSeq = 0;
  /** Acknowledged rows whose DELETE is pending, with their payload bytes. */
  private readonly acked = new Map<number, number>();
  private ackedBytes = 0;
  private deadRows = 0;
  private deadRowBytes = 0;
  private readonly recent = new Map<number, SpooledBatch>();
  private recentBytes = 0;
  private recentFrom = 1;
  private keepRecent = false;

  constructor(
    readonly dir: string,
    private readonly options: SqliteStoreOptions,
  ) {
    this.path = join(dir, SPOOL_FILE);
  }

  get isOpen(): boolean {
    return this.db !== undefined;
  }
  get depth(): number {
    return Math.max(0, this.rows - this.acked.size);
  }
  get bytes(): number {
    return Math.max(0, this.rowBytes - this.ackedBytes);
  }
  get heldBytes(): number {
    return this.rowBytes;
  }
  get deadLetterCount(): number {
    return this.deadRows;
  }
  get deadLetterBytes(): number {
    return this.deadRowBytes;
  }
  /** Acknowledged rows whose DELETE waits for the next write. */
  get pendingDeletes(): number {
    return this.acked.size;
  }

  // ---- opening (these throw) ----

  /**
   * Open (or create) the file and its tables. 'in-use' when another process holds it,
   * 'corrupt' when SQLite calls it damaged; any other failure throws.
   */
  open(): OpenResult {
    let db: Database.Database | undefined;
    try {
      mkdirsPrivate(this.dir);
      if (walIsForeign(this.path)) {
        this.options.logger.error(
          { path: `${this.path}-wal` },
          'spool write-ahead log belongs to another database file (restored or copied?): not applied',
        );
        return 'corrupt';
      }
      // SQLite creates the file 0644 less the umask, and its -wal/-shm with the file's mode:
      // made 0600 first, the database and its journals are private to the agent's user.
      ensurePrivateFile(this.path);
      for (const suffix of ['-wal', '-shm']) narrowToPrivate(this.path + suffix);
      // timeout 0: another process holding the lock is an answer, not something to wait for.
      db = new Database(this.path, { timeout: 0 });
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') {
        db.close();
        this.options.logger.error(
          { path: this.path, check: String(check).slice(0, 200) },
          'spool database failed its integrity check',
        );
        return 'corrupt';
      }
      db.exec(`
        CREATE TABLE IF NOT EXISTS batches (
          seq INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, body BLOB NOT NULL, gap TEXT,
          enc INTEGER, size INTEGER);
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS dead_letters (
          seq INTEGER PRIMARY KEY, created_at INTEGER, body BLOB, reason TEXT,
          set_aside_at INTEGER);`);
      const columns = db.prepare('PRAGMA table_info(batches)').all() as { name: string }[];
      for (const [name, type] of ADDED_COLUMNS)
        if (!columns.some((c) => c.name === name))
          db.exec(`ALTER TABLE batches ADD COLUMN ${name} ${type}`);
      // A write takes the exclusive lock now, rather than at the first batch.
      db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('created_at', 0);
      // Tells this file's WAL from another's when salvaging (salvage.ts).
      db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run(
        'file_id',
        randomInt(1, 2 ** 48 - 1),
      );
      this.db = db;
      this.statements.clear();
      return 'ok';
    } catch (err) {
      try {
        db?.close();
      } catch {
        // Closing a handle that failed to open has nothing left to release.
      }
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return 'in-use';
      if (isCorruption(err)) return 'corrupt';
      throw err;
    }
  }

  /** Count the rows of the open database; its batch count, bytes and highest seq. */
  load(): { depth: number; bytes: number; maxSeq: number | null } {
    const totals = this.sql(
      `SELECT count(*) AS n, coalesce(sum(${PAYLOAD}), 0) AS b, max(seq) AS m FROM batches`,
    ).get() as { n: number; b: number; m: number | null };
    const dead = this.sql(
      'SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS b FROM dead_letters',
    ).get() as { n: number; b: number };
    this.rows = totals.n;
    this.rowBytes = totals.b;
    this.topSeq = totals.m ?? 0;
    this.deadRows = dead.n;
    this.deadRowBytes = dead.b;
    this.forgetRecent();
    return { depth: totals.n, bytes: totals.b, maxSeq: totals.m };
  }

  readMeta(key: string): unknown {
    return (
      this.sql('SELECT value FROM meta WHERE key = ?').get(key) as { value: unknown } | undefined
    )?.value;
  }

  /** Write meta rows in one transaction, with unsent_from (`next` is the next seq). */
  setMeta(entries: readonly MetaEntry[], next: number): void {
    const set = this.sql(UPSERT_META);
    this.db!.transaction(() => {
      for (const [key, value] of entries) set.run(key, value);
      this.sql(UPSERT_UNSENT).run(next);
    })();
  }

  /** Acknowledged seqs whose DELETE is pending (settled, though their rows are still there). */
  pendingAckSeqs(): number[] {
    return [...this.acked.keys()];
  }

  /**
   * Insert rows read back from a damaged database, except those acknowledged meanwhile (the
   * pending deletes are then settled: those rows are not in this file). The seqs inserted.
   */
  importRows(
    rows: ReadonlyArray<{ seq: number; createdAt: number; body: Buffer; gap: string | null }>,
  ): number[] {
    const insert = this.sql(
      'INSERT OR IGNORE INTO batches (seq, created_at, body, gap) VALUES (?, ?, ?, ?)',
    );
    const seqs: number[] = [];
    this.db!.transaction(() => {
      for (const r of rows) {
        if (this.acked.has(r.seq)) continue;
        insert.run(r.seq, r.createdAt, r.body, r.gap);
        seqs.push(r.seq);
      }
    })();
    this.acked.clear();
    this.ackedBytes = 0;
    return seqs;
  }

  /** The synchronous mode SQLite actually runs with; undefined while closed. */
  syncMode(): 'full' | 'normal' | 'off' | 'extra' | undefined {
    const mode = this.db?.pragma('synchronous', { simple: true }) as number | undefined;
    return mode === undefined ? undefined : (['off', 'normal', 'full', 'extra'] as const)[mode];
  }

  /**
   * Close the connection whatever state it is in (a corrupt one may fail to close cleanly).
   * With `forget`, the file is going away (moved aside): its counts and cached rows go too;
   * pending deletes stay, so rows salvaged from it that were acknowledged are not imported.
   */
  release(forget: boolean): void {
    this.statements.clear();
    try {
      this.db?.close();
    } catch {
      // Let go of it either way; the next open starts afresh.
    }
    this.db = undefined;
    if (!forget) return;
    this.recent.clear();
    this.recentBytes = 0;
    this.rows = 0;
    this.rowBytes = 0;
  }

  /** Close the connection; throws when SQLite reports a failure. */
  close(): void {
    this.forgetRecent();
    this.statements.clear();
    const db = this.db;
    this.db = undefined;
    db?.close();
  }

  // ---- BatchStore ----

  /**
   * One transaction: the pending DELETEs, the inserts and `meta`. With synchronous=FULL it is
   * fsynced once, before this returns.
   */
  write(batches: readonly SpooledBatch[], meta: readonly MetaEntry[] = []): boolean {
    const db = this.db;
    if (!db) return false;
    const deletes = [...this.acked.keys()];
    try {
      const remove = this.sql(`DELETE FROM batches WHERE seq = ? RETURNING ${PAYLOAD} AS n`);
      const insert = this.sql(
        'INSERT INTO batches (seq, created_at, body, gap, enc, size) VALUES (?, ?, ?, ?, ?, ?)',
      );
      const deflate = this.options.deflate ?? true;
      const setMeta = this.sql(UPSERT_META);
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
        for (const b of batches) {
          const { stored, enc } = encodeBody(b.body, deflate);
          const gap = b.gapBefore ? JSON.stringify(b.gapBefore) : null;
          insert.run(b.seq, b.createdAt, stored, gap, enc, b.body.length);
        }
        for (const [key, value] of meta) setMeta.run(key, value);
        this.sql(UPSERT_UNSENT).run(Math.max(this.topSeq, batches.at(-1)?.seq ?? 0) + 1);
      })();
      for (const seq of deletes) this.settleAck(seq);
      this.rows -= removed;
      this.rowBytes -= removedBytes;
      for (const b of batches) {
        this.rows++;
        this.rowBytes += b.body.length;
        this.topSeq = Math.max(this.topSeq, b.seq);
        this.remember(b);
      }
      return true;
    } catch (err) {
      // Acked rows not deleted stay pending: a duplicate after a restart at worst.
      this.options.failed(err, 'write');
      return false;
    }
  }

  read(afterSeq: number, limit: number): SpooledBatch[] {
    const out: SpooledBatch[] = [];
    // Older than the read-back cache: read from SQLite (replay).
    if (this.db && this.rows > 0 && afterSeq + 1 < this.recentFrom) {
      try {
        const rows = this.sql(
          'SELECT seq, created_at, body, gap, enc FROM batches WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?',
        ).all(afterSeq, this.recentFrom, limit + this.acked.size) as Row[];
        for (const r of rows) {
          if (!this.acked.has(r.seq)) out.push(fromRow(r));
          if (out.length >= limit) break;
        }
      } catch (err) {
        this.options.failed(err, 'read');
      }
    }
    if (out.length < limit) {
      for (const b of this.recent.values()) {
        if (b.seq > afterSeq) out.push(b);
        if (out.length >= limit) break;
      }
    }
    return out;
  }

  oldest(): { seq: number; createdAt: number } | undefined {
    if (!this.db || this.rows <= 0) return undefined;
    try {
      const row = this.sql('SELECT seq, created_at FROM batches ORDER BY seq LIMIT 1').get() as
        { seq: number; created_at: number } | undefined;
      return row ? { seq: row.seq, createdAt: row.created_at } : undefined;
    } catch {
      // Asked for health and bounds: a read failure here is reported by the next write.
      return undefined;
    }
  }

  isAcked(seq: number): boolean {
    return this.acked.has(seq);
  }

  /** The cached copy of a row, if the read-back cache holds it. */
  cached(seq: number): SpooledBatch | undefined {
    return this.recent.get(seq);
  }

  ack(seq: number): boolean {
    const recent = this.unremember(seq);
    if (!this.db || this.acked.has(seq)) return false;
    const bytes = recent?.body.length ?? this.lengthOf(seq);
    if (bytes === undefined) return false;
    this.acked.set(seq, bytes);
    this.ackedBytes += bytes;
    return true;
  }

  drop(seq: number): DroppedRow | 'acked' | undefined {
    if (!this.db) return undefined;
    try {
      const row = this.db.transaction(() => {
        const r = this.sql(`DELETE FROM batches WHERE seq = ? RETURNING ${PAYLOAD} AS n, gap`).get(
          seq,
        ) as { n: number; gap: string | null } | undefined;
        if (r) this.sql(UPSERT_UNSENT).run(this.topSeq + 1);
        return r;
      })();
      if (!row) return undefined;
      this.unremember(seq);
      this.rows--;
      this.rowBytes -= row.n;
      if (this.settleAck(seq)) return 'acked';
      const gapBefore = parseGap(row.gap);
      return gapBefore ? { bytes: row.n, gapBefore } : { bytes: row.n };
    } catch (err) {
      this.options.failed(err, 'drop');
      return undefined;
    }
  }

  setAside(
    seq: number,
    reason: string,
    at: number,
    meta: readonly MetaEntry[] = [],
  ): DeadLetter | 'failed' | undefined {
    if (!this.db || this.acked.has(seq)) return undefined;
    const db = this.db;
    try {
      const row = db.transaction(() => {
        const r = this.sql(
          'DELETE FROM batches WHERE seq = ? RETURNING created_at AS createdAt, body, gap, enc',
        ).get(seq) as
          { createdAt: number; body: Buffer; gap: string | null; enc: unknown } | undefined;
        if (!r) return undefined;
        // Dead letters are kept as published, for inspection with any SQLite tool.
        const body = decodeBody(r.body, r.enc, seq);
        this.sql(
          'INSERT OR REPLACE INTO dead_letters (seq, created_at, body, reason, set_aside_at) VALUES (?, ?, ?, ?, ?)',
        ).run(seq, r.createdAt, body, reason, at);
        const set = this.sql(UPSERT_META);
        for (const [key, value] of meta) set.run(key, value);
        this.sql(UPSERT_UNSENT).run(this.topSeq + 1);
        return { ...r, body };
      })();
      if (!row) return undefined;
      this.unremember(seq);
      this.rows--;
      this.rowBytes -= row.body.length;
      this.deadRows++;
      this.deadRowBytes += row.body.length;
      const letter: DeadLetter = {
        seq,
        createdAt: row.createdAt,
        body: row.body,
        reason,
        setAsideAt: at,
      };
      const gapBefore = parseGap(row.gap);
      if (gapBefore) letter.gapBefore = gapBefore;
      return letter;
    } catch (err) {
      this.options.failed(err, 'set aside');
      return 'failed';
    }
  }

  deadLetters(): DeadLetter[] {
    if (!this.db || this.deadRows <= 0) return [];
    try {
      const rows = this.sql(
        'SELECT seq, created_at, body, reason, set_aside_at FROM dead_letters ORDER BY seq',
      ).all() as Array<Row & { reason: string; set_aside_at: number }>;
      return rows.map((r) => ({
        seq: r.seq,
        createdAt: r.created_at,
        body: r.body,
        reason: r.reason,
        setAsideAt: r.set_aside_at,
      }));
    } catch (err) {
      this.options.failed(err, 'read dead letters');
      return [];
    }
  }

  oldestDeadLetter(): number | undefined {
    if (!this.db || this.deadRows <= 0) return undefined;
    try {
      return (
        (this.sql('SELECT min(seq) AS m FROM dead_letters').get() as { m: number | null }).m ??
        undefined
      );
    } catch (err) {
      this.options.failed(err, 'bound dead letters');
      return undefined;
    }
  }

  dropDeadLetter(seq: number): boolean {
    if (!this.db) return false;
    try {
      const row = this.sql(
        'DELETE FROM dead_letters WHERE seq = ? RETURNING length(body) AS n',
      ).get(seq) as { n: number } | undefined;
      if (row) {
        this.deadRows--;
        this.deadRowBytes -= row.n;
      }
      return true;
    } catch (err) {
      this.options.failed(err, 'bound dead letters');
      return false;
    }
  }

  /** Write one meta row now (counters between writes). */
  recordMeta(key: string, value: number | string): void {
    if (!this.db) return;
    try {
      this.sql(UPSERT_META).run(key, value);
    } catch (err) {
      this.options.failed(err, `write ${key}`);
    }
  }

  // ---- read-back cache ----

  /**
   * Keep the bodies of rows written from now on (the publisher turns this on while connected).
   * Turning it off empties the cache: later reads query SQLite.
   */
  retainRecent(on: boolean): void {
    this.keepRecent = on;
    if (!on) this.forgetRecent();
  }

  /** Empty the cache; every row is read from SQLite again. */
  forgetRecent(): void {
    this.recent.clear();
    this.recentBytes = 0;
    // No row has a seq above topSeq: the invariant holds with an empty cache.
    this.recentFrom = this.topSeq + 1;
  }

  private remember(batch: SpooledBatch): void {
    if (!this.keepRecent) {
      this.recentFrom = Math.max(this.recentFrom, batch.seq + 1);
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

  // ---- helpers ----

  private sql(text: string): Database.Statement {
    let stmt = this.statements.get(text);
    if (!stmt) {
      stmt = this.db!.prepare(text);
      this.statements.set(text, stmt);
    }
    return stmt;
  }

  /** Payload bytes of a row; undefined when it is not there, 0 when it cannot be read. */
  private lengthOf(seq: number): number | undefined {
    try {
      const row = this.sql(`SELECT ${PAYLOAD} AS n FROM batches WHERE seq = ?`).get(seq) as
        { n: number } | undefined;
      return row?.n;
    } catch (err) {
      this.options.failed(err, 'read');
      return 0; // still never hand it out again
    }
  }

  /** An acked row's DELETE is done: no longer pending. */
  private settleAck(seq: number): boolean {
    const bytes = this.acked.get(seq);
    if (bytes === undefined) return false;
    this.acked.delete(seq);
    this.ackedBytes -= bytes;
    return true;
  }
}

function fromRow(r: Row): SpooledBatch {
  const b: SpooledBatch = {
    seq: r.seq,
    createdAt: r.created_at,
    body: decodeBody(r.body, r.enc, r.seq),
  };
  const gap = parseGap(r.gap);
  if (gap) b.gapBefore = gap;
  return b;
}
