/**
 * The spool's bounds: payload bytes and age on disk and in memory (drop oldest), the memory
 * window while the disk fails. Every drop is counted (persisted
 * where possible) and the next batch appended after it carries a note of the dropped seqs
 * (`gapBefore`), so a subscriber's gap is explained. Age is elapsed time (age-clock.ts), so a
 * clock step neither ages nor rejuvenates a batch.
 */
import type { Logger } from '../../ops/logger.js';
import type { AgeClock } from './age-clock.js';
import { mergeGap, type GapNote } from './gap-note.js';
import type { MemoryStore } from './memory-store.js';
import type { SpoolCounts } from './recovery.js';
import type { DurableStore } from './store.js';
import type { WaitingForSeq } from './waiting.js';

/** Default bound of the memory window (spool.memoryMaxBytes). */
export const MEMORY_MAX_BYTES = 8 * 1024 * 1024;
/** Drops are reported (and persisted) in chunks of at most this many. */
const DROP_CHUNK = 256;

export interface RetentionBounds {
  maxBytes: number;
  maxAgeSec: number;
  memoryMaxBytes?: number;
}

/** What the bounds look at and change: the Spool's parts. */
export interface RetentionParts {
  readonly disk: DurableStore;
  readonly memory: MemoryStore;
  readonly waiting: WaitingForSeq;
  readonly age: AgeClock;
  readonly counts: SpoolCounts;
  readonly bounds: RetentionBounds;
  readonly logger: Logger;
  /** A memory batch was dropped: its seq is settled. */
  settledInMemory(): void;
  /** Persist `dropped` and `pendingGap` (the database's meta, or the mark while it fails). */
  persistDrops(): void;
}

/** The oldest batch held anywhere; seq 0 for one still waiting for its number. */
export interface OldestBatch {
  seq: number;
  createdAt: number;
  onDisk: boolean;
}

export class Retention {
  constructor(private readonly p: RetentionParts) {}

  oldest(): OldestBatch | undefined {
    const disk = this.p.disk.oldest();
    const mem = this.p.memory.oldest();
    if (disk && (!mem || disk.seq < mem.seq)) return { ...disk, onDisk: true };
    if (mem) return { ...mem, onDisk: false };
    const w = this.p.waiting.first();
    return w ? { seq: 0, createdAt: w.createdAt, onDisk: false } : undefined;
  }

  /** Drop the oldest batches while over the byte or age bound; count and log them. */
  enforceBounds(): void {
    const { disk, memory, age, bounds } = this.p;
    const maxAgeMs = bounds.maxAgeSec * 1000;
    const droppedSeqs: number[] = [];
    // Each pass drops one batch; the bound on passes keeps a corrupt count from looping forever.
    for (let pass = 0; pass < 1_000_000; pass++) {
      const overBytes = disk.heldBytes + memory.heldBytes > bounds.maxBytes;
      const oldest = this.oldest();
      if (!oldest || oldest.seq === 0) break;
      age.prune(oldest.seq);
      const tooOld = age.ageOf(oldest.seq, oldest.createdAt) > maxAgeMs;
      if (!overBytes && !tooOld) break;
      const outcome = this.dropOne(oldest.seq, oldest.onDisk);
      if (!outcome) break;
      if (outcome === 'dropped') droppedSeqs.push(oldest.seq);
      if (droppedSeqs.length >= DROP_CHUNK) this.reportDrops(droppedSeqs.splice(0), 'spool-bound');
    }
    if (droppedSeqs.length > 0) this.reportDrops(droppedSeqs, 'spool-bound');
  }

  /** The memory store (and batches waiting for numbering) stay within memoryMaxBytes. */
  enforceMemoryBound(): void {
    const { memory, waiting, bounds, counts } = this.p;
    const limit = Math.min(bounds.memoryMaxBytes ?? MEMORY_MAX_BYTES, bounds.maxBytes);
    const droppedSeqs: number[] = [];
    let droppedWaiting = 0;
    // Each pass drops one batch: bounded by how many there are.
    for (let pass = memory.depth + waiting.length; pass > 0; pass--) {
      if (memory.bytes + waiting.bytes <= limit) break;
      const first = memory.first();
      if (first) {
        this.dropOne(first.seq, false);
        droppedSeqs.push(first.seq);
        continue;
      }
      if (!waiting.shift()) break;
      counts.dropped++;
      droppedWaiting++;
    }
    if (droppedSeqs.length > 0) this.reportDrops(droppedSeqs, 'memory-bound');
    if (droppedWaiting > 0)
      this.p.logger.warn(
        { count: droppedWaiting, dropped: counts.dropped },
        'spool memory bound (spool.memoryMaxBytes) reached: dropped the oldest unnumbered batches',
      );
  }

  /** Drop one batch; a row whose ack was not deleted yet is 'settled', not counted. */
  private dropOne(seq: number, onDisk: boolean): 'dropped' | 'settled' | false {
    const row = onDisk ? this.p.disk.drop(seq) : this.p.memory.drop(seq);
    if (row === undefined) return false;
    if (row === 'acked') return 'settled';
    // A memory seq above the stored one is settled: the next start must not count it twice.
    if (!onDisk) this.p.settledInMemory();
    const counts = this.p.counts;
    counts.dropped++;
    if (row.gapBefore) counts.pendingGap = mergeGap(counts.pendingGap, row.gapBefore);
    return 'dropped';
  }

  private reportDrops(seqs: number[], reason: string): void {
    const note: GapNote = {
      count: seqs.length,
      firstSeq: seqs[0],
      lastSeq: seqs[seqs.length - 1],
      reason,
    };
    const counts = this.p.counts;
    counts.lastDrop = note;
    counts.pendingGap = mergeGap(counts.pendingGap, note);
    this.p.persistDrops();
    this.p.logger.warn(
      { ...note, dropped: counts.dropped },
      reason === 'memory-bound'
        ? 'spool memory bound (spool.memoryMaxBytes) reached while the disk fails: dropped the oldest batches'
        : 'spool full or too old: dropped the oldest batches',
    );
  }
}
