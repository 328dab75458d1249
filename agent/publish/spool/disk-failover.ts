/**
 * Where rows go, and what happens when the disk fails (full, read-only, I/O error): batches
 * then live in the memory store, bounded by `memoryMaxBytes` (drop oldest, counted). Those
 * whose seq is within the mark's durable ceiling are published (the broker's PUBACK is then
 * their only copy) and leave memory when acked; the ceiling is raised when the mark can be
 * written (`reveal`). The database is retried in the background (DISK_RETRY_MS; reopened every
 * REOPEN_MS when it could not be opened, at once when SQLite reported it corrupt) and the
 * memory batches move back to it when it works.
 */
import type { Logger } from '../../ops/logger.js';
import type { AgeClock } from './age-clock.js';
import { DiskTrouble } from './disk-trouble.js';
import type { MemoryStore } from './memory-store.js';
import type { Numbering, SpoolCounts } from './recovery.js';
import { isCorruption } from './salvage.js';
import type { SeqMark } from './seq-mark.js';
import type { DurableStore, MetaEntry, SpooledBatch } from './store.js';

/** While the database fails, a write is retried at most this often. */
export const DISK_RETRY_MS = 1000;
/** While the database cannot be opened, opening is retried at most this often. */
export const REOPEN_MS = 5000;

/** The Spool's parts the failover reads and writes. */
export interface FailoverParts {
  readonly disk: DurableStore;
  readonly memory: MemoryStore;
  readonly numbering: Numbering;
  readonly counts: SpoolCounts;
  readonly age: AgeClock;
  readonly logger: Logger;
  readonly mono: () => number;
  /** Seqs reserved ahead when the mark's ceiling is raised. */
  readonly reserve: number;
  /** The mark as last written. */
  mark(): SeqMark;
  /** Write the mark with `change` applied to the spool's state; true when it is on disk. */
  writeMark(change: Partial<SeqMark>): boolean;
  /** Batches may have become publishable. */
  notifyCommitted(): void;
  /** The retry found the database closed or corrupt: open it again (moving it aside if corrupt). */
  reopen(corrupt: boolean): void;
  /** Keep memory within spool.memoryMaxBytes (retention.ts). */
  enforceMemoryBound(): void;
  /** After each retry: number waiting batches, keep the bounds. */
  settle(): void;
}

export class DiskFailover {
  /** False while the database fails and batches live in memory only. */
  ok = false;
  /** Seqs above the stored seq that are settled (published, dropped, set aside) from memory. */
  memorySettled = 0;
  /** Transactions that wrote queued batches or acks. */
  commits = 0;
  private lastWriteTry = 0;
  private lastOpenTry = 0;
  /** Set when SQLite reported corruption at run time: the next retry moves the file aside. */
  private corruptSeen = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly trouble: DiskTrouble;

  constructor(private readonly p: FailoverParts) {
    this.trouble = new DiskTrouble(p.logger, 'spool disk', p.mono);
  }

  /** A disk operation failed: keep batches in memory and retry in the background. */
  failed(err: unknown, op: string): void {
    this.lastWriteTry = this.p.mono();
    if (isCorruption(err)) this.corruptSeen = true;
    this.trouble.failed(
      err,
      { path: this.p.disk.path, op },
      'SPOOL DISK FAILURE: keeping batches in memory (bounded by spool.memoryMaxBytes) until the disk works again',
    );
    if (!this.ok) return;
    this.ok = false;
    this.startRetrying();
  }

  /** The database opened again (logged once after a failure). */
  opened(): void {
    this.lastWriteTry = 0;
    this.trouble.recovered({ path: this.p.disk.path }, 'spool database open again');
  }

  /** An open was attempted now: the next waits REOPEN_MS. */
  openTried(): void {
    this.lastOpenTry = this.p.mono();
  }

  /** Every assigned seq is in the database: writes go there. */
  allOnDisk(): void {
    this.ok = true;
    this.memorySettled = 0;
  }

  /** While anything is not durable, retry it in the background (bounded rate). */
  startRetrying(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => {
      // A timer callback that throws would end the process: a disk fault is not worth that.
      try {
        this.retry();
      } catch (err) {
        this.failed(err, 'retry');
      }
    }, DISK_RETRY_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * One transaction: the pending DELETEs of acked batches, the inserts, `last_seq` (when
   * given) and the pending gap note. With synchronous=FULL it is fsynced once, before this
   * returns.
   */
  write(batches: SpooledBatch[], lastSeq: number | undefined): boolean {
    const { counts, numbering } = this.p;
    const meta: MetaEntry[] = [['age_clock', this.p.age.save()]];
    if (lastSeq !== undefined) meta.push(['last_seq', lastSeq]);
    if (batches.some((b) => b.gapBefore)) {
      meta.push(['dropped', counts.dropped]);
      meta.push(['pending_gap', counts.pendingGap ? JSON.stringify(counts.pendingGap) : 0]);
    }
    if (!this.p.disk.write(batches, meta)) return false;
    this.commits++;
    if (lastSeq !== undefined) numbering.storedSeq = Math.max(numbering.storedSeq, lastSeq);
    return true;
  }

  /** Batches the disk could not take: into memory, revealed as far as the mark allows. */
  keep(batches: SpooledBatch[]): void {
    if (batches.length === 0) return;
    this.p.memory.write(batches);
    this.reveal();
    this.p.enforceMemoryBound();
  }

  /** Memory batches become publishable when the mark's ceiling covers their seqs. */
  reveal(): void {
    const top = this.p.memory.seqs().pop();
    if (top === undefined) return;
    if (this.p.mark().ceiling >= top) return;
    if (this.p.writeMark({ ceiling: top + this.p.reserve })) this.p.notifyCommitted();
  }

  /**
   * While the disk is failing, try again at most once a second (`now`: at once); move the
   * memory batches back on success.
   */
  moveBack(now = false): void {
    if (now) this.lastWriteTry = 0;
    const { disk, memory } = this.p;
    if (this.ok || !disk.isOpen || this.corruptSeen) return;
    if (this.p.mono() - this.lastWriteTry < DISK_RETRY_MS) return;
    this.lastWriteTry = this.p.mono();
    this.ok = true;
    // Nothing is queued while the disk fails: every seq assigned so far is in `pending`.
    const pending = memory.all();
    // With nothing pending this probes with the metadata write alone.
    if (!this.write(pending, this.p.numbering.lastSeq)) return;
    memory.clearBatches();
    disk.forgetRecent();
    this.writeCounters();
    // Every assigned seq is in the database now: the mark drops its revealed part.
    this.memorySettled = 0;
    this.p.writeMark({ revealed: 0 });
    this.trouble.recovered({ path: disk.path, moved: pending.length }, 'spool disk works again');
    if (pending.length > 0) this.p.notifyCommitted();
  }

  /** Write one meta counter when the disk works. */
  writeMeta(key: string, value: number | string): void {
    if (this.ok) this.p.disk.recordMeta(key, value);
  }

  /** Persist the drop counters: the database's meta, or the mark while the disk fails. */
  persistDrops(): void {
    const c = this.p.counts;
    if (this.p.disk.isOpen && this.ok) {
      this.writeMeta('dropped', c.dropped);
      this.writeMeta('pending_gap', JSON.stringify(c.pendingGap));
    } else {
      this.p.writeMark({});
    }
  }

  /** Close the database whatever state it is in; `forget` when the file is going away. */
  letGo(forget: boolean): void {
    this.p.disk.release(forget);
    this.ok = false;
  }

  private writeCounters(): void {
    const c = this.p.counts;
    this.writeMeta('dropped', c.dropped);
    this.writeMeta('set_aside', c.setAside);
    this.writeMeta('dead_letters_dropped', c.deadLettersDropped);
    this.writeMeta('pending_gap', c.pendingGap ? JSON.stringify(c.pendingGap) : 0);
  }

  private retry(): void {
    if (this.stopped) return;
    const { disk, memory } = this.p;
    if (!disk.isOpen || this.corruptSeen) {
      if (this.p.mono() - this.lastOpenTry >= REOPEN_MS || this.corruptSeen) {
        this.lastOpenTry = this.p.mono();
        const corrupt = this.corruptSeen;
        // Runtime corruption: let go of the database so the next open moves it aside.
        if (corrupt) {
          this.letGo(true);
          this.corruptSeen = false;
        }
        this.p.reopen(corrupt);
      }
    } else if (!this.ok) {
      this.moveBack();
    }
    if (!this.ok && memory.depth > 0) this.reveal();
    this.p.settle();
  }
}
