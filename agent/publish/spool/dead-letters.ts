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
