/**
 * The spool's hold on its seq mark file (seq-mark.ts): `mark` is always what the next start
 * will read (as last written, or read), because it changes only when a write succeeded; the
 * Spool reveals nothing on the strength of a mark that was not written. Failures are logged
 * through DiskTrouble (once, then rate-limited) and retried at most every `retryMs`.
 */
import { join } from 'node:path';
import type { Logger } from '../../ops/logger.js';
import { DiskTrouble } from './disk-trouble.js';
import { EMPTY_MARK, MARK_FILE, SeqMarkFile, type SeqMark } from './seq-mark.js';

const TROUBLE = 'batches held in memory are published only on seqs already reserved';

/** What the spool's state says the mark holds, besides its ceiling. */
export interface MarkState {
  dropped: number;
  /** The database's last seq. */
  stored: number;
  /** Seqs above `stored` settled from memory. */
  revealedCounted: number;
  /** The lowest seq not settled yet. */
  unsentFrom: number;
  /** The highest seq assigned: the ceiling never falls below it. */
  lastSeq: number;
}

export class MarkKeeper {
  /** The mark as last written (or read): what the next start will see. */
  mark: SeqMark = { ...EMPTY_MARK };
  /** False while the mark file cannot be written. */
  ok = false;
  private file: SeqMarkFile | undefined;
  private lastTry = 0;
  private readonly trouble: DiskTrouble;
  private readonly path: string;

  constructor(
    private readonly dir: string,
    logger: Logger,
    private readonly mono: () => number,
    private readonly retryMs: number,
    private readonly state: () => MarkState,
  ) {
    this.trouble = new DiskTrouble(logger, 'spool seq mark', mono);
    this.path = join(dir, MARK_FILE);
  }

  /** Open the file for writing (once); a failure is logged and retried by the next write. */
  open(): void {
    if (this.file) return;
    try {
      this.file = SeqMarkFile.open(this.dir);
    } catch (err) {
      this.ok = false;
      this.trouble.failed(err, { path: this.path }, `SPOOL SEQ MARK cannot be opened: ${TROUBLE}`);
    }
  }

  /**
   * Write the mark as the spool's state says, with `change` applied (fsynced); true when it is
   * on disk. `now` skips the retry pause. On failure `mark` stays what was last written.
   */
  update(change: Partial<SeqMark>, now = false): boolean {
    if (now) this.lastTry = 0;
    if (!this.file) {
      if (this.mono() - this.lastTry < this.retryMs && this.lastTry > 0) return false;
      this.lastTry = this.mono();
      this.open();
      if (!this.file) return false;
    }
    const { lastSeq, ...state } = this.state();
    const next: SeqMark = { ...this.mark, ...state, ...change };
    next.ceiling = Math.max(next.ceiling, next.revealed, lastSeq);
    try {
      this.file.write(next);
      this.mark = next;
      this.ok = true;
      this.trouble.recovered({ path: this.path }, 'spool seq mark writable again');
      return true;
    } catch (err) {
      this.ok = false;
      this.trouble.failed(err, { path: this.path }, `SPOOL SEQ MARK cannot be written: ${TROUBLE}`);
      return false;
    }
  }

  close(): void {
    this.file?.close();
    this.file = undefined;
  }
}
