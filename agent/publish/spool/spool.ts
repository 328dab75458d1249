/**
 * Store-and-forward spool: every batch is written here, with its seq, before it is
 * published, and deleted only when the broker acknowledged it (PUBACK).
 *
 * The rule everything below keeps: **a seq is handed to the publisher only after it is
 * durable somewhere the next start reads** (the database, or the seq mark file beside it),
 * so no start ever hands out a seq a subscriber may already have seen, whatever the disk did.
 *
 * The Spool assigns seqs, keeps the bounds, counts drops (and the note the next batch carries)
 * and decides where rows go; the rows themselves live in a store (store.ts): SQLite
 * (sqlite-store.ts) normally, memory (memory-store.ts) while the disk fails.
 *
 * - Group commit: appends and acks made within a few milliseconds are written in ONE
 *   transaction (with synchronous=FULL, one fsync for the lot instead of one per batch and
 *   one per ack), committed COMMIT_DELAY_MS after the first of them, or at once when the queue
 *   reaches COMMIT_MAX_*. A queued batch is invisible until its transaction committed:
 *   `append` resolves with its seq, and `peek` hands it out, only then. A crash before the
 *   commit loses the queued batches together with their seqs, which nobody ever saw: the next
 *   start may hand those numbers out again without any subscriber seeing a seq twice.
 *   An ack only delays the DELETE (the store's pending deletes): it rides in the next batch's
 *   commit, so a batch costs one commit rather than two. Acks alone are committed after
 *   ACK_COMMIT_DELAY_MS, or at once when COMMIT_MAX_BATCHES of them wait. A DELETE lost to a
 *   crash replays its batch with the same bytes: a duplicate, never a loss.
 * - The seq mark (seq-mark.ts, `spool.seq`) keeps, outside the database, a ceiling no
 *   assigned seq exceeds: seqs are reserved ahead in blocks of `reserveSeqs` (minutes of
 *   batches), so the ceiling is durable before the disk fails, and a clean stop brings it back
 *   down to the last seq. A start reads both and the database and continues after the highest:
 *   after an unclean stop (or a stop that could not write the mark) the seqs between the
 *   database's last and the ceiling may have been published from memory, so they are skipped
 *   and noted (`reserved`, see reservedNote).
 * - A failing disk (full, read-only, I/O error): batches live in the memory store, bounded by
 *   `memoryMaxBytes` (drop oldest, counted). Those whose seq is within the durable ceiling are
 *   published (the broker's PUBACK is then their only copy) and leave memory when acked; the
 *   mark's ceiling is raised when it can be written. Once the reserve is used up and the mark
 *   cannot be written, new batches wait in memory without a seq (`unnumbered`). The database is
 *   retried in the background (DISK_RETRY_MS; reopened every REOPEN_MS when it could not be
 *   opened) and the memory batches move back to it when it works.
 * - A database SQLite reports corrupt (at open: quick_check; later: SQLITE_CORRUPT) is moved
 *   aside for inspection, its readable rows salvaged into a new one that continues numbering.
 * - Numbering unknown (neither database nor mark readable): batches wait unnumbered (same
 *   memory bound) until one of them can be read; numbering never restarts from 1 by guess.
 * - Every drop is counted (persistently where possible) and the next batch appended after it
 *   carries a note of the dropped seqs (`gapBefore`), so a subscriber's gap is explained.
 * - Bounded by payload bytes and by age: the oldest batches are dropped first and counted.
 *   Age is elapsed time (age-clock.ts), so a clock step neither ages nor rejuvenates them;
 *   retry pauses run on the monotonic clock too.
 */
import { join } from 'node:path';
import type { Logger } from '../../ops/logger.js';
import { AgeClock, linuxBoot } from './age-clock.js';
import { DiskTrouble, causeOf } from './disk-trouble.js';
import { EMPTY_MARK, MARK_FILE, SeqMarkFile, readMark, type SeqMark } from './seq-mark.js';
import { isCorruption, moveAside, salvage, type Salvage } from './salvage.js';
import { mergeGap, parseGap, type GapNote } from './gap-note.js';
import { MemoryStore } from './memory-store.js';
import { SqliteStore, type MetaEntry } from './sqlite-store.js';
import { CEILING_BLOCK } from './reserve.js';
import { SpoolInUseError } from './spool-errors.js';
import type { SpoolPort } from './spool-port.js';
import type { DeadLetter, SpooledBatch } from './store.js';

export interface SpoolOptions {
  /** Bound on the stored payload bytes (not the file size). */
  maxBytes: number;
  /** Batches older than this are dropped. */
  maxAgeSec: number;
  /** Bound on the batches held in memory while the disk fails (default MEMORY_MAX_BYTES). */
  memoryMaxBytes?: number;
  /** SQLite synchronous mode; default full (see sqlite-store.ts). */
  synchronous?: 'full' | 'normal';
  /** Group commit: longest wait for more appends and acks (default COMMIT_DELAY_MS; 0 = end of turn). */
  commitDelayMs?: number;
  /** Longest wait of acks for a batch to share its commit (default ACK_COMMIT_DELAY_MS). */
  ackCommitDelayMs?: number;
  /** Store bodies deflated where that makes them smaller (default true; see body-codec.ts). */
  deflateBodies?: boolean;
  /**
   * Seqs reserved ahead in the mark (default and least CEILING_BLOCK): how many batches can be
   * published while nothing can be written, and the largest gap an unclean stop leaves.
   */
  reserveSeqs?: number;
  /** Wall clock, for tests of the age bound. */
  now?: () => number;
  /**
   * Monotonic clock (ms) of ages and retry pauses. Default: `now` when that is given (a test
   * clock that does not step), else performance.now.
   */
  monotonic?: () => number;
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
  /** Memory batches not published yet because their seq is above the durable ceiling. */
  withheld: number;
  /**
   * Batches waiting for a seq: neither the database nor the mark can be read, or the reserved
   * seqs are used up while neither can be written.
   */
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

export { SpoolInUseError } from './spool-errors.js';
/** While the database fails, a write is retried at most this often. */
export const DISK_RETRY_MS = 1000;
/** While the database cannot be opened, opening is retried at most this often. */
export const REOPEN_MS = 5000;
/** Default bound of the memory window (spool.memoryMaxBytes). */
export const MEMORY_MAX_BYTES = 8 * 1024 * 1024;

/**
 * The note a start makes for the seqs a mark reserved above the database's last (`dbLast`):
 * any of them may have been published from memory before the stop, so none is handed out
 * again. `count` leaves out those the mark records as settled (published, or dropped and
 * counted) when it was written after the database's last commit.
 */
export function reservedNote(mark: SeqMark, dbLast: number): GapNote | undefined {
  const top = Math.max(mark.ceiling, mark.revealed);
  if (top <= dbLast) return undefined;
  const settled = mark.stored === dbLast ? mark.revealedCounted : 0;
  const count = Math.max(0, top - dbLast - settled);
  return { count, firstSeq: dbLast + 1, lastSeq: top, reason: 'reserved' };
}
const DROP_CHUNK = 256;
/** Dead letters may take this share of spool.maxBytes; beyond it the oldest are dropped. */
export const DEAD_LETTER_SHARE = 0.1;
/**
 * Group commit: a commit waits at most this long for more appends and acks. Batches that
 * arrive while the main thread is blocked in an fsync group up by themselves; the delay also
 * groups batches that arrive a little apart. Short next to any window (seconds).
 */
export const COMMIT_DELAY_MS = 2;
/**
 * Acks with no batch to ride with are committed after this long: a window period of up to a
 * minute costs one commit per batch, and a crash replays at most this much (duplicates).
 */
export const ACK_COMMIT_DELAY_MS = 60_000;
/** A queue this large (appends, or acks waiting) is committed at once rather than after the delay. */
export const COMMIT_MAX_BATCHES = 64;
export const COMMIT_MAX_BYTES = 16 * 1024 * 1024;

type Unnumbered = { body: Buffer; createdAt: number; resolve: (seq: number) => void };

export class Spool implements SpoolPort {
  readonly path: string;
  /** This spool answers `peek` at once: nothing is ever on its way. */
  readonly reading = false;
  /** The database; `disk.isOpen` is false while it cannot be opened. */
  private readonly disk: SqliteStore;
  /** Batches (and dead letters) the disk could not take, in seq order. */
  private readonly memory = new MemoryStore();
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
  private reserveLogged = false;
  private lastSeq = 0;
  /** The highest seq in the database (last_seq meta), as last committed. */
  private storedSeq = 0;
  private dropped = 0;
  private lastDrop: GapNote | undefined;
  /** Drops not yet announced by a batch: the next appended batch carries this note. */
  private pendingGap: GapNote | undefined;
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
  /** Appends waiting for the next commit, in seq order. */
  private queued: Array<{ batch: SpooledBatch; resolve: (seq: number) => void }> = [];
  private queuedBytes = 0;
  /** Cancels the scheduled commit; set while one is scheduled. */
  private cancelCommit: (() => void) | undefined;
  /** The commit of acks that no batch took along; set while one is scheduled. */
  private ackTimer: NodeJS.Timeout | undefined;
  private commits = 0;
  private readonly commitListeners = new Set<() => void>();
  private readonly rewindListeners = new Set<(fromSeq: number) => void>();
  /** Set once the first open attempt is over: later adopts may bring back older batches. */
  private started = false;
  private setAsideCount = 0;
  private deadDropped = 0;
  private readonly now: () => number;
  private readonly mono: () => number;
  private readonly age: AgeClock;
  private readonly diskTrouble: DiskTrouble;
  private readonly markTrouble: DiskTrouble;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly options: SpoolOptions,
    private readonly logger: Logger,
  ) {
    this.disk = new SqliteStore(dir, {
      synchronous: options.synchronous,
      deflate: options.deflateBodies ?? true,
      logger,
      failed: (err, op) => this.diskFailed(err, op),
    });
    this.path = this.disk.path;
    this.now = options.now ?? Date.now;
    this.mono = options.monotonic ?? options.now ?? (() => performance.now());
    const real = options.now === undefined && options.monotonic === undefined;
    this.age = new AgeClock({
      wall: this.now,
      mono: this.mono,
      boot: real ? linuxBoot : undefined,
    });
    this.diskTrouble = new DiskTrouble(logger, 'spool disk', this.mono);
    this.markTrouble = new DiskTrouble(logger, 'spool seq mark', this.mono);
  }

  /**
   * Open (or create) the spool in `dir`. Throws SpoolInUseError when another process holds
   * it; any other disk trouble is logged and the spool runs in memory, retrying the disk.
   */
  static open(dir: string, options: SpoolOptions, logger: Logger): Spool {
    const spool = new Spool(dir, options, logger);
    spool.lastOpenTry = spool.mono();
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
   * store, and while numbering is unknown once a seq can be given. The spool keeps a
   * reference to `body` (no copy): do not modify it afterwards.
   */
  append(body: Uint8Array, createdAt: number): Promise<number> {
    const view = Buffer.isBuffer(body)
      ? body
      : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    return new Promise((resolve) => {
      // Batches take seqs in arrival order: behind any that wait for one.
      if (
        this.numbered &&
        this.unnumbered.length === 0 &&
        this.appendNumbered(view, createdAt, resolve)
      )
        return;
      this.unnumbered.push({ body: view, createdAt, resolve });
      this.unnumberedBytes += view.length;
      this.numberWaiting();
      this.enforceMemoryBound();
    });
  }

  /**
   * Give the batch the next seq and store it; false (nothing changed) when that seq could not be
   * made durable: the disk fails and the mark's reserve is used up and cannot be extended.
   */
  private appendNumbered(view: Buffer, createdAt: number, resolve: (seq: number) => void): boolean {
    this.retryDisk();
    const seq = this.lastSeq + 1;
    if (seq > this.mark.ceiling) this.writeMark({ ceiling: seq - 1 + this.reserve });
    if (!this.diskOk && seq > this.mark.ceiling) {
      this.reserveUsedUp();
      return false;
    }
    this.lastSeq = seq;
    const batch: SpooledBatch = { seq, createdAt, body: view };
    this.age.stamp(seq);
    if (this.pendingGap) {
      batch.gapBefore = this.pendingGap;
      this.pendingGap = undefined;
    }
    if (!this.diskOk) {
      // Whatever is still queued goes to memory first: the memory store stays in seq order.
      this.commit();
      this.keepInMemory([batch]);
      this.enforceBounds();
      this.notifyCommitted();
      resolve(seq);
      return true;
    }
    this.queued.push({ batch, resolve });
    this.queuedBytes += view.length;
    if (this.queued.length >= COMMIT_MAX_BATCHES || this.queuedBytes >= COMMIT_MAX_BYTES)
      this.commit();
    else this.scheduleCommit();
    return true;
  }

  private get reserve(): number {
    return Math.max(CEILING_BLOCK, Math.floor(this.options.reserveSeqs ?? CEILING_BLOCK));
  }

  /** Logged once per stretch: new batches wait unnumbered until the mark or the disk works. */
  private reserveUsedUp(): void {
    if (this.reserveLogged) return;
    this.reserveLogged = true;
    this.logger.error(
      { path: this.path, ceiling: this.mark.ceiling },
      'SPOOL: the seqs reserved ahead are used up and neither the database nor the seq mark can be written: new batches wait in memory without a seq (spool.unnumbered) and are not published until the disk works',
    );
  }

  /**
   * Write the queued appends and acks now, in one transaction. Runs by itself after the
   * commit delay; call it to make them durable sooner (close() does).
   */
  commit(): void {
    this.cancelScheduledCommit();
    if (this.queued.length === 0 && !(this.diskOk && this.disk.pendingDeletes > 0)) return;
    const queued = this.queued;
    this.queued = [];
    this.queuedBytes = 0;
    const batches = queued.map((q) => q.batch);
    if (!(this.diskOk && this.writeToDisk(batches, batches.at(-1)?.seq)))
      this.keepInMemory(batches);
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
   * connected), so handing them out does not read them back. Turning it off empties that
   * cache: later peeks read SQLite.
   */
  retainRecent(on: boolean): void {
    this.disk.retainRecent(on);
  }

  /** Up to `limit` unacknowledged batches with seq > afterSeq whose seq is durable, in seq order. */
  peek(afterSeq: number, limit: number): SpooledBatch[] {
    const fromDisk = this.disk.read(afterSeq, limit);
    // A memory batch is handed out only when the mark's ceiling covers its seq (this.mark is
    // what was last written successfully, or read).
    const revealable = this.mark.ceiling;
    const fromMemory = this.memory.read(afterSeq, limit).filter((b) => b.seq <= revealable);
    if (fromMemory.length === 0) return fromDisk.slice(0, limit);
    return [...fromDisk, ...fromMemory].sort((a, b) => a.seq - b.seq).slice(0, limit);
  }

  /**
   * The broker has the batch: forget it. The DELETE goes into the next commit; until then
   * (or if it fails) the batch is never handed out again. Unknown seqs are ignored.
   */
  ack(seq: number): void {
    if (this.memory.ack(seq)) {
      // The next start must not count a published seq as lost.
      this.memorySettled++;
      this.writeMark({});
      return;
    }
    // Queued batches were never handed out: only committed seqs can be acknowledged.
    if (this.queued.some((q) => q.batch.seq === seq)) return;
    if (this.disk.ack(seq)) this.scheduleAckCommit();
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
    if (this.memory.setAside(seq, reason, at)) {
      this.memorySettled++;
      this.enforceDeadLetterBound();
      this.countSetAside();
      this.pendingGap = mergeGap(this.pendingGap, setAsideNote(seq));
      this.writeMark({});
      return true;
    }
    const gap = mergeGap(this.pendingGap, setAsideNote(seq));
    const cached = this.disk.cached(seq);
    const moved = this.disk.setAside(seq, reason, at, [
      ['set_aside', this.setAsideCount + 1],
      ['pending_gap', JSON.stringify(gap)],
    ]);
    if (moved === undefined) return false;
    if (moved !== 'failed') {
      this.pendingGap = gap;
      this.setAsideCount++;
      this.enforceDeadLetterBound();
      return true;
    }
    // The disk cannot move it: keep it as an in-memory dead letter and delete the row like
    // an acked one (pending until the disk works), so it is never handed out again.
    if (!this.disk.ack(seq)) return false;
    if (cached) {
      this.memory.keepDeadLetter({ ...cached, reason, setAsideAt: at });
      this.enforceDeadLetterBound();
    }
    this.countSetAside();
    this.pendingGap = gap;
    return true;
  }

  /** The dead letters kept now, oldest first (for inspection and tests). */
  deadLetters(): DeadLetter[] {
    return [...this.disk.deadLetters(), ...this.memory.deadLetters()].sort((a, b) => a.seq - b.seq);
  }

  /** The synchronous mode SQLite actually runs with; undefined while in memory. */
  syncMode(): 'full' | 'normal' | 'off' | 'extra' | undefined {
    return this.disk.syncMode();
  }

  stats(): SpoolStats {
    const oldest = this.oldest();
    const revealable = this.mark.ceiling;
    let withheld = 0;
    for (const seq of this.memory.seqs()) if (seq > revealable) withheld++;
    const stats: SpoolStats = {
      depth: this.disk.depth + this.memory.depth + this.queued.length + this.unnumbered.length,
      bytes: this.disk.bytes + this.memory.bytes + this.queuedBytes + this.unnumberedBytes,
      dropped: this.dropped,
      oldestAgeMs: oldest
        ? Math.max(0, Math.round(this.age.ageOf(oldest.seq, oldest.createdAt)))
        : 0,
      lastSeq: this.lastSeq,
      diskOk: this.diskOk,
      markOk: this.markOk,
      memoryDepth: this.memory.depth,
      memoryBytes: this.memory.bytes + this.unnumberedBytes,
      withheld,
      unnumbered: this.unnumbered.length,
      corruptMovedAside: this.corruptMoved,
      commits: this.commits,
      setAside: this.setAsideCount,
      deadLetters: this.disk.deadLetterCount + this.memory.deadLetterCount,
      deadLetterBytes: this.disk.deadLetterBytes + this.memory.deadLetterBytes,
      deadLettersDropped: this.deadDropped,
    };
    if (this.lastDrop) stats.lastDrop = { ...this.lastDrop };
    return stats;
  }

  /**
   * Commits what is queued and closes the database; brings the mark's ceiling down to the last
   * seq, so the next start continues right after it. Batches that exist only in memory (the
   * disk still fails) cannot be kept: they are logged as lost, never announced as kept, with
   * the note the next start will make for this stop (reservedNote on the mark as it is on
   * disk), so the two agree; the next start counts them.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.retryTimer);
    this.retryTimer = undefined;
    this.commit();
    if (this.memory.depth > 0 && this.disk.isOpen) {
      this.lastDiskTry = 0;
      this.retryDisk();
    }
    if (this.numbered && (this.mark.ceiling > this.lastSeq || this.memory.depth > 0)) {
      this.lastMarkTry = 0;
      // With every seq in the database only the ceiling comes down: `stored` keeps telling a
      // start that finds the database lost where the mark last saw it.
      const inDatabase = this.memory.depth === 0 && this.memorySettled === 0;
      this.writeMark({
        ceiling: this.lastSeq,
        revealed: 0,
        ...(inDatabase ? { stored: this.mark.stored } : {}),
      });
    }
    const seqs = this.memory.seqs();
    const lost = seqs.length + this.unnumbered.length;
    // Unnumbered batches have no seq for a note to name: counted here (persisted with the mark
    // where it can be written). Numbered ones are counted by the next start's note.
    if (this.unnumbered.length > 0) {
      this.dropped += this.unnumbered.length;
      this.writeMark({});
    }
    const next = this.numbered ? reservedNote(this.mark, this.storedSeq) : undefined;
    if (lost > 0 || (next && next.count > 0)) {
      const skip = next
        ? `the next start skips seqs ${next.firstSeq}–${next.lastSeq} and counts ${next.count} of them as dropped (reason ${next.reason}: those that were published are real batches, the others are lost or were never used)`
        : 'they are counted as dropped';
      this.logger.error(
        {
          lost,
          ...(seqs.length > 0 ? { lostFirstSeq: seqs[0], lostLastSeq: seqs[seqs.length - 1] } : {}),
          unnumbered: this.unnumbered.length,
          ...(next ?? { count: 0 }),
          dropped: this.dropped + (next?.count ?? 0),
        },
        `SPOOL: ${lost} batches held in memory could not be written to disk and are lost at this stop; ${skip}; seqs are not reused`,
      );
      this.memory.clearBatches();
      this.unnumbered = [];
      this.unnumberedBytes = 0;
    }
    try {
      this.disk.close();
    } catch (err) {
      this.logger.warn(causeOf(err), 'spool close failed');
    }
    this.diskOk = false;
    this.markFile?.close();
    this.markFile = undefined;
  }

  // ---- opening, numbering, recovery ----

  /**
   * Open the database and adopt it: 'ok', 'in-use' (another process), or 'failed' (including
   * a corrupt one moved aside when a new one could not be made).
   */
  private openDatabase(knownCorrupt = false): 'ok' | 'in-use' | 'failed' {
    let salvaged: (Salvage & { movedTo: string }) | undefined;
    // Two rounds at most: the file as it is, then a new one after moving a corrupt one aside.
    // Damage seen while running is moved aside without reopening the file first: quick_check
    // reads the pages, not the stored bodies, so it may pass a file whose rows cannot be read.
    for (let round = 0; round < 2; round++) {
      const result = knownCorrupt && round === 0 ? 'corrupt' : this.tryOpen();
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

  private tryOpen(): 'ok' | 'in-use' | 'corrupt' | 'failed' {
    try {
      return this.disk.open();
    } catch (err) {
      this.diskFailed(err, 'open');
      return 'failed';
    }
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
      this.letGoOfDatabase(false);
      if (isCorruption(err)) this.corruptSeen = true;
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
    const disk = this.disk;
    const meta = (key: string) => {
      const v = disk.readMeta(key);
      return typeof v === 'number' ? v : 0;
    };
    const fresh =
      disk.readMeta('last_seq') === undefined && disk.readMeta('opened_at') === undefined;
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

    // Acknowledged this run but not deleted yet: delivered, whatever the file lost.
    const ackedNow = disk.pendingAckSeqs();
    const salvagedSeqs = salvaged ? disk.importRows(salvaged.rows) : [];
    const totals = disk.load();
    const dbLast = Math.max(meta('last_seq'), totals.maxSeq ?? 0, salvaged?.lastSeq ?? 0);
    // Seqs this process assigned that are not in the database (memory batches) start here.
    const ownFirst = this.memory.first()?.seq ?? this.lastSeq + 1;

    const gaps: GapNote[] = [];
    /** Logged once the database took the new state (a failed adopt is retried later). */
    const announce: Array<() => void> = [];
    // A database that lost committed transactions (a damaged WAL is cut at the first bad
    // frame) is behind what the mark saw it store: treat its tail as lost too.
    const rolledBack = !fresh && salvaged === undefined && mark.stored > dbLast;
    const lost = salvaged !== undefined || (fresh && mark.ceiling > 0) || rolledBack;
    if (lost) {
      // The previous database is gone: seqs up to the mark's ceiling may have been assigned,
      // and of those, every one from the lowest unsettled seq on that is not read back is lost.
      const ceiling = Math.max(mark.ceiling, mark.revealed);
      const to = this.numbered ? Math.min(ceiling, ownFirst - 1) : ceiling;
      const from = rolledBack
        ? dbLast + 1
        : (salvaged?.unsentFrom ??
          (mark.unsentFrom > 0
            ? mark.unsentFrom
            : Math.min(mark.stored + 1, salvagedSeqs[0] ?? Infinity)));
      const kept = new Set([...salvagedSeqs, ...(salvaged?.deadLetterSeqs ?? []), ...ackedNow]);
      const note = lostBetween(from, to, kept);
      if (note) gaps.push(note);
      if (salvaged?.pendingGap) this.pendingGap = mergeGap(this.pendingGap, salvaged.pendingGap);
      const continuesAfter = Math.max(dbLast, to, this.numbered ? this.lastSeq : 0);
      announce.push(() =>
        this.logger.error(
          {
            path: this.path,
            movedTo: salvaged?.movedTo,
            salvaged: salvagedSeqs.length,
            lost: note?.count ?? 0,
            firstLost: note?.firstSeq,
            lastLost: note?.lastSeq,
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
    } else if (!this.numbered && reservedNote(mark, dbLast)) {
      // The last stop left seqs reserved above the database's last: any of them may have been
      // published from memory (the disk failed, or the process died before a clean stop).
      const note = reservedNote(mark, dbLast)!;
      if (note.count > 0) gaps.push(note);
      announce.push(() =>
        this.logger.warn(
          { ...note },
          note.count > 0
            ? 'spool: the last stop left seqs reserved above the last stored one (an unclean stop, or a disk that could not be written): numbering continues after them, and they are counted as dropped (reason reserved); seqs are not reused'
            : 'spool: every seq reserved above the last stored one was published before the last stop; numbering continues after them',
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
    this.age.resume(disk.readMeta('age_clock'));
    const storedGap = parseGap(disk.readMeta('pending_gap'));
    if (storedGap) this.pendingGap = mergeGap(this.pendingGap, storedGap);

    // The database records every seq up to here; our memory batches follow when moved.
    // A start continues after the mark's ceiling too: seqs up to it may have been handed out.
    const markTop = this.numbered ? 0 : Math.max(mark.ceiling, mark.revealed);
    const durableTop = Math.max(dbLast, 0, markTop, ...gaps.map((g) => g.lastSeq));
    for (const g of gaps) this.countDrop(g);
    this.lastSeq = Math.max(this.numbered ? this.lastSeq : 0, durableTop);
    this.storedSeq = durableTop;
    disk.setMeta(
      [
        ['last_seq', durableTop],
        ['dropped', this.dropped],
        ['corrupt_moved', this.corruptMoved],
        ['opened_at', this.now()],
        ['pending_gap', this.pendingGap ? JSON.stringify(this.pendingGap) : 0],
      ],
      durableTop + 1,
    );
    this.numbered = true;
    this.lastDiskTry = 0;
    for (const say of announce) say();
    disk.forgetRecent();
    if (this.started && totals.depth > 0) {
      const oldest = disk.oldest();
      if (oldest) for (const listener of this.rewindListeners) listener(oldest.seq);
    }
    this.diskTrouble.recovered({ path: this.path }, 'spool database open again');
    this.logger.info(
      { path: this.path, depth: totals.depth, lastSeq: this.lastSeq },
      'spool opened',
    );
    this.openMark();
    const first = this.memory.first();
    if (!first) {
      this.diskOk = true;
      // The database holds every revealed seq: the mark drops its revealed part.
      this.memorySettled = 0;
      this.writeMark({ revealed: 0, ceiling: Math.max(mark.ceiling, this.lastSeq) });
    } else {
      // The gap lies just before the first memory batch: that batch carries the note, unless
      // it was published already (its bytes must not change).
      if (this.pendingGap && first.seq > this.mark.revealed) {
        first.gapBefore = first.gapBefore
          ? mergeGap(this.pendingGap, first.gapBefore)
          : this.pendingGap;
        this.pendingGap = undefined;
      }
      // Moves the memory batches into the database (or keeps them there if the write fails).
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
      'spool database unavailable: numbering continues after the seq mark; batches are kept in memory and published on the seqs the mark reserves',
    );
    this.numberWaiting();
  }

  /** Give the batches that waited for numbering their seqs, oldest first, while seqs can be given. */
  private numberWaiting(): void {
    // Each pass numbers one batch or stops: bounded by how many wait.
    for (let pass = this.unnumbered.length; pass > 0 && this.numbered; pass--) {
      const w = this.unnumbered[0];
      if (!this.appendNumbered(w.body, w.createdAt, w.resolve)) return;
      this.unnumbered.shift();
      this.unnumberedBytes -= w.body.length;
    }
    if (this.unnumbered.length === 0) this.reserveLogged = false;
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
        'SPOOL SEQ MARK cannot be opened: batches held in memory are published only on seqs already reserved',
      );
    }
  }

  /**
   * Write the mark with `change` applied (fsynced). On failure the in-memory mark keeps what
   * was last written, so nothing is revealed on its strength.
   */
  private writeMark(change: Partial<SeqMark>): boolean {
    if (!this.markFile) {
      if (this.mono() - this.lastMarkTry < DISK_RETRY_MS && this.lastMarkTry > 0) return false;
      this.lastMarkTry = this.mono();
      this.openMark();
      if (!this.markFile) return false;
    }
    const next: SeqMark = {
      ...this.mark,
      dropped: this.dropped,
      stored: this.storedSeq,
      revealedCounted: this.memorySettled,
      unsentFrom: this.unsentFrom(),
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
        'SPOOL SEQ MARK cannot be written: batches held in memory are published only on seqs already reserved',
      );
      return false;
    }
  }

  /** The lowest seq not settled yet (a lower bound: acked rows may wait for their DELETE). */
  private unsentFrom(): number {
    const disk = this.disk.oldest()?.seq;
    const mem = this.memory.first()?.seq;
    const queued = this.queued[0]?.batch.seq;
    return Math.min(disk ?? Infinity, mem ?? Infinity, queued ?? Infinity, this.lastSeq + 1);
  }

  /** Memory batches become publishable when the mark's ceiling covers their seqs. */
  private revealMemory(): void {
    const top = this.memory.seqs().pop();
    if (top === undefined) return;
    if (this.mark.ceiling >= top) return;
    if (this.writeMark({ ceiling: top + this.reserve })) this.notifyCommitted();
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
    if (!this.disk.isOpen || this.corruptSeen) {
      if (this.mono() - this.lastOpenTry >= REOPEN_MS || this.corruptSeen) {
        this.lastOpenTry = this.mono();
        const corrupt = this.corruptSeen;
        if (corrupt) this.dropDatabase();
        if (this.openDatabase(corrupt) !== 'ok') this.numberFromMark();
      }
    } else if (!this.diskOk) {
      this.retryDisk();
    }
    if (!this.diskOk && this.memory.depth > 0) this.revealMemory();
    this.numberWaiting();
    this.enforceBounds();
  }

  /** Runtime corruption: let go of the database so the next open moves it aside. */
  private dropDatabase(): void {
    this.letGoOfDatabase(true);
    this.corruptSeen = false;
  }

  /** Close the database whatever state it is in; `forget` when the file is going away. */
  private letGoOfDatabase(forget: boolean): void {
    this.disk.release(forget);
    this.diskOk = false;
  }

  // ---- writing ----

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
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }

  /** Acks wait for the next batch's commit, bounded in count and time (see the header). */
  private scheduleAckCommit(): void {
    if (this.disk.pendingDeletes >= COMMIT_MAX_BATCHES) {
      this.scheduleCommit();
      return;
    }
    if (this.ackTimer || this.cancelCommit) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      this.commit();
    }, this.options.ackCommitDelayMs ?? ACK_COMMIT_DELAY_MS);
    this.ackTimer.unref();
  }

  private notifyCommitted(): void {
    for (const listener of this.commitListeners) listener();
  }

  private keepInMemory(batches: SpooledBatch[]): void {
    if (batches.length === 0) return;
    this.memory.write(batches);
    this.revealMemory();
    this.enforceMemoryBound();
  }

  /**
   * One transaction: the pending DELETEs of acked batches, the inserts, `last_seq` (when
   * given) and the pending gap note. With synchronous=FULL it is fsynced once, before this
   * returns.
   */
  private writeToDisk(batches: SpooledBatch[], lastSeq: number | undefined): boolean {
    const meta: MetaEntry[] = [['age_clock', this.age.save()]];
    if (lastSeq !== undefined) meta.push(['last_seq', lastSeq]);
    if (batches.some((b) => b.gapBefore)) {
      meta.push(['dropped', this.dropped]);
      meta.push(['pending_gap', this.pendingGap ? JSON.stringify(this.pendingGap) : 0]);
    }
    if (!this.disk.write(batches, meta)) return false;
    this.commits++;
    if (lastSeq !== undefined) this.storedSeq = Math.max(this.storedSeq, lastSeq);
    return true;
  }

  private diskFailed(err: unknown, op: string): void {
    this.lastDiskTry = this.mono();
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
    if (this.diskOk || !this.disk.isOpen || this.corruptSeen) return;
    if (this.mono() - this.lastDiskTry < DISK_RETRY_MS) return;
    this.lastDiskTry = this.mono();
    this.diskOk = true;
    // Nothing is queued while the disk fails: every seq assigned so far is in `pending`.
    const pending = this.memory.all();
    // With nothing pending this probes with the metadata write alone.
    if (!this.writeToDisk(pending, this.lastSeq)) return;
    this.memory.clearBatches();
    this.disk.forgetRecent();
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

  private writeMeta(key: string, value: number | string): void {
    if (this.diskOk) this.disk.recordMeta(key, value);
  }

  /** The oldest batch held anywhere; seq 0 for one still waiting for its number. */
  private oldest(): { seq: number; createdAt: number; onDisk: boolean } | undefined {
    const disk = this.disk.oldest();
    const mem = this.memory.oldest();
    if (disk && (!mem || disk.seq < mem.seq)) return { ...disk, onDisk: true };
    if (mem) return { ...mem, onDisk: false };
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
      const overBytes = this.disk.heldBytes + this.memory.heldBytes > this.options.maxBytes;
      const oldest = this.oldest();
      if (!oldest || oldest.seq === 0) break;
      this.age.prune(oldest.seq);
      const tooOld = this.age.ageOf(oldest.seq, oldest.createdAt) > maxAgeMs;
      if (!overBytes && !tooOld) break;
      const outcome = this.dropOne(oldest.seq, oldest.onDisk);
      if (!outcome) break;
      if (outcome === 'dropped') droppedSeqs.push(oldest.seq);
      if (droppedSeqs.length >= DROP_CHUNK) this.reportDrops(droppedSeqs.splice(0), 'spool-bound');
    }
    if (droppedSeqs.length > 0) this.reportDrops(droppedSeqs, 'spool-bound');
  }

  /** The memory store (and batches waiting for numbering) stay within memoryMaxBytes. */
  private enforceMemoryBound(): void {
    const limit = Math.min(this.options.memoryMaxBytes ?? MEMORY_MAX_BYTES, this.options.maxBytes);
    const droppedSeqs: number[] = [];
    let droppedUnnumbered = 0;
    // Each pass drops one batch: bounded by how many there are.
    for (let pass = this.memory.depth + this.unnumbered.length; pass > 0; pass--) {
      if (this.memory.bytes + this.unnumberedBytes <= limit) break;
      const first = this.memory.first();
      if (first) {
        this.dropOne(first.seq, false);
        droppedSeqs.push(first.seq);
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
    const row = onDisk ? this.disk.drop(seq) : this.memory.drop(seq);
    if (row === undefined) return false;
    if (row === 'acked') return 'settled';
    // A memory seq above the stored one is settled: the next start must not count it twice.
    if (!onDisk) this.memorySettled++;
    this.dropped++;
    if (row.gapBefore) this.pendingGap = mergeGap(this.pendingGap, row.gapBefore);
    return 'dropped';
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
    if (this.disk.isOpen && this.diskOk) {
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

  /** A set-aside counted where the disk could not record it: persisted with the next meta write. */
  private countSetAside(): void {
    this.setAsideCount++;
    this.writeMeta('set_aside', this.setAsideCount);
  }

  /** Dead letters stay within DEAD_LETTER_SHARE of maxBytes: drop the oldest, counted. */
  private enforceDeadLetterBound(): void {
    const limit = Math.floor(this.options.maxBytes * DEAD_LETTER_SHARE);
    let droppedNow = 0;
    // Each pass drops one dead letter: bounded by how many there are.
    for (let pass = this.disk.deadLetterCount + this.memory.deadLetterCount; pass > 0; pass--) {
      if (this.disk.deadLetterBytes + this.memory.deadLetterBytes <= limit) break;
      const mem = this.memory.oldestDeadLetter();
      const disk = this.disk.oldestDeadLetter();
      if (mem !== undefined && (disk === undefined || mem < disk)) {
        this.memory.dropDeadLetter(mem);
      } else if (disk !== undefined) {
        if (!this.disk.dropDeadLetter(disk)) break;
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

/**
 * The note for the seqs in [from, to] that are not in `kept`: how many, the lowest and the
 * highest of them; undefined when there are none. Steps over kept seqs only (bounded by them).
 */
function lostBetween(from: number, to: number, kept: ReadonlySet<number>): GapNote | undefined {
  let inside = 0;
  for (const seq of kept) if (seq >= from && seq <= to) inside++;
  const count = to - from + 1 - inside;
  if (count <= 0) return undefined;
  let firstSeq = from;
  while (kept.has(firstSeq)) firstSeq++;
  let lastSeq = to;
  while (kept.has(lastSeq)) lastSeq--;
  return { count, firstSeq, lastSeq, reason: 'database-lost' };
}

/** A set-aside seq is missing for subscribers too: the next batch's note names it. */
function setAsideNote(seq: number): GapNote {
  return { count: 1, firstSeq: seq, lastSeq: seq, reason: 'set-aside' };
}
