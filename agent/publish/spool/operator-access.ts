/**
 * The running Spool's answers to an operator (`edge-agent spool …` on a live agent, through
 * the control socket and the spool thread): its figures, the dead letters listed, and their
 * requeue or drop. A requeued batch is older than batches already handed out, so the
 * publisher is rewound to it (onRewind) and pumped (onCommitted): it goes out under its own
 * seq without a restart.
 */
import type { Logger } from '../../ops/logger.js';
import type { DeadLetters } from './dead-letters.js';
import type { GapNote } from './gap-note.js';
import {
  deadLetterRow,
  type DeadLetterChange,
  type DeadLetterList,
  type DeadLetterSelection,
  type SpoolFigures,
} from './operator.js';
import type { Retention } from './retention.js';
import { DISCARDED_META, REQUEUED_META } from './sqlite-dead-letters.js';
import type { SpoolStats } from './spool-options.js';
import type { DurableStore } from './store.js';

export interface OperatorParts {
  readonly path: string;
  readonly disk: DurableStore;
  readonly dead: DeadLetters;
  readonly retention: Retention;
  readonly counts: { pendingGap?: GapNote };
  readonly rewindListeners: ReadonlySet<(fromSeq: number) => void>;
  readonly logger: Logger;
  notifyCommitted(): void;
}

export class OperatorAccess {
  constructor(private readonly p: OperatorParts) {}

  figures(stats: SpoolStats): SpoolFigures {
    const f: SpoolFigures = {
      path: this.p.path,
      depth: stats.depth,
      bytes: stats.bytes,
      lastSeq: stats.lastSeq,
      dropped: stats.dropped,
      setAside: stats.setAside,
      deadLetters: stats.deadLetters,
      deadLetterBytes: stats.deadLetterBytes,
      deadLettersDropped: stats.deadLettersDropped,
      requeued: this.meta(REQUEUED_META),
      discarded: this.meta(DISCARDED_META),
      corruptMovedAside: stats.corruptMovedAside,
    };
    // Acknowledged rows wait for their DELETE: with nothing unacknowledged, none is oldest.
    const oldest = stats.depth > 0 ? this.p.retention.oldest() : undefined;
    if (oldest && oldest.seq > 0) {
      f.oldestSeq = oldest.seq;
      f.oldestAgeMs = stats.oldestAgeMs;
    }
    const note = this.p.counts.pendingGap;
    if (note) f.pendingNote = { ...note };
    return f;
  }

  list(limit: number): DeadLetterList {
    const all = this.p.dead.list();
    return { rows: all.slice(0, Math.max(0, limit)).map(deadLetterRow), total: all.length };
  }

  change(kind: 'requeue' | 'drop', selection: DeadLetterSelection): DeadLetterChange {
    const change = this.p.dead.change(kind, selection);
    if (change.ok && change.seqs.length > 0) {
      const seqs = change.seqs.length > 20 ? [...change.seqs.slice(0, 20), '…'] : change.seqs;
      this.p.logger.info(
        { count: change.seqs.length, seqs: seqs.join(', ') },
        kind === 'requeue'
          ? `operator requeued ${change.seqs.length} dead letters: published again under their own seqs`
          : `operator deleted ${change.seqs.length} dead letters`,
      );
    }
    if (kind === 'requeue' && change.ok && change.seqs.length > 0) {
      // Requeued batches count against the bounds like any other (they keep their createdAt).
      this.p.retention.enforceBounds();
      for (const listener of this.p.rewindListeners) listener(change.seqs[0]!);
      this.p.notifyCommitted();
    }
    return change;
  }

  /** An operator's counter from meta; 0 when the disk cannot say (its state shows in health). */
  private meta(key: string): number {
    try {
      const v = this.p.disk.isOpen ? this.p.disk.readMeta(key) : undefined;
      return typeof v === 'number' ? v : 0;
    } catch {
      return 0;
    }
  }
}
