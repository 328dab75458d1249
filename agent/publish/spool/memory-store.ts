/**
 * The spool's rows in memory: where batches live while the disk fails (the Spool bounds it by
 * spool.memoryMaxBytes). Nothing here survives a restart; the Spool's seq mark says which
 * seqs may have been revealed from it. Batches are kept in the order written, which the Spool
 * keeps ascending by seq.
 */
import type { BatchStore, DeadLetter, DroppedRow, SpooledBatch } from './store.js';

export class MemoryStore implements BatchStore {
  private readonly batches = new Map<number, SpooledBatch>();
  private batchBytes = 0;
  private readonly dead = new Map<number, DeadLetter>();
  private deadBytes = 0;

  get depth(): number {
    return this.batches.size;
  }
  get bytes(): number {
    return this.batchBytes;
  }
  get heldBytes(): number {
    return this.batchBytes;
  }
  get deadLetterCount(): number {
    return this.dead.size;
  }
  get deadLetterBytes(): number {
    return this.deadBytes;
  }

  write(batches: readonly SpooledBatch[]): boolean {
    for (const b of batches) {
      this.batches.set(b.seq, b);
      this.batchBytes += b.body.length;
    }
    return true;
  }

  read(afterSeq: number, limit: number): SpooledBatch[] {
    const out: SpooledBatch[] = [];
    for (const b of this.batches.values()) {
      if (out.length >= limit) break;
      if (b.seq > afterSeq) out.push(b);
    }
    return out;
  }

  /** The first batch held (the lowest seq), as stored: the Spool may attach a gap note to it. */
  first(): SpooledBatch | undefined {
    const first = this.batches.values().next();
    return first.done ? undefined : first.value;
  }

  oldest(): { seq: number; createdAt: number } | undefined {
    const b = this.first();
    return b ? { seq: b.seq, createdAt: b.createdAt } : undefined;
  }

  /** The seqs held, in order. */
  seqs(): number[] {
    return [...this.batches.keys()];
  }

  /** Every batch held, in order (to move them to another store). */
  all(): SpooledBatch[] {
    return [...this.batches.values()];
  }

  /** Forget every batch (moved to another store, or lost at close); dead letters stay. */
  clearBatches(): void {
    this.batches.clear();
    this.batchBytes = 0;
  }

  ack(seq: number): boolean {
    return this.remove(seq) !== undefined;
  }

  drop(seq: number): DroppedRow | undefined {
    const b = this.remove(seq);
    if (!b) return undefined;
    return b.gapBefore
      ? { bytes: b.body.length, gapBefore: b.gapBefore }
      : { bytes: b.body.length };
  }

  setAside(seq: number, reason: string, at: number): DeadLetter | undefined {
    const b = this.remove(seq);
    if (!b) return undefined;
    const letter: DeadLetter = { ...b, reason, setAsideAt: at };
    this.keepDeadLetter(letter);
    return letter;
  }

  /** Keep a dead letter another store could not (its disk failed while setting it aside). */
  keepDeadLetter(letter: DeadLetter): void {
    this.dead.set(letter.seq, letter);
    this.deadBytes += letter.body.length;
  }

  deadLetters(): DeadLetter[] {
    return [...this.dead.values()].sort((a, b) => a.seq - b.seq);
  }

  oldestDeadLetter(): number | undefined {
    let lowest: number | undefined;
    for (const seq of this.dead.keys()) if (lowest === undefined || seq < lowest) lowest = seq;
    return lowest;
  }

  dropDeadLetter(seq: number): boolean {
    const letter = this.dead.get(seq);
    if (letter) {
      this.dead.delete(seq);
      this.deadBytes -= letter.body.length;
    }
    return true;
  }

  private remove(seq: number): SpooledBatch | undefined {
    const b = this.batches.get(seq);
    if (!b) return undefined;
    this.batches.delete(seq);
    this.batchBytes -= b.body.length;
    return b;
  }
}
