/**
 * Giving batches their seqs, under the spool's rule: a seq is handed out only once it is
 * durable somewhere the next start reads. With the disk working, the batch joins the group
 * commit (its seq is durable once that commits). With the disk failing, the seq must be within
 * the mark's ceiling, raised a reserve ahead while the mark can be written; once the reserve
 * is used up and neither can be written, batches wait without a seq (waiting.ts) and are
 * numbered, oldest first, when seqs can be given again.
 */
import type { Logger } from '../../ops/logger.js';
import type { AgeClock } from './age-clock.js';
import type { DiskFailover } from './disk-failover.js';
import type { GroupCommit } from './group-commit.js';
import type { MarkKeeper } from './mark-keeper.js';
import type { Numbering, SpoolCounts } from './recovery.js';
import type { Retention } from './retention.js';
import type { DurableStore, SpooledBatch } from './store.js';
import type { WaitingForSeq } from './waiting.js';

/** The Spool's parts seq assignment reads and changes. */
export interface AssignerParts {
  readonly disk: DurableStore;
  readonly numbering: Numbering;
  readonly counts: SpoolCounts;
  readonly marks: MarkKeeper;
  readonly failover: DiskFailover;
  readonly retention: Retention;
  readonly group: GroupCommit;
  readonly waiting: WaitingForSeq;
  readonly age: AgeClock;
  readonly logger: Logger;
  /** Seqs reserved ahead when the mark's ceiling is raised. */
  readonly reserve: number;
  /** Write what the group commit holds now. */
  commit(): void;
  notifyCommitted(): void;
}

export class SeqAssigner {
  private reserveLogged = false;

  constructor(private readonly p: AssignerParts) {}

  /**
   * Give the batch the next seq and store it; false (nothing changed) when that seq could not be
   * made durable: the disk fails and the mark's reserve is used up and cannot be extended.
   */
  assign(view: Buffer, createdAt: number, resolve: (seq: number) => void): boolean {
    const { failover, numbering, marks, counts } = this.p;
    failover.moveBack();
    const seq = numbering.lastSeq + 1;
    if (seq > marks.mark.ceiling) marks.update({ ceiling: seq - 1 + this.p.reserve });
    if (!failover.ok && seq > marks.mark.ceiling) {
      this.reserveUsedUp();
      return false;
    }
    numbering.lastSeq = seq;
    const batch: SpooledBatch = { seq, createdAt, body: view };
    this.p.age.stamp(seq);
    if (counts.pendingGap) {
      batch.gapBefore = counts.pendingGap;
      counts.pendingGap = undefined;
    }
    if (!failover.ok) {
      // Whatever is still queued goes to memory first: the memory store stays in seq order.
      this.p.commit();
      failover.keep([batch]);
      this.p.retention.enforceBounds();
      this.p.notifyCommitted();
      resolve(seq);
      return true;
    }
    this.p.group.add({ batch, resolve });
    return true;
  }

  /** Give the batches that waited for numbering their seqs, oldest first, while seqs can be given. */
  assignWaiting(): void {
    const { waiting, numbering } = this.p;
    // Each pass numbers one batch or stops: bounded by how many wait.
    for (let pass = waiting.length; pass > 0 && numbering.numbered; pass--) {
      const w = waiting.first()!;
      if (!this.assign(w.body, w.createdAt, w.resolve)) return;
      waiting.shift();
    }
    if (waiting.length === 0) this.reserveLogged = false;
  }

  /** Logged once per stretch: new batches wait unnumbered until the mark or the disk works. */
  private reserveUsedUp(): void {
    if (this.reserveLogged) return;
    this.reserveLogged = true;
    this.p.logger.error(
      { path: this.p.disk.path, ceiling: this.p.marks.mark.ceiling },
      'SPOOL: the seqs reserved ahead are used up and neither the database nor the seq mark can be written: new batches wait in memory without a seq (spool.unnumbered) and are not published until the disk works',
    );
  }
}
