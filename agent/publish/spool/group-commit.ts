/**
 * Group commit: appends and acks made within a few milliseconds are written in ONE
 * transaction (with synchronous=FULL, one fsync for the lot instead of one per batch and one
 * per ack), committed COMMIT_DELAY_MS after the first of them, or at once when the queue
 * reaches COMMIT_MAX_*. A queued batch is invisible until its transaction committed: `append`
 * resolves with its seq, and `peek` hands it out, only then. A crash before the commit loses
 * the queued batches together with their seqs, which nobody ever saw: the next start may hand
 * those numbers out again without any subscriber seeing a seq twice.
 *
 * An ack only delays the DELETE (the store's pending deletes): it rides in the next batch's
 * commit, so a batch costs one commit rather than two. Acks alone are committed after
 * ACK_COMMIT_DELAY_MS, or at once when COMMIT_MAX_BATCHES of them wait. A DELETE lost to a
 * crash replays its batch with the same bytes: a duplicate, never a loss.
 *
 * This holds the queue and decides when the commit runs; the Spool's `commit` writes it.
 */
import type { SpooledBatch } from './store.js';

/**
 * A commit waits at most this long for more appends and acks. Batches that arrive while the
 * spool's thread is blocked in an fsync group up by themselves; the delay also groups batches
 * that arrive a little apart. Short next to any window (seconds).
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

/** A batch waiting for its commit, and the append it answers. */
export interface QueuedBatch {
  batch: SpooledBatch;
  resolve: (seq: number) => void;
}

export interface GroupCommitDelays {
  /** Longest wait for more appends and acks (default COMMIT_DELAY_MS; 0 = end of turn). */
  commitDelayMs?: number;
  /** Longest wait of acks for a batch to share its commit (default ACK_COMMIT_DELAY_MS). */
  ackCommitDelayMs?: number;
}

export class GroupCommit {
  private queued: QueuedBatch[] = [];
  private queuedBytes = 0;
  /** Cancels the scheduled commit; set while one is scheduled. */
  private cancelCommit: (() => void) | undefined;
  /** The commit of acks that no batch took along; set while one is scheduled. */
  private ackTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly delays: GroupCommitDelays,
    /** Writes what is queued (takes it with `take`). */
    private readonly commit: () => void,
  ) {}

  /** Batches waiting for the commit. */
  get length(): number {
    return this.queued.length;
  }
  get bytes(): number {
    return this.queuedBytes;
  }
  /** The lowest queued seq. */
  get firstSeq(): number | undefined {
    return this.queued[0]?.batch.seq;
  }

  has(seq: number): boolean {
    return this.queued.some((q) => q.batch.seq === seq);
  }

  /** Queue a batch; commits at once when the queue is full, else schedules the commit. */
  add(entry: QueuedBatch): void {
    this.queued.push(entry);
    this.queuedBytes += entry.batch.body.length;
    if (this.queued.length >= COMMIT_MAX_BATCHES || this.queuedBytes >= COMMIT_MAX_BYTES)
      this.commit();
    else this.schedule();
  }

  /** Everything queued, in seq order, for the commit; no commit stays scheduled. */
  take(): QueuedBatch[] {
    this.cancel();
    const queued = this.queued;
    this.queued = [];
    this.queuedBytes = 0;
    return queued;
  }

  /** Acks wait for the next batch's commit, bounded in count and time. */
  scheduleAcks(pendingDeletes: number): void {
    if (pendingDeletes >= COMMIT_MAX_BATCHES) {
      this.schedule();
      return;
    }
    if (this.ackTimer || this.cancelCommit) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      this.commit();
    }, this.delays.ackCommitDelayMs ?? ACK_COMMIT_DELAY_MS);
    this.ackTimer.unref();
  }

  private schedule(): void {
    if (this.cancelCommit) return;
    const delay = this.delays.commitDelayMs ?? COMMIT_DELAY_MS;
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

  private cancel(): void {
    this.cancelCommit?.();
    this.cancelCommit = undefined;
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }
}
