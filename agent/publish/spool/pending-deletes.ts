/**
 * Acknowledged rows whose DELETE waits for the SQLite store's next write (one fsync for the
 * batches and the acks), with their payload bytes. Such a row is never read again; if its
 * DELETE is lost to a crash, the batch is replayed: a duplicate, never a loss.
 */
export class PendingDeletes {
  private readonly rows = new Map<number, number>();
  private total = 0;

  get size(): number {
    return this.rows.size;
  }
  /** Their payload bytes. */
  get bytes(): number {
    return this.total;
  }
  has(seq: number): boolean {
    return this.rows.has(seq);
  }
  seqs(): number[] {
    return [...this.rows.keys()];
  }

  add(seq: number, bytes: number): void {
    this.rows.set(seq, bytes);
    this.total += bytes;
  }

  /** The row's DELETE is done: no longer pending; false when it was not pending. */
  settle(seq: number): boolean {
    const bytes = this.rows.get(seq);
    if (bytes === undefined) return false;
    this.rows.delete(seq);
    this.total -= bytes;
    return true;
  }

  clear(): void {
    this.rows.clear();
    this.total = 0;
  }
}
