/**
 * The SQLite store's read-back cache: while the publisher is connected (`retainRecent(true)`),
 * the bodies of the rows just written are also kept here, in a small bounded window
 * (RECENT_*), so handing them out does not read them back. The window holds copies of rows
 * that are on disk: it changes no durability, ack or drop rule. Invariant: every
 * unacknowledged row with seq >= `from` is in the window, so a read queries SQLite only below.
 */
import type { SpooledBatch } from './store.js';

/** Bounds of the window: a few in-flight windows' worth. */
export const RECENT_MAX_BATCHES = 64;
export const RECENT_MAX_BYTES = 8 * 1024 * 1024;

export class RecentCache {
  /** Rows with a seq from here on are all in the window (or acknowledged). */
  from = 1;
  private readonly rows = new Map<number, SpooledBatch>();
  private bytes = 0;
  private keep = false;

  /** Keep rows written from now on; turning it off empties the window. */
  retain(on: boolean, topSeq: number): void {
    this.keep = on;
    if (!on) this.forget(topSeq);
  }

  /** Empty the window; `topSeq` is the highest seq the table may hold. */
  forget(topSeq: number): void {
    this.rows.clear();
    this.bytes = 0;
    // No row has a seq above topSeq: the invariant holds with an empty window.
    this.from = topSeq + 1;
  }

  /** Forget the rows without moving `from` (the file is going away). */
  clear(): void {
    this.rows.clear();
    this.bytes = 0;
  }

  get(seq: number): SpooledBatch | undefined {
    return this.rows.get(seq);
  }

  /** The rows with seq > afterSeq, in order, appended to `out` up to `limit` in all. */
  readInto(out: SpooledBatch[], afterSeq: number, limit: number): void {
    for (const b of this.rows.values()) {
      if (out.length >= limit) break;
      if (b.seq > afterSeq) out.push(b);
    }
  }

  /** A row was written (in seq order). */
  remember(batch: SpooledBatch): void {
    if (!this.keep) {
      this.from = Math.max(this.from, batch.seq + 1);
      return;
    }
    this.rows.set(batch.seq, batch);
    this.bytes += batch.body.length;
    while (this.rows.size > RECENT_MAX_BATCHES || this.bytes > RECENT_MAX_BYTES) {
      const oldest = this.rows.values().next().value as SpooledBatch;
      this.rows.delete(oldest.seq);
      this.bytes -= oldest.body.length;
      this.from = oldest.seq + 1;
    }
  }

  /** A row left the table (acknowledged, dropped, set aside): the copy it had, if any. */
  take(seq: number): SpooledBatch | undefined {
    const b = this.rows.get(seq);
    if (!b) return undefined;
    this.rows.delete(seq);
    this.bytes -= b.body.length;
    return b;
  }
}
