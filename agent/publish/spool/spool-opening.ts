/**
 * Opening the spool's database, at start and when the failover retries it: open it (a corrupt
 * one is moved aside and its readable rows salvaged into a new one), read what it and the seq
 * mark say, plan the numbering (recovery.ts), store the plan's meta rows and only then apply
 * the plan. A database that cannot be opened leaves numbering to the mark alone.
 */
import { join } from 'node:path';
import type { Logger } from '../../ops/logger.js';
import type { AgeClock } from './age-clock.js';
import { causeOf } from './disk-trouble.js';
import type { DiskFailover } from './disk-failover.js';
import { mergeGap, parseGap } from './gap-note.js';
import type { MarkKeeper } from './mark-keeper.js';
import type { MemoryStore } from './memory-store.js';
import {
  planRecovery,
  type MovedSalvage,
  type Numbering,
  type RecoveryPlan,
  type SpoolCounts,
} from './recovery.js';
import { moveAside, salvage } from './salvage.js';
import { MARK_FILE, readMark, type SeqMark } from './seq-mark.js';
import type { DurableStore } from './store.js';

/** The Spool's parts an open reads and sets. */
export interface OpeningParts {
  readonly dir: string;
  readonly options: { maxBytes: number };
  readonly disk: DurableStore;
  readonly memory: MemoryStore;
  readonly numbering: Numbering;
  readonly counts: SpoolCounts;
  readonly age: AgeClock;
  readonly marks: MarkKeeper;
  readonly failover: DiskFailover;
  readonly logger: Logger;
  readonly now: () => number;
  readonly rewindListeners: ReadonlySet<(fromSeq: number) => void>;
  writeMark(change: Partial<SeqMark>): boolean;
  numberWaiting(): void;
}

type Opened = 'ok' | 'in-use' | 'failed';

export class SpoolOpening {
  /** Set once the first open attempt is over: later opens may bring back older batches. */
  private started = false;
  private unnumberedLogged = false;

  constructor(private readonly p: OpeningParts) {}

  /** The open at start; on 'in-use' nothing else was done. */
  first(): Opened {
    this.p.failover.openTried();
    const opened = this.open();
    if (opened === 'in-use') return opened;
    if (opened !== 'ok') this.numberFromMark();
    this.started = true;
    return opened;
  }

  /** The failover's retry: open again (`corrupt`: move the file aside first). */
  reopen(corrupt: boolean): void {
    if (this.open(corrupt) !== 'ok') this.numberFromMark();
  }

  /**
   * Open the database and adopt it: 'ok', 'in-use' (another process), or 'failed' (including
   * a corrupt one moved aside when a new one could not be made).
   */
  private open(knownCorrupt = false): Opened {
    const { disk, failover, counts } = this.p;
    let salvaged: MovedSalvage | undefined;
    // Two rounds at most: the file as it is, then a new one after moving a corrupt one aside.
    // Damage seen while running is moved aside without reopening the file first: quick_check
    // reads the pages, not the stored bodies, so it may pass a file whose rows cannot be read.
    for (let round = 0; round < 2; round++) {
      const result = knownCorrupt && round === 0 ? 'corrupt' : this.tryOpen();
      if (result === 'ok') return this.adopt(salvaged);
      if (result === 'in-use') return 'in-use';
      if (result !== 'corrupt' || round > 0) return 'failed';
      try {
        const movedTo = moveAside(disk.path, new Date(this.p.now()));
        counts.corruptMoved++;
        salvaged = { ...salvage(movedTo, this.p.options.maxBytes), movedTo };
      } catch (err) {
        failover.failed(err, 'move the corrupt database aside');
        return 'failed';
      }
    }
    return 'failed';
  }

  private tryOpen(): 'ok' | 'in-use' | 'corrupt' | 'failed' {
    try {
      return this.p.disk.open();
    } catch (err) {
      this.p.failover.failed(err, 'open');
      return 'failed';
    }
  }

  /**
   * Plan from what the open database says, store the plan's meta rows, then apply it. When
   * reading or storing fails (a write on a full disk) nothing was applied: the database is let
   * go and opening is retried later.
   */
  private adopt(salvaged: MovedSalvage | undefined): 'ok' | 'failed' {
    const { disk, failover } = this.p;
    try {
      const { plan, depth, ageClock } = this.plan(salvaged);
      disk.setMeta(plan.meta, plan.next);
      this.apply(plan, depth, ageClock);
      return 'ok';
    } catch (err) {
      failover.letGo(false);
      failover.failed(err, 'open');
      return 'failed';
    }
  }

  /** Read the database and the mark (the reads throw) and plan the numbering. */
  private plan(salvaged: MovedSalvage | undefined): {
    plan: RecoveryPlan;
    depth: number;
    ageClock: unknown;
  } {
    const { disk, logger } = this.p;
    const meta = (key: string) => {
      const v = disk.readMeta(key);
      return typeof v === 'number' ? v : 0;
    };
    const fresh =
      disk.readMeta('last_seq') === undefined && disk.readMeta('opened_at') === undefined;
    const read = readMark(this.p.dir);
    if (read.state === 'corrupt' || read.state === 'unreadable')
      logger.warn(
        {
          path: join(this.p.dir, MARK_FILE),
          ...(read.state === 'unreadable' ? causeOf(read.error) : { code: 'CORRUPT' }),
        },
        'spool seq mark unreadable; the database alone gives the numbering',
      );
    const ackedNow = disk.pendingAckSeqs();
    const salvagedSeqs = salvaged ? disk.importRows(salvaged.rows) : [];
    const totals = disk.load();
    const plan = planRecovery({
      path: disk.path,
      now: this.p.now(),
      fresh,
      meta: {
        lastSeq: meta('last_seq'),
        dropped: meta('dropped'),
        setAside: meta('set_aside'),
        deadLettersDropped: meta('dead_letters_dropped'),
        corruptMoved: meta('corrupt_moved'),
        pendingGap: parseGap(disk.readMeta('pending_gap')),
      },
      maxSeq: totals.maxSeq,
      mark: read.state === 'ok' ? read.mark : this.p.marks.mark,
      markRead: read.state === 'ok',
      ackedNow,
      salvaged,
      salvagedSeqs,
      numbering: { ...this.p.numbering },
      memoryFirst: this.p.memory.first()?.seq,
      counts: { ...this.p.counts },
    });
    return { plan, depth: totals.depth, ageClock: disk.readMeta('age_clock') };
  }

  /** The plan's meta rows are stored: take its numbering, announce it, move memory batches in. */
  private apply(plan: RecoveryPlan, depth: number, ageClock: unknown): void {
    const { disk, memory, numbering, counts, marks, failover, logger } = this.p;
    marks.mark = plan.mark;
    Object.assign(numbering, plan.numbering);
    numbering.numberedFrom = undefined;
    Object.assign(counts, plan.counts);
    this.p.age.resume(ageClock);
    for (const line of plan.logs) logger[line.level](line.fields, line.msg);
    disk.forgetRecent();
    if (this.started && depth > 0) {
      const oldest = disk.oldest();
      if (oldest) for (const listener of this.p.rewindListeners) listener(oldest.seq);
    }
    failover.opened();
    logger.info({ path: disk.path, depth, lastSeq: numbering.lastSeq }, 'spool opened');
    marks.open();
    const first = memory.first();
    if (!first) {
      failover.allOnDisk();
      // The database holds every revealed seq: the mark drops its revealed part.
      this.p.writeMark({ revealed: 0, ceiling: Math.max(plan.mark.ceiling, numbering.lastSeq) });
    } else {
      // The gap lies just before the first memory batch: that batch carries the note, unless
      // it was published already (its bytes must not change).
      if (counts.pendingGap && first.seq > marks.mark.revealed) {
        first.gapBefore = first.gapBefore
          ? mergeGap(counts.pendingGap, first.gapBefore)
          : counts.pendingGap;
        counts.pendingGap = undefined;
      }
      // Moves the memory batches into the database (or keeps them there if the write fails).
      failover.ok = false;
      failover.moveBack(true);
    }
    this.p.numberWaiting();
  }

  /** The database cannot be opened: take the numbering from the mark, if it can be read. */
  private numberFromMark(): void {
    const { numbering, counts, logger } = this.p;
    if (numbering.numbered) return;
    const read = readMark(this.p.dir);
    if (read.state !== 'ok') {
      if (this.unnumberedLogged) return;
      this.unnumberedLogged = true;
      logger.error(
        {
          path: this.p.disk.path,
          mark: read.state,
          ...(read.state === 'unreadable' ? causeOf(read.error) : {}),
        },
        'SPOOL UNAVAILABLE and the seq mark cannot be read: batches wait in memory, unnumbered and unpublished, until the state directory can be read (seq numbering never restarts)',
      );
      return;
    }
    this.p.marks.mark = read.mark;
    // Everything up to the ceiling may have been assigned (and revealed): continue after it.
    numbering.lastSeq = Math.max(read.mark.ceiling, read.mark.revealed);
    numbering.numberedFrom = numbering.lastSeq + 1;
    numbering.storedSeq = read.mark.stored;
    counts.dropped = Math.max(counts.dropped, read.mark.dropped);
    numbering.numbered = true;
    this.p.marks.open();
    logger.warn(
      { path: this.p.disk.path, continuesAfter: numbering.lastSeq },
      'spool database unavailable: numbering continues after the seq mark; batches are kept in memory and published on the seqs the mark reserves',
    );
    this.p.numberWaiting();
  }
}
