/**
 * Store-and-forward spool: every batch is written here, with its seq, before it is
 * published, and deleted only when the broker acknowledged it (PUBACK).
 *
 * The rule everything below keeps: **a seq is handed to the publisher only after it is
 * durable somewhere the next start reads** (the database, or the seq mark file beside it),
 * so no start ever hands out a seq a subscriber may already have seen, whatever the disk did.
 *
 * - SQLite via better-sqlite3 12 (13 crashes on Node 20), WAL. synchronous=FULL by default:
 *   every commit is fsynced, so a power cut (common on a gateway) cannot roll back the last
 *   batches and their seq, which would then be handed out again. `spool.synchronous: normal`
 *   trades that for speed: still safe against SIGKILL (the WAL is in the page cache).
 * - Group commit: appends and acks made within a few milliseconds are written in ONE
 *   transaction (with FULL, one fsync for the lot instead of one per batch and one per ack),
 *   committed COMMIT_DELAY_MS after the first of them, or at once when the queue reaches
 *   COMMIT_MAX_*. A queued batch is invisible until its transaction committed: `append`
 *   resolves with its seq, and `peek` hands it out, only then. A crash before the commit
 *   loses the queued batches together with their seqs, which nobody ever saw: the next start
 *   may hand those numbers out again without any subscriber seeing a seq twice.
 *   A queued ack only delays the DELETE: the batch is never handed out again, and if the
 *   DELETE is lost to a crash the batch is replayed (a duplicate, never a loss).
 * - The seq mark (seq-mark.ts, `spool.seq`) keeps, outside the database, a ceiling no
 *   assigned seq exceeds (written ahead in blocks of CEILING_BLOCK) and, while the database
 *   fails, the highest seq that may have been revealed from memory (written ahead in blocks of
 *   REVEAL_BLOCK). A start reads both and the database and continues after the highest;
 *   seqs that may have been revealed but whose batches are gone are counted as dropped.
 * - A failing disk (full, read-only, I/O error): batches live in a memory window bounded by
 *   `memoryMaxBytes` (drop oldest, counted); they are published once the mark made their seqs
 *   durable, and withheld while nothing can be written. The database is retried in the
 *   background (DISK_RETRY_MS; reopened every REOPEN_MS when it could not be opened) and the
 *   memory window moves back to it when it works.
 * - A database SQLite reports corrupt (at open: quick_check; later: SQLITE_CORRUPT) is moved
 *   aside for inspection, its readable rows salvaged into a new one that continues numbering.
 * - Numbering unknown (neither database nor mark readable): batches wait unnumbered (same
 *   memory bound) until one of them can be read; numbering never restarts from 1 by guess.
 * - Every drop is counted (persistently where possible) and the next batch appended after it
 *   carries a note of the dropped seqs (`gapBefore`), so a subscriber's gap is explained.
 * - Bounded by payload bytes and by age (wall clock, `createdAt`): the oldest batches are
 *   dropped first and counted.
 * - Read-back avoidance: while the publisher is connected (`retainRecent(true)`), the bodies
 *   of the batches just written to disk are also kept in a small bounded window (RECENT_*),
 *   so handing them out does not read them back from SQLite. The window holds copies of rows
 *   that are on disk: it changes no durability, ack or drop rule.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../ops/logger.js';
import { DiskTrouble, causeOf } from './disk-trouble.js';
import { EMPTY_MARK, MARK_FILE, SeqMarkFile, readMark, type SeqMark } from './seq-mark.js';
import { isCorruption, moveAside, salvage, type Salvage } from './spool-salvage.js';
import { mergeGap, parseGap, type GapNote } from './gap-note.js';

export type { GapNote };

export interface SpoolOptions {
  /** Bound on the stored payload bytes (not the file size). */
  maxBytes: number;
  /** Batches older than this are dropped. */
  maxAgeSec: number;
  /** Bound on the batches held in memory while the disk fails (default MEMORY_MAX_BYTES). */
  memoryMaxBytes?: number;
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
  /** Seqs dropped since the previous note (lower than this seq). */
  gapBefore?: GapNote;
}

export interface SpoolStats {
  /** Batches waiting to be acknowledged. */
  depth: number;
  bytes: number;
  /** Batches dropped (bounds, disk loss, crash in memory mode), ever (persisted). */
  dropped: number;
  /** The latest drop: how many, which seqs, why. */
  lastDrop?: GapNote;
  /** Age of the oldest unacknowledged batch, 0 when empty. */
  oldestAgeMs: number;
  /** The highest seq ever assigned (the last ones may still wait for their commit). */
  lastSeq: number;
  /** False while the database fails and batches live in memory only. */
  diskOk: boolean;
  /** False while the seq mark file cannot be written. */
  markOk: boolean;
  /** Batches held in memory because the disk failed. */
  memoryDepth: number;
  memoryBytes: number;
  /** Memory batches not published yet because their seq is not durable anywhere. */
  withheld: number;
  /** Batches waiting for a seq because neither the database nor the mark can be read. */
  unnumbered: number;
  /** Corrupt databases moved aside, ever. */
  corruptMovedAside: number;
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
/** While the database fails, a write is retried at most this often. */
export const DISK_RETRY_MS = 1000;
/** While the database cannot be opened, opening is retried at most this often. */
export const REOPEN_MS = 5000;
/** Default bound of the memory window (spool.memoryMaxBytes). */
export const MEMORY_MAX_BYTES = 8 * 1024 * 1024;
/** The mark's ceiling is written this far ahead: one mark write per this many batches. */
export const CEILING_BLOCK = 64;
/** While in memory, the revealed mark is written this far ahead. */
export const REVEAL_BLOCK = 16;
const DROP_CHUNK = 256;
/** Dead letters may take this share of spool.maxBytes; beyond it the oldest are dropped. */
export const DEAD_LETTER_SHARE = 0.1;
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
 * SQLite's page cache for the spool, in KiB: enough for the B-tree interior pages, not for
 * the data pages an outage writes (read, if ever, at replay), so memory stays bounded however
 * long the outage. SQLite's stock default, which better-sqlite3's build raises.
 */
export const PAGE_CACHE_KIB = 2000;
/** A queue this large is committed at once rather than after the delay. */
export const COMMIT_MAX_BATCHES = 64;
export const COMMIT_MAX_BYTES = 16 * 1024 * 1024;

type Row = { seq: number; created_at: number; body: Buffer; gap: string | null };
type Unnumbered = { body: Buffer; createdAt: number; resolve: (seq: number) => void };

const UPSERT_META =
  'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value';

export class Spool {
  readonly path: string;
  private db: Database.Database | undefined;
  private diskOk = false;
  private lastDiskTry = 0;
  private lastOpenTry = 0;
  /** Set when SQLite reported corruption at run time: the next retry moves the file aside. */
  private corruptSeen = false;
  private corruptMoved = 0;
  /** False until the database or the mark told us the highest seq ever assigned. */
  private numbered = false;
  /** The first seq numbered from the mark while the database was unavailable (this run). */
  private numberedFrom: number | undefined;
  private unnumberedLogged = false;
  private lastSeq = 0;
  /** The highest seq in the database (last_seq meta), as last committed. */
  private storedSeq = 0;
  private dropped = 0;
  private lastDrop: GapNote | undefined;
  /** Drops not yet announced by a batch: the next appended batch carries this note. */
  private pendingGap: GapNote | undefined;
  private diskDepth = 0;
  private diskBytes = 0;
  /** Batches the disk could not take, in seq order (Map keeps insertion order). */
  private readonly memory = new Map<number, SpooledBatch>();
  private memoryBytes = 0;
  /** Batches waiting for numbering, oldest first. */
  private unnumbered: Unnumbered[] = [];
  private unnumberedBytes = 0;
  /** Seqs above the stored seq that are settled (published, dropped, set aside) from memory. */
  private memorySettled = 0;
  private markFile: SeqMarkFile | undefined;
  /** The mark as last written (or read): what the next start will see. */
  private mark: SeqMark = { ...EMPTY_MARK };
  private markOk = false;
  private lastMarkTry = 0;
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
  private readonly rewindListeners = new Set<(fromSeq: number) => void>();
  /** Set once the first open attempt is over: later adopts may bring back older batches. */
  private started = false;
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
  private readonly diskTrouble: DiskTrouble;
  private readonly markTrouble: DiskTrouble;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly options: SpoolOptions,
    private readonly logger: Logger,
  ) {
    this.path = join(dir, SPOOL_FILE);
    this.now = options.now ?? Date.now;
    this.diskTrouble = new DiskTrouble(logger, 'spool disk', this.now);
    this.markTrouble = new DiskTrouble(logger, 'spool seq mark', this.now);
  }

  /**
   * Open (or create) the spool in `dir`. Throws SpoolInUseError when another process holds
   * it; any other disk trouble is logged and the spool runs in memory, retrying the disk.
   */
  static open(dir: string, options: SpoolOptions, logger: Logger): Spool {
    const spool = new Spool(dir, options, logger);
    spool.lastOpenTry = spool.now();
    const opened = spool.openDatabase();
    if (opened === 'in-use') {
      throw new SpoolInUseError(
        `the spool ${spool.path} is in use by another process (another edge-agent on the same state directory?)`,
      );
    }
    if (opened !== 'ok') spool.numberFromMark();
    spool.started = true;
    spool.enforceBounds();
    spool.scheduleRetry();
    return spool;
  }

  /**
   * Queue a batch for the next commit; resolves with its seq once it is stored (see the
   * header), never rejects: with a failing disk it resolves once the batch is in the memory
   * window, and while numbering is unknown once a seq can be given. The spool keeps a
   * reference to `body` (no copy): do not modify it afterwards.
   */
  append(body: Uint8Array, createdAt: number): Promise<number> {
    const view = Buffer.isBuffer(body)
      ? body
      : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    if (!this.numbered) {
      return new Promise((resolve) => {
        this.unnumbered.push({ body: view, createdAt, resolve });
        this.unnumberedBytes += view.length;
        this.enforceMemoryBound();
      });
    }
    return new Promise((resolve) => this.appendNumbered(view, createdAt, resolve));
  }

  private appendNumbered(view: Buffer, createdAt: number, resolve: (seq: number) => void): void {
    const seq = this.lastSeq + 1;
    this.lastSeq = seq;
    const batch: SpooledBatch = { seq, createdAt, body: view };
    if (this.pendingGap) {
      batch.gapBefore = this.pendingGap;
      this.pendingGap = undefined;
    }
    if (seq > this.mark.ceiling) this.writeMark({ ceiling: seq + CEILING_BLOCK });
    this.retryDisk();
    if (!this.diskOk) {
      // Whatever is still queued goes to memory first: the memory window stays in seq order.
      this.commit();
      this.keepInMemory([batch]);
      this.enforceBounds();
      this.notifyCommitted();
      resolve(seq);
      return;
    }
    this.queued.push({ batch, resolve });
    this.queuedBytes += view.length;
    if (this.queued.length >= COMMIT_MAX_BATCHES || this.queuedBytes >= COMMIT_MAX_BYTES)
      this.commit();
    else this.scheduleCommit();
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

  /**
   * Called when batches older than ones already handed out become publishable (a database
   * that could not be read is open again, or a corrupt one was salvaged) with the lowest such
   * seq: the publisher rewinds its cursor there, or they would wait for the next reconnect.
   */
  onRewind(listener: (fromSeq: number) => void): () => void {
    this.rewindListeners.add(listener);
    return () => this.rewindListeners.delete(listener);
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

  /** Up to `limit` unacknowledged batches with seq > afterSeq whose seq is durable, in seq order. */
  peek(afterSeq: number, limit: number): SpooledBatch[] {
    const fromDisk: SpooledBatch[] = [];
    // Older than the recent window: read back from SQLite (replay).
    if (this.db && this.diskDepth > 0 && afterSeq + 1 < this.recentFrom) {
      try {
        const rows = this.sql(
          'SELECT seq, created_at, body, gap FROM batches WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?',
        ).all(afterSeq, this.recentFrom, limit + this.ackedOnDisk.size) as Row[];
        for (const r of rows) {
          if (!this.ackedOnDisk.has(r.seq)) fromDisk.push(fromRow(r));
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
    // A memory batch is handed out only once the mark made its seq durable (this.mark is
    // what was last written successfully).
    const revealable = this.mark.revealed;
    for (const b of this.memory.values()) {
      if (b.seq > revealable || fromMemory.length >= limit) break;
      if (b.seq > afterSeq) fromMemory.push(b);
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
      // The next start must not count a published seq as lost.
      this.memorySettled++;
      this.writeMark({});
      return;
    }
    // Queued batches were never handed out: only committed seqs can be acknowledged.
    if (!this.db || this.ackedOnDisk.has(seq) || this.queued.some((q) => q.batch.seq === seq))
      return;
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
      this.memorySettled++;
      this.keepDeadInMemory({ ...inMemory, reason, setAsideAt: at });
      this.countSetAside();
      this.pendingGap = mergeGap(this.pendingGap, setAsideNote(seq));
      this.writeMark({});
      return true;
    }
    if (!this.db || this.ackedOnDisk.has(seq)) return false;
    const recent = this.recent.get(seq);
    const gap = mergeGap(this.pendingGap, setAsideNote(seq));
    try {
      const row = this.db.transaction(() => {
        const r = this.sql(
          'DELETE FROM batches WHERE seq = ? RETURNING created_at AS createdAt, body',
        ).get(seq) as { createdAt: number; body: Buffer } | undefined;
        if (!r) return undefined;
        this.sql(
          'INSERT OR REPLACE INTO dead_letters (seq, created_at, body, reason, set_aside_at) VALUES (?, ?, ?, ?, ?)',
        ).run(seq, r.createdAt, r.body, reason, at);
        this.sql(UPSERT_META).run('set_aside', this.setAsideCount + 1);
        this.sql(UPSERT_META).run('pending_gap', JSON.stringify(gap));
        return r;
      })();
      if (!row) return false;
      this.pendingGap = gap;
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
      this.pendingGap = gap;
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
    const revealable = this.mark.revealed;
    let withheld = 0;
    for (const seq of this.memory.keys()) if (seq > revealable) withheld++;
    const stats: SpoolStats = {
      depth:
        this.diskDepth -
        this.ackedOnDisk.size +
        this.memory.size +
        this.queued.length +
        this.unnumbered.length,
      bytes:
        this.diskBytes -
        this.ackedBytes +
        this.memoryBytes +
        this.queuedBytes +
        this.unnumberedBytes,
      dropped: this.dropped,
      oldestAgeMs: oldest ? Math.max(0, this.now() - oldest.createdAt) : 0,
      lastSeq: this.lastSeq,
      diskOk: this.diskOk,
      markOk: this.markOk,
      memoryDepth: this.memory.size,
      memoryBytes: this.memoryBytes + this.unnumberedBytes,
      withheld,
      unnumbered: this.unnumbered.length,
      corruptMovedAside: this.corruptMoved,
      commits: this.commits,
      setAside: this.setAsideCount,
      deadLetters: this.deadDisk + this.deadMemory.size,
      deadLetterBytes: this.deadDiskBytes + this.deadMemoryBytes,
      deadLettersDropped: this.deadDropped,
    };
    if (this.lastDrop) stats.lastDrop = { ...this.lastDrop };
    return stats;
  }

  /**
   * Commits what is queued and closes the database. Batches that exist only in memory (the
   * disk still fails) cannot be kept: they are counted as dropped and logged, never
   * announced as kept; the next start counts their seqs from the mark as well.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.retryTimer);
    this.retryTimer = undefined;
    this.commit();
    if (this.memory.size > 0 && this.db) {
      this.lastDiskTry = 0;
      this.retryDisk();
    }
    if (this.memory.size > 0 || this.unnumbered.length > 0) {
      const seqs = [...this.memory.keys()];
      const lost = seqs.length + this.unnumbered.length;
      this.dropped += lost;
      const note =
        seqs.length > 0
          ? { count: seqs.length, firstSeq: seqs[0], lastSeq: seqs[seqs.length - 1] }
          : {};
      this.logger.error(
        { ...note, unnumbered: this.unnumbered.length, dropped: this.dropped },
        `SPOOL: ${lost} batches held in memory could not be written to disk and are lost at this stop (counted as dropped)`,
      );
      this.memory.clear();
      this.memoryBytes = 0;
      this.unnumbered = [];
      this.unnumberedBytes = 0;
    }
    this.forgetRecent();
    this.statements.clear();
    try {
      this.db?.close();
    } catch (err) {
      this.logger.warn(causeOf(err), 'spool close failed');
    }
    this.db = undefined;
    this.diskOk = false;
    this.markFile?.close();
    this.markFile = undefined;
  }

  // ---- opening, numbering, recovery ----

  /**
   * Open the database and adopt it: 'ok', 'in-use' (another process), 'corrupt' (moved
   * aside but a new one could not be made) or 'failed'.
   */
  private openDatabase(): 'ok' | 'in-use' | 'failed' {
    let salvaged: (Salvage & { movedTo: string }) | undefined;
    // Two rounds at most: the file as it is, then a new one after moving a corrupt one aside.
    for (let round = 0; round < 2; round++) {
      const result = this.tryOpen();
      if (result === 'ok') return this.tryAdopt(salvaged);
      if (result === 'in-use') return 'in-use';
      if (result !== 'corrupt' || round > 0) return 'failed';
      try {
        const movedTo = moveAside(this.path, new Date(this.now()));
        this.corruptMoved++;
        salvaged = { ...salvage(movedTo, this.options.maxBytes), movedTo };
      } catch (err) {
        this.diskFailed(err, 'move the corrupt database aside');
        return 'failed';
      }
    }
    return 'failed';
  }

  /**
   * Adopt the open database; when that fails (a write on a full disk), the spool's state is
   * as before, the database is let go, and opening is retried later.
   */
  private tryAdopt(salvaged: (Salvage & { movedTo: string }) | undefined): 'ok' | 'failed' {
    const before = {
      dropped: this.dropped,
      lastDrop: this.lastDrop,
      pendingGap: this.pendingGap,
      setAsideCount: this.setAsideCount,
      deadDropped: this.deadDropped,
      corruptMoved: this.corruptMoved,
      lastSeq: this.lastSeq,
      storedSeq: this.storedSeq,
      numbered: this.numbered,
      numberedFrom: this.numberedFrom,
      mark: this.mark,
    };
    try {
      this.adopt(salvaged);
      return 'ok';
    } catch (err) {
      Object.assign(this, before);
      this.letGoOfDatabase();
      if (isCorruption(err)) this.corruptSeen = true;
      this.diskFailed(err, 'open');
      return 'failed';
    }
  }

  private tryOpen(): 'ok' | 'in-use' | 'corrupt' | 'failed' {
    let db: Database.Database | undefined;
    try {
      mkdirSync(this.dir, { recursive: true });
      // timeout 0: another process holding the lock is an answer, not something to wait for.
      db = new Database(this.path, { timeout: 0 });
      // One writer per state dir: two agents sharing it would hand out the same seqs.
      // EXCLUSIVE also keeps the WAL index in process memory (no -shm file).
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
      // A damaged page would otherwise surface as batches that never publish.
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') {
        db.close();
        this.logger.error(
          { path: this.path, check: String(check).slice(0, 200) },
          'spool database failed its integrity check',
        );
        return 'corrupt';
      }
      db.exec(`
        CREATE TABLE IF NOT EXISTS batches (
          seq INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, body BLOB NOT NULL, gap TEXT);
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS dead_letters (
          seq INTEGER PRIMARY KEY, created_at INTEGER, body BLOB, reason TEXT,
          set_aside_at INTEGER);`);
      const columns = db.prepare('PRAGMA table_info(batches)').all() as { name: string }[];
      if (!columns.some((c) => c.name === 'gap'))
        db.exec('ALTER TABLE batches ADD COLUMN gap TEXT');
      // A write takes the exclusive lock now, rather than at the first batch.
      db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('created_at', 0);
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
      this.diskFailed(err, 'open');
      return 'failed';
    }
  }

  /**
   * The database is open: read its state, check it against the mark, continue numbering after
   * the highest seq either knows, count seqs that may have been revealed but are gone, and
   * move memory batches into it.
   */
  private adopt(salvaged: (Salvage & { movedTo: string }) | undefined): void {
    const db = this.db!;
    const metaValue = (key: string) =>
      (this.sql('SELECT value FROM meta WHERE key = ?').get(key) as { value: unknown } | undefined)
        ?.value;
    const meta = (key: string) => {
      const v = metaValue(key);
      return typeof v === 'number' ? v : 0;
    };
    const fresh = metaValue('last_seq') === undefined && metaValue('opened_at') === undefined;
    const read = readMark(this.dir);
    if (read.state === 'ok') this.mark = read.mark;
    else if (read.state === 'corrupt' || read.state === 'unreadable')
      this.logger.warn(
        {
          path: join(this.dir, MARK_FILE),
          ...(read.state === 'unreadable' ? causeOf(read.error) : { code: 'CORRUPT' }),
        },
        'spool seq mark unreadable; the database alone gives the numbering',
      );
    const mark = this.mark;

    const salvagedSeqs: number[] = [];
    if (salvaged) {
      const insert = this.sql(
        'INSERT OR IGNORE INTO batches (seq, created_at, body, gap) VALUES (?, ?, ?, ?)',
      );
      db.transaction(() => {
        for (const r of salvaged.rows) {
          if (this.ackedOnDisk.has(r.seq)) continue;
          insert.run(r.seq, r.createdAt, r.body, r.gap);
          salvagedSeqs.push(r.seq);
        }
      })();
      this.ackedOnDisk.clear();
      this.ackedBytes = 0;
    }
    const totals = this.sql(
      'SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS b, max(seq) AS m FROM batches',
    ).get() as { n: number; b: number; m: number | null };
    const dbLast = Math.max(meta('last_seq'), totals.m ?? 0, salvaged?.lastSeq ?? 0);
    // Seqs this process assigned that are not in the database (memory batches) start here.
    const firstMemory = this.memory.keys().next();
    const ownFirst = firstMemory.done ? this.lastSeq + 1 : firstMemory.value;

    const gaps: GapNote[] = [];
    /** Logged once the database took the new state (a failed adopt is retried later). */
    const announce: Array<() => void> = [];
    // A database that lost committed transactions (a damaged WAL is cut at the first bad
    // frame) is behind what the mark saw it store: treat its tail as lost too.
    const rolledBack = !fresh && salvaged === undefined && mark.stored > dbLast;
    const lost = salvaged !== undefined || (fresh && mark.ceiling > 0) || rolledBack;
    if (lost) {
      // The previous database is gone: its unsent rows that were not salvaged are lost, and
      // seqs up to the mark's ceiling may have been assigned. Count that range.
      const from = rolledBack
        ? dbLast
        : Math.max(salvaged?.lastSeq ?? 0, mark.stored, totals.m ?? 0);
      const ceiling = Math.max(mark.ceiling, mark.revealed);
      const to = this.numbered ? Math.min(ceiling, ownFirst - 1) : ceiling;
      for (const [first, last] of salvaged?.skipped ?? [])
        if (last <= from)
          gaps.push({
            count: last - first + 1,
            firstSeq: first,
            lastSeq: last,
            reason: 'database-lost',
          });
      if (to > from)
        gaps.push({ count: to - from, firstSeq: from + 1, lastSeq: to, reason: 'database-lost' });
      const continuesAfter = Math.max(dbLast, to, this.numbered ? this.lastSeq : 0);
      announce.push(() =>
        this.logger.error(
          {
            path: this.path,
            movedTo: salvaged?.movedTo,
            salvaged: salvagedSeqs.length,
            continuesAfter,
          },
          salvaged
            ? 'SPOOL DATABASE CORRUPT: moved aside for inspection and replaced; readable batches were salvaged and numbering continues. Check the storage (SD card) and delete the moved file when done'
            : rolledBack
              ? 'SPOOL DATABASE ROLLED BACK (behind the seq mark: damaged or replaced write-ahead log?): numbering continues after the mark; the lost batches are counted. Check the storage (SD card)'
              : 'SPOOL DATABASE MISSING OR EMPTY while the seq mark shows earlier batches: numbering continues after the mark; unsent batches it held are lost',
        ),
      );
    } else if (this.numberedFrom !== undefined) {
      // Numbered from the mark while the database was unavailable: the seqs between the
      // database's last and our first may have been used by an earlier run, or never.
      if (this.numberedFrom - 1 > dbLast)
        gaps.push({
          count: this.numberedFrom - 1 - dbLast,
          firstSeq: dbLast + 1,
          lastSeq: this.numberedFrom - 1,
          reason: 'skipped-while-unavailable',
        });
    } else if (mark.revealed > dbLast) {
      // Batches revealed from memory never reached the database before the agent stopped.
      const settled = mark.stored === dbLast ? mark.revealedCounted : 0;
      const count = Math.max(0, mark.revealed - dbLast - settled);
      if (count > 0)
        gaps.push({ count, firstSeq: dbLast + 1, lastSeq: mark.revealed, reason: 'lost-at-crash' });
      announce.push(() =>
        this.logger.error(
          { firstSeq: dbLast + 1, lastSeq: mark.revealed, count },
          'SPOOL: batches held in memory before the last stop never reached the disk; counted as dropped and their seqs are not reused',
        ),
      );
    } else if (read.state === 'ok' && mark.ceiling < dbLast) {
      announce.push(() =>
        this.logger.warn(
          { markCeiling: mark.ceiling, dbLastSeq: dbLast },
          'spool seq mark is behind the database (restored or replaced?); rewriting it',
        ),
      );
    }
    this.numberedFrom = undefined;

    this.dropped = Math.max(this.dropped, meta('dropped'), salvaged?.dropped ?? 0, mark.dropped);
    this.setAsideCount = Math.max(this.setAsideCount, meta('set_aside'), salvaged?.setAside ?? 0);
    this.deadDropped = Math.max(this.deadDropped, meta('dead_letters_dropped'));
    this.corruptMoved = Math.max(this.corruptMoved, meta('corrupt_moved') + (salvaged ? 1 : 0));
    const storedGap = parseGap(metaValue('pending_gap'));
    if (storedGap) this.pendingGap = mergeGap(this.pendingGap, storedGap);
    const dead = this.sql(
      'SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS b FROM dead_letters',
    ).get() as { n: number; b: number };
    this.deadDisk = dead.n;
    this.deadDiskBytes = dead.b;
    this.diskDepth = totals.n;
    this.diskBytes = totals.b;

    // The database records every seq up to here; our memory batches follow when moved.
    const durableTop = Math.max(dbLast, 0, ...gaps.map((g) => g.lastSeq));
    for (const g of gaps) this.countDrop(g);
    this.lastSeq = Math.max(this.numbered ? this.lastSeq : 0, durableTop);
    this.storedSeq = durableTop;
    db.transaction(() => {
      const set = this.sql(UPSERT_META);
      set.run('last_seq', durableTop);
      set.run('dropped', this.dropped);
      set.run('corrupt_moved', this.corruptMoved);
      set.run('opened_at', this.now());
      set.run('pending_gap', this.pendingGap ? JSON.stringify(this.pendingGap) : 0);
    })();
    this.numbered = true;
    this.lastDiskTry = 0;
    for (const say of announce) say();
    this.forgetRecent();
    if (this.started && totals.n > 0) {
      const oldest = this.sql('SELECT min(seq) AS m FROM batches').get() as { m: number };
      for (const listener of this.rewindListeners) listener(oldest.m);
    }
    this.diskTrouble.recovered({ path: this.path }, 'spool database open again');
    this.logger.info({ path: this.path, depth: totals.n, lastSeq: this.lastSeq }, 'spool opened');
    this.openMark();
    if (this.memory.size === 0) {
      this.diskOk = true;
      // The database holds every revealed seq: the mark drops its revealed part.
      this.memorySettled = 0;
      this.writeMark({ revealed: 0, ceiling: Math.max(mark.ceiling, this.lastSeq) });
    } else {
      // The gap lies just before the first memory batch: that batch carries the note, unless
      // it was published already (its bytes must not change).
      const first = this.memory.values().next().value as SpooledBatch;
      if (this.pendingGap && first.seq > this.mark.revealed) {
        first.gapBefore = first.gapBefore
          ? mergeGap(this.pendingGap, first.gapBefore)
          : this.pendingGap;
        this.pendingGap = undefined;
      }
      // Moves the memory window into the database (or keeps it there if the write fails).
      this.diskOk = false;
      this.retryDisk();
    }
    this.numberWaiting();
  }

  /** The database cannot be opened: take the numbering from the mark, if it can be read. */
  private numberFromMark(): void {
    if (this.numbered) return;
    const read = readMark(this.dir);
    if (read.state !== 'ok') {
      if (this.unnumberedLogged) return;
      this.unnumberedLogged = true;
      this.logger.error(
        {
          path: this.path,
          mark: read.state,
          ...(read.state === 'unreadable' ? causeOf(read.error) : {}),
        },
        'SPOOL UNAVAILABLE and the seq mark cannot be read: batches wait in memory, unnumbered and unpublished, until the state directory can be read (seq numbering never restarts)',
      );
      return;
    }
    this.mark = read.mark;
    // Everything up to the ceiling may have been assigned (and revealed): continue after it.
    this.lastSeq = Math.max(read.mark.ceiling, read.mark.revealed);
    this.numberedFrom = this.lastSeq + 1;
    this.storedSeq = read.mark.stored;
    this.dropped = Math.max(this.dropped, read.mark.dropped);
    this.numbered = true;
    this.openMark();
    this.logger.warn(
      { path: this.path, continuesAfter: this.lastSeq },
      'spool database unavailable: numbering continues after the seq mark; batches are kept in memory and published once their seq is durable',
    );
    this.numberWaiting();
  }

  /** Give the batches that waited for numbering their seqs, oldest first. */
  private numberWaiting(): void {
    if (!this.numbered || this.unnumbered.length === 0) return;
    const waiting = this.unnumbered;
    this.unnumbered = [];
    this.unnumberedBytes = 0;
    for (const w of waiting) this.appendNumbered(w.body, w.createdAt, w.resolve);
  }

  private openMark(): void {
    if (this.markFile) return;
    try {
      this.markFile = SeqMarkFile.open(this.dir);
    } catch (err) {
      this.markOk = false;
      this.markTrouble.failed(
        err,
        { path: join(this.dir, MARK_FILE) },
        'SPOOL SEQ MARK cannot be opened: batches held in memory are not published until their seq is durable',
      );
    }
  }

  /**
   * Write the mark with `change` applied (fsynced). On failure the in-memory mark keeps what
   * was last written, so nothing is revealed on its strength.
   */
  private writeMark(change: Partial<SeqMark>): boolean {
    if (!this.markFile) {
      if (this.now() - this.lastMarkTry < DISK_RETRY_MS && this.lastMarkTry > 0) return false;
      this.lastMarkTry = this.now();
      this.openMark();
      if (!this.markFile) return false;
    }
    const next: SeqMark = {
      ...this.mark,
      dropped: this.dropped,
      stored: this.storedSeq,
      revealedCounted: this.memorySettled,
      ...change,
    };
    next.ceiling = Math.max(next.ceiling, next.revealed, this.lastSeq);
    try {
      this.markFile.write(next);
      this.mark = next;
      this.markOk = true;
      this.markTrouble.recovered(
        { path: join(this.dir, MARK_FILE) },
        'spool seq mark writable again',
      );
      return true;
    } catch (err) {
      this.markOk = false;
      this.markTrouble.failed(
        err,
        { path: join(this.dir, MARK_FILE) },
        'SPOOL SEQ MARK cannot be written: batches held in memory are not published until their seq is durable',
      );
      return false;
    }
  }

  /** Memory batches become publishable when the mark covers their seqs. */
  private revealMemory(): void {
    if (this.memory.size === 0) return;
    const top = [...this.memory.keys()].pop()!;
    if (this.mark.revealed >= top) return;
    if (this.writeMark({ revealed: top + REVEAL_BLOCK })) this.notifyCommitted();
  }

  /** While anything is not durable, retry it in the background (bounded rate). */
  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setInterval(() => {
      // A timer callback that throws would end the process: a disk fault is not worth that.
      try {
        this.retryTick();
      } catch (err) {
        this.diskFailed(err, 'retry');
      }
    }, DISK_RETRY_MS);
    this.retryTimer.unref();
  }

  private retryTick(): void {
    if (this.closed) return;
    if (!this.db || this.corruptSeen) {
      if (this.now() - this.lastOpenTry >= REOPEN_MS || this.corruptSeen) {
        this.lastOpenTry = this.now();
        if (this.corruptSeen) this.dropDatabase();
        if (this.openDatabase() !== 'ok') this.numberFromMark();
      }
    } else if (!this.diskOk) {
      this.retryDisk();
    }
    if (!this.diskOk && this.memory.size > 0) this.revealMemory();
    this.enforceBounds();
  }

  /** Runtime corruption: let go of the database so the next open moves it aside. */
  private dropDatabase(): void {
    this.letGoOfDatabase();
    this.corruptSeen = false;
    this.recent.clear();
    this.recentBytes = 0;
    this.diskDepth = 0;
    this.diskBytes = 0;
  }
  /** Close the connection whatever state it is in (a corrupt one may fail to close cleanly). */
  private letGoOfDatabase(): void {
    this.statements.clear();
    try {
      this.db?.close();
    } catch {
      // Let go of it either way; the next open starts afresh.
    }
    this.db = undefined;
    this.diskOk = false;
  }

  // ---- writing ----

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
    if (batches.length > 0) {
      this.revealMemory();
      this.enforceMemoryBound();
    }
  }

  /**
   * One transaction: the pending DELETEs of acked batches, the inserts, `last_seq` (when
   * given) and the pending gap note. With synchronous=FULL it is fsynced once, before this
   * returns.
   */
  private writeToDisk(batches: SpooledBatch[], lastSeq: number | undefined): boolean {
    const db = this.db;
    if (!db) return false;
    const deletes = this.pendingDeletes();
    try {
      const remove = this.sql('DELETE FROM batches WHERE seq = ? RETURNING length(body) AS n');
      const insert = this.sql(
        'INSERT INTO batches (seq, created_at, body, gap) VALUES (?, ?, ?, ?)',
      );
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
        for (const b of batches)
          insert.run(b.seq, b.createdAt, b.body, b.gapBefore ? JSON.stringify(b.gapBefore) : null);
        if (lastSeq !== undefined) setMeta.run('last_seq', lastSeq);
        if (batches.some((b) => b.gapBefore)) {
          setMeta.run('dropped', this.dropped);
          setMeta.run('pending_gap', this.pendingGap ? JSON.stringify(this.pendingGap) : 0);
        }
      })();
      this.commits++;
      if (lastSeq !== undefined) this.storedSeq = Math.max(this.storedSeq, lastSeq);
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
    // Queued and memory batches are not on disk: the commit remembers them (or moves recentFrom).
    const firstMemory = this.memory.keys().next();
    const firstQueued = this.queued[0]?.batch.seq;
    this.recentFrom = Math.min(
      firstQueued ?? Infinity,
      firstMemory.done ? Infinity : firstMemory.value,
      this.lastSeq + 1,
    );
  }

  private diskFailed(err: unknown, op: string): void {
    this.lastDiskTry = this.now();
    if (isCorruption(err)) this.corruptSeen = true;
    this.diskTrouble.failed(
      err,
      { path: this.path, op },
      'SPOOL DISK FAILURE: keeping batches in memory (bounded by spool.memoryMaxBytes) until the disk works again',
    );
    if (!this.diskOk) return;
    this.diskOk = false;
    this.scheduleRetry();
  }

  /** While the disk is failing, try again at most once a second; move memory back on success. */
  private retryDisk(): void {
    if (this.diskOk || !this.db || this.corruptSeen) return;
    if (this.now() - this.lastDiskTry < DISK_RETRY_MS) return;
    this.lastDiskTry = this.now();
    this.diskOk = true;
    // Nothing is queued while the disk fails: every seq assigned so far is in `pending`.
    const pending = [...this.memory.values()];
    // With nothing pending this probes with the metadata write alone.
    if (!this.writeToDisk(pending, this.lastSeq)) return;
    this.memory.clear();
    this.memoryBytes = 0;
    this.forgetRecent();
    this.writeMetaCounters();
    // Every assigned seq is in the database now: the mark drops its revealed part.
    this.memorySettled = 0;
    this.writeMark({ revealed: 0 });
    this.diskTrouble.recovered(
      { path: this.path, moved: pending.length },
      'spool disk works again',
    );
    if (pending.length > 0) this.notifyCommitted();
  }

  private writeMetaCounters(): void {
    this.writeMeta('dropped', this.dropped);
    this.writeMeta('set_aside', this.setAsideCount);
    this.writeMeta('dead_letters_dropped', this.deadDropped);
    this.writeMeta('pending_gap', this.pendingGap ? JSON.stringify(this.pendingGap) : 0);
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
    if (m) return { seq: m.seq, createdAt: m.createdAt, onDisk: false };
    const u = this.unnumbered[0];
    return u ? { seq: 0, createdAt: u.createdAt, onDisk: false } : undefined;
  }

  // ---- bounds and drops ----

  /** Drop the oldest batches while over the byte or age bound; count and log them. */
  private enforceBounds(): void {
    const maxAgeMs = this.options.maxAgeSec * 1000;
    const droppedSeqs: number[] = [];
    // Each pass drops one batch; the bound on passes keeps a corrupt count from looping forever.
    for (let pass = 0; pass < 1_000_000; pass++) {
      const overBytes = this.diskBytes + this.memoryBytes > this.options.maxBytes;
      const oldest = this.oldest();
      if (!oldest || oldest.seq === 0) break;
      const tooOld = this.now() - oldest.createdAt > maxAgeMs;
      if (!overBytes && !tooOld) break;
      const outcome = this.dropOne(oldest.seq, oldest.onDisk);
      if (!outcome) break;
      if (outcome === 'dropped') droppedSeqs.push(oldest.seq);
      if (droppedSeqs.length >= DROP_CHUNK) this.reportDrops(droppedSeqs.splice(0), 'spool-bound');
    }
    if (droppedSeqs.length > 0) this.reportDrops(droppedSeqs, 'spool-bound');
  }

  /** The memory window (and batches waiting for numbering) stay within memoryMaxBytes. */
  private enforceMemoryBound(): void {
    const limit = Math.min(this.options.memoryMaxBytes ?? MEMORY_MAX_BYTES, this.options.maxBytes);
    const droppedSeqs: number[] = [];
    let droppedUnnumbered = 0;
    // Each pass drops one batch: bounded by how many there are.
    for (let pass = this.memory.size + this.unnumbered.length; pass > 0; pass--) {
      if (this.memoryBytes + this.unnumberedBytes <= limit) break;
      const first = this.memory.values().next();
      if (!first.done) {
        this.dropOne(first.value.seq, false);
        droppedSeqs.push(first.value.seq);
        continue;
      }
      const u = this.unnumbered.shift();
      if (!u) break;
      this.unnumberedBytes -= u.body.length;
      this.dropped++;
      droppedUnnumbered++;
    }
    if (droppedSeqs.length > 0) this.reportDrops(droppedSeqs, 'memory-bound');
    if (droppedUnnumbered > 0)
      this.logger.warn(
        { count: droppedUnnumbered, dropped: this.dropped },
        'spool memory bound (spool.memoryMaxBytes) reached: dropped the oldest unnumbered batches',
      );
  }

  /** Drop one batch; a row whose ack was not deleted yet is 'settled', not counted. */
  private dropOne(seq: number, onDisk: boolean): 'dropped' | 'settled' | false {
    if (!onDisk) {
      const b = this.memory.get(seq);
      if (!b) return false;
      this.memory.delete(seq);
      this.memoryBytes -= b.body.length;
      this.memorySettled++;
      this.dropped++;
      if (b.gapBefore) this.pendingGap = mergeGap(this.pendingGap, b.gapBefore);
      return 'dropped';
    }
    try {
      const row = this.sql(
        'DELETE FROM batches WHERE seq = ? RETURNING length(body) AS n, gap',
      ).get(seq) as { n: number; gap: string | null } | undefined;
      if (!row) return false;
      this.unremember(seq);
      this.diskDepth--;
      this.diskBytes -= row.n;
      if (this.settleAck(seq)) return 'settled';
      this.dropped++;
      const carried = parseGap(row.gap);
      if (carried) this.pendingGap = mergeGap(this.pendingGap, carried);
      return 'dropped';
    } catch (err) {
      this.diskFailed(err, 'drop');
      return false;
    }
  }

  /** A drop decided at open (not one batch at a time): count it and note it for the next batch. */
  private countDrop(note: GapNote): void {
    this.dropped += note.count;
    this.lastDrop = note;
    this.pendingGap = mergeGap(this.pendingGap, note);
  }

  private reportDrops(seqs: number[], reason: string): void {
    const note: GapNote = {
      count: seqs.length,
      firstSeq: seqs[0],
      lastSeq: seqs[seqs.length - 1],
      reason,
    };
    this.lastDrop = note;
    this.pendingGap = mergeGap(this.pendingGap, note);
    if (this.db && this.diskOk) {
      this.writeMeta('dropped', this.dropped);
      this.writeMeta('pending_gap', JSON.stringify(this.pendingGap));
    } else {
      this.writeMark({});
    }
    this.logger.warn(
      { ...note, dropped: this.dropped },
      reason === 'memory-bound'
        ? 'spool memory bound (spool.memoryMaxBytes) reached while the disk fails: dropped the oldest batches'
        : 'spool full or too old: dropped the oldest batches',
    );
  }

  // ---- dead letters ----

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

  private writeMeta(key: string, value: number | string): void {
    if (!this.db || !this.diskOk) return;
    try {
      this.sql(UPSERT_META).run(key, value);
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
}

function fromRow(r: Row): SpooledBatch {
  const b: SpooledBatch = { seq: r.seq, createdAt: r.created_at, body: r.body };
  const gap = parseGap(r.gap);
  if (gap) b.gapBefore = gap;
  return b;
}

/** A set-aside seq is missing for subscribers too: the next batch's note names it. */
function setAsideNote(seq: number): GapNote {
  return { count: 1, firstSeq: seq, lastSeq: seq, reason: 'set-aside' };
}
