/**
 * The spool's rows in SQLite (better-sqlite3 12; 13 crashes on Node 20), the file
 * `spool.sqlite` in the state directory, opened as sqlite-open.ts says (WAL, exclusive lock,
 * synchronous=FULL by default, integrity check).
 *
 * - The rows and their SQL: sqlite-batches.ts (bodies deflated when that makes them smaller);
 *   the dead letters: sqlite-dead-letters.ts. This store keeps their counts and bytes.
 * - Pending deletes: an acknowledged row is never read again, and its DELETE goes into the next
 *   `write` transaction (one fsync for the batches and the acks). If that DELETE is lost to a
 *   crash, the batch is replayed: a duplicate, never a loss.
 * - Read-back cache (recent-cache.ts): the rows just written, while the publisher is connected.
 *
 * The BatchStore methods report a failing disk through `failed` and return what they did;
 * the methods used while opening (`open`, `load`, `readMeta`, `setMeta`, `importRows`) throw,
 * so the Spool can let go of a database it could not adopt.
 */
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { parseGap } from './gap-note.js';
import { PendingDeletes } from './pending-deletes.js';
import { RecentCache } from './recent-cache.js';
import {
  batchBytes,
  batchTotals,
  deleteBatch,
  importBatches,
  oldestBatch,
  readBatches,
  writeBatches,
} from './sqlite-batches.js';
import {
  DeadLetterTable,
  discardDeadLetters,
  requeueDeadLetters,
  setAsideRow,
} from './sqlite-dead-letters.js';
import { openSpoolDatabase, SPOOL_FILE, UPSERT_META, UPSERT_UNSENT } from './sqlite-open.js';
import type {
  DeadLetter,
  DroppedRow,
  DurableStore,
  DurableStoreOptions,
  ImportedRow,
  MetaEntry,
  OpenResult,
  SpooledBatch,
} from './store.js';

export { SPOOL_FILE } from './sqlite-open.js';
export { RECENT_MAX_BATCHES } from './recent-cache.js';

export class SqliteStore implements DurableStore {
  readonly path: string;
  private db: Database.Database | undefined;
  private readonly statements = new Map<string, Database.Statement>();
  /** Rows in the table (acknowledged ones whose DELETE is pending included) and their bytes. */
  private rows = 0;
  private rowBytes = 0;
  /** The highest seq the table may hold. */
  private topSeq = 0;
  private readonly acked = new PendingDeletes();
  private readonly dead: DeadLetterTable;
  private readonly recent = new RecentCache();

  constructor(
    readonly dir: string,
    private readonly options: DurableStoreOptions,
  ) {
    this.path = join(dir, SPOOL_FILE);
    this.dead = new DeadLetterTable(this.sql, options.failed);
  }

  get isOpen(): boolean {
    return this.db !== undefined;
  }
  get depth(): number {
    return Math.max(0, this.rows - this.acked.size);
  }
  get bytes(): number {
    return Math.max(0, this.rowBytes - this.acked.bytes);
  }
  get heldBytes(): number {
    return this.rowBytes;
  }
  get deadLetterCount(): number {
    return this.dead.count;
  }
  get deadLetterBytes(): number {
    return this.dead.bytes;
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
    const db = openSpoolDatabase(this.dir, this.path, this.options);
    if (typeof db === 'string') return db;
    this.db = db;
    this.statements.clear();
    return 'ok';
  }

  /** Count the rows of the open database; its batch count, bytes and highest seq. */
  load(): { depth: number; bytes: number; maxSeq: number | null } {
    const totals = batchTotals(this.sql);
    this.rows = totals.rows;
    this.rowBytes = totals.bytes;
    this.topSeq = totals.maxSeq ?? 0;
    this.dead.load();
    this.forgetRecent();
    return { depth: totals.rows, bytes: totals.bytes, maxSeq: totals.maxSeq };
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
    return this.acked.seqs();
  }

  /**
   * Insert rows read back from a damaged database, except those acknowledged meanwhile (the
   * pending deletes are then settled: those rows are not in this file). The seqs inserted.
   */
  importRows(rows: readonly ImportedRow[]): number[] {
    const seqs = importBatches(this.db!, this.sql, rows, this.acked);
    this.acked.clear();
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
    const deletes = this.acked.seqs();
    try {
      const { removed, removedBytes } = writeBatches(db, this.sql, {
        deletes,
        batches,
        meta,
        deflate: this.options.deflate ?? true,
        next: Math.max(this.topSeq, batches.at(-1)?.seq ?? 0) + 1,
      });
      for (const seq of deletes) this.acked.settle(seq);
      this.rows -= removed;
      this.rowBytes -= removedBytes;
      for (const b of batches) {
        this.rows++;
        this.rowBytes += b.body.length;
        this.topSeq = Math.max(this.topSeq, b.seq);
        this.recent.remember(b);
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
    if (this.db && this.rows > 0 && afterSeq + 1 < this.recent.from) {
      try {
        const range = { afterSeq, beforeSeq: this.recent.from, limit };
        for (const b of readBatches(this.sql, range, this.acked)) out.push(b);
      } catch (err) {
        this.options.failed(err, 'read');
      }
    }
    if (out.length < limit) this.recent.readInto(out, afterSeq, limit);
    return out;
  }

  oldest(): { seq: number; createdAt: number } | undefined {
    if (!this.db || this.rows <= 0) return undefined;
    try {
      return oldestBatch(this.sql);
    } catch {
      // Asked for health and bounds: a read failure here is reported by the next write.
      return undefined;
    }
  }

  /** The cached copy of a row, if the read-back cache holds it. */
  cached(seq: number): SpooledBatch | undefined {
    return this.recent.get(seq);
  }

  ack(seq: number): boolean {
    const recent = this.recent.take(seq);
    if (!this.db || this.acked.has(seq)) return false;
    const bytes = recent?.body.length ?? this.lengthOf(seq);
    if (bytes === undefined) return false;
    this.acked.add(seq, bytes);
    return true;
  }

  drop(seq: number): DroppedRow | 'acked' | undefined {
    if (!this.db) return undefined;
    try {
      const row = deleteBatch(this.db, this.sql, seq, this.topSeq + 1);
      if (!row) return undefined;
      this.recent.take(seq);
      this.rows--;
      this.rowBytes -= row.bytes;
      if (this.acked.settle(seq)) return 'acked';
      return row.gapBefore ? { bytes: row.bytes, gapBefore: row.gapBefore } : { bytes: row.bytes };
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
    try {
      const next = this.topSeq + 1;
      const row = setAsideRow(this.db, this.sql, { seq, reason, at, meta, next });
      if (!row) return undefined;
      this.recent.take(seq);
      this.rows--;
      this.rowBytes -= row.body.length;
      this.dead.added(row.body.length);
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
    return this.db ? this.dead.list() : [];
  }

  oldestDeadLetter(): number | undefined {
    return this.db ? this.dead.oldest() : undefined;
  }

  dropDeadLetter(seq: number): boolean {
    return this.db ? this.dead.drop(seq) : false;
  }

  changeDeadLetters(kind: 'requeue' | 'drop', seqs: readonly number[]): number[] | 'failed' {
    if (!this.db) return 'failed';
    try {
      if (kind === 'drop') {
        const gone = discardDeadLetters(this.db, seqs);
        this.dead.load();
        return gone;
      }
      const moved = requeueDeadLetters(this.db, seqs);
      // Rows came back below seqs handed out: count them again; load() also empties the
      // read-back cache, so reads query SQLite for them.
      const top = this.topSeq;
      this.load();
      this.topSeq = Math.max(top, this.topSeq);
      return moved;
    } catch (err) {
      this.options.failed(err, `${kind} dead letters`);
      return 'failed';
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
    this.recent.retain(on, this.topSeq);
  }

  /** Empty the cache; every row is read from SQLite again. */
  forgetRecent(): void {
    this.recent.forget(this.topSeq);
  }

  // ---- helpers ----

  /** A prepared statement, compiled once per connection. */
  private readonly sql = (text: string): Database.Statement => {
    let stmt = this.statements.get(text);
    if (!stmt) {
      stmt = this.db!.prepare(text);
      this.statements.set(text, stmt);
    }
    return stmt;
  };

  /** Payload bytes of a row; undefined when it is not there, 0 when it cannot be read. */
  private lengthOf(seq: number): number | undefined {
    try {
      return batchBytes(this.sql, seq);
    } catch (err) {
      this.options.failed(err, 'read');
      return 0; // still never hand it out again
    }
  }
}
