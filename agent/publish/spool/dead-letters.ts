/**
 * Dead letters: batches the broker refused for good, moved out of the publish queue so the
 * batches after them flow on. Set aside in one transaction (DELETE from batches, INSERT into
 * dead_letters), never handed out again, counted in `setAside`, and named by the next batch's
 * note (reason `set-aside`), since a subscriber misses that seq too. They are kept for
 * inspection within DEAD_LETTER_SHARE of spool.maxBytes, the oldest dropped (counted).
 */
import type { Logger } from '../../ops/logger.js';
import type { DiskFailover } from './disk-failover.js';
import { mergeGap, type GapNote } from './gap-note.js';
import type { MemoryStore } from './memory-store.js';
import type { SpoolCounts } from './recovery.js';
import type { SeqMark } from './seq-mark.js';
import type { DeadLetterChange, DeadLetterSelection } from './operator.js';
import { DISCARDED_META } from './sqlite-dead-letters.js';
import type { DeadLetter, DurableStore } from './store.js';

/** Dead letters may take this share of spool.maxBytes; beyond it the oldest are dropped. */
export const DEAD_LETTER_SHARE = 0.1;

/** The Spool's parts the dead letters read and change. */
export interface DeadLetterParts {
  readonly disk: DurableStore;
  readonly memory: MemoryStore;
  readonly counts: SpoolCounts;
  readonly failover: DiskFailover;
  readonly bounds: { maxBytes: number };
  readonly logger: Logger;
  /** Write the mark with `change` applied (a memory batch was settled). */
  writeMark(change: Partial<SeqMark>): boolean;
}

export class DeadLetters {
  constructor(private readonly p: DeadLetterParts) {}

  /**
   * Move the batch `seq` to the dead letters; false for a seq that is not waiting to be
   * published (unknown, acked or dropped).
   */
  setAside(seq: number, reason: string, at: number): boolean {
    const { disk, memory, counts, failover } = this.p;
    const gap = mergeGap(counts.pendingGap, setAsideNote(seq));
    if (memory.setAside(seq, reason, at)) {
      failover.memorySettled++;
      this.enforceBound();
      this.countSetAside();
      counts.pendingGap = gap;
      this.p.writeMark({});
      return true;
    }
    const cached = disk.cached(seq);
    const moved = disk.setAside(seq, reason, at, [
      ['set_aside', counts.setAside + 1],
      ['pending_gap', JSON.stringify(gap)],
    ]);
    if (moved === undefined) return false;
    if (moved !== 'failed') {
      counts.pendingGap = gap;
      counts.setAside++;
      this.enforceBound();
      return true;
    }
    // The disk cannot move it: keep it as an in-memory dead letter and delete the row like
    // an acked one (pending until the disk works), so it is never handed out again.
    if (!disk.ack(seq)) return false;
    if (cached) {
      memory.keepDeadLetter({ ...cached, reason, setAsideAt: at });
      this.enforceBound();
    }
    this.countSetAside();
    counts.pendingGap = gap;
    return true;
  }

  /** The dead letters kept now, oldest first. */
  list(): DeadLetter[] {
    return [...this.p.disk.deadLetters(), ...this.p.memory.deadLetters()].sort(
      (a, b) => a.seq - b.seq,
    );
  }

  /**
   * The operator's requeue or drop (`edge-agent spool`), all the selected dead letters or
   * none: a requeued one goes back among the batches under its own seq (the caller rewinds
   * the publisher to it), a dropped one is deleted; both counted in meta. Needs the disk:
   * while it fails nothing changes. A dead letter held in memory (its disk write failed) can
   * be dropped, not requeued.
   */
  change(kind: 'requeue' | 'drop', selection: DeadLetterSelection): DeadLetterChange {
    const { disk, memory, failover } = this.p;
    const onDisk = new Set(disk.deadLetters().map((d) => d.seq));
    const inMemory = new Set(memory.deadLetters().map((d) => d.seq));
    const all = [...onDisk, ...inMemory].sort((a, b) => a - b);
    const wanted = 'all' in selection ? all : [...new Set(selection.seqs)];
    const missing = wanted.filter((s) => !onDisk.has(s) && !inMemory.has(s));
    if (missing.length > 0) return { ok: false, missing, deadLetters: all };
    const refuse = (reason: string): DeadLetterChange => ({
      ok: false,
      missing: [],
      deadLetters: all,
      reason,
    });
    if (!failover.ok || !disk.isOpen) {
      return refuse(
        "the spool's disk is failing (batches are held in memory): dead letters can be changed once it works again; nothing changed",
      );
    }
    const memorySeqs = wanted.filter((s) => inMemory.has(s));
    const diskSeqs = wanted.filter((s) => onDisk.has(s));
    if (kind === 'requeue' && memorySeqs.length > 0 && !('all' in selection)) {
      return refuse(
        `seqs ${memorySeqs.join(', ')} are held in memory only (their disk write failed): they can be dropped, not requeued; nothing changed`,
      );
    }
    const done = diskSeqs.length === 0 ? [] : disk.changeDeadLetters(kind, diskSeqs);
    if (done === 'failed') return refuse(`the spool's disk failed; nothing changed`);
    if (kind === 'drop' && memorySeqs.length > 0) {
      for (const seq of memorySeqs) memory.dropDeadLetter(seq);
      done.push(...memorySeqs);
      let counted: unknown;
      try {
        counted = disk.readMeta(DISCARDED_META);
      } catch {
        counted = 0; // the write below reports a failing disk
      }
      const before = typeof counted === 'number' ? counted : 0;
      disk.recordMeta(DISCARDED_META, before + memorySeqs.length);
    }
    return { ok: true, seqs: done.sort((a, b) => a - b) };
  }

  /** Dead letters stay within DEAD_LETTER_SHARE of maxBytes: drop the oldest, counted. */
  private enforceBound(): void {
    const { disk, memory, counts } = this.p;
    const limit = Math.floor(this.p.bounds.maxBytes * DEAD_LETTER_SHARE);
    let droppedNow = 0;
    // Each pass drops one dead letter: bounded by how many there are.
    for (let pass = disk.deadLetterCount + memory.deadLetterCount; pass > 0; pass--) {
      if (disk.deadLetterBytes + memory.deadLetterBytes <= limit) break;
      const mem = memory.oldestDeadLetter();
      const onDisk = disk.oldestDeadLetter();
      if (mem !== undefined && (onDisk === undefined || mem < onDisk)) {
        memory.dropDeadLetter(mem);
      } else if (onDisk !== undefined) {
        if (!disk.dropDeadLetter(onDisk)) break;
      } else break;
      counts.deadLettersDropped++;
      droppedNow++;
    }
    if (droppedNow > 0) {
      this.p.failover.writeMeta('dead_letters_dropped', counts.deadLettersDropped);
      this.p.logger.warn(
        { count: droppedNow, deadLettersDropped: counts.deadLettersDropped },
        'dead letters over their bound: dropped the oldest',
      );
    }
  }

  /** A set-aside counted where the disk could not record it: persisted with the next meta write. */
  private countSetAside(): void {
    this.p.counts.setAside++;
    this.p.failover.writeMeta('set_aside', this.p.counts.setAside);
  }
}

/** A set-aside seq is missing for subscribers too: the next batch's note names it. */
function setAsideNote(seq: number): GapNote {
  return { count: 1, firstSeq: seq, lastSeq: seq, reason: 'set-aside' };
}
