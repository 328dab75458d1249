/**
 * Seq recovery when the spool's database opens: a pure function from what the database, the
 * seq mark and a salvage say (and what this process numbered meanwhile) to the numbering to
 * continue with, the counters, the drops to note and the lines to log. The Spool writes the
 * plan's meta rows and applies the rest only once they are stored, so a failed open (a full
 * disk) changes nothing.
 *
 * The rule it keeps: numbering continues after the highest seq the database or the mark says
 * may have been assigned, never below; seqs that may have been published but are gone are
 * counted as dropped and noted for the next batch, so a subscriber's gap is explained.
 */
import type { Salvage } from './salvage.js';
import type { SeqMark } from './seq-mark.js';
import { mergeGap, type GapNote } from './gap-note.js';
import type { MetaEntry } from './store.js';

/** The spool's counters (persisted in meta rows and, in part, the mark). */
export interface SpoolCounts {
  /** Batches dropped, ever. */
  dropped: number;
  /** The latest drop. */
  lastDrop?: GapNote;
  /** Drops not yet announced by a batch: the next appended batch carries this note. */
  pendingGap?: GapNote;
  /** Batches moved to the dead letters, ever. */
  setAside: number;
  /** Dead letters dropped to keep them within their bound, ever. */
  deadLettersDropped: number;
  /** Corrupt databases moved aside, ever. */
  corruptMoved: number;
}

/** Where seq numbering stands. */
export interface Numbering {
  /** False until the database or the mark told the highest seq ever assigned. */
  numbered: boolean;
  /** The highest seq assigned. */
  lastSeq: number;
  /** The highest seq the database records (last_seq meta). */
  storedSeq: number;
  /** The first seq numbered from the mark while the database was unavailable (this run). */
  numberedFrom?: number;
}

/** A salvage of a corrupt database that was moved aside. */
export type MovedSalvage = Salvage & { movedTo: string };

export interface RecoveryInput {
  /** The database file (for the log lines). */
  path: string;
  /** Wall-clock now (meta opened_at). */
  now: number;
  /** The database had neither last_seq nor opened_at: created just now. */
  fresh: boolean;
  /** Its meta rows (0 or undefined where absent). */
  meta: {
    lastSeq: number;
    dropped: number;
    setAside: number;
    deadLettersDropped: number;
    corruptMoved: number;
    pendingGap?: GapNote;
  };
  /** The highest seq among its rows, null when it has none. */
  maxSeq: number | null;
  /** The mark as read now, or, when it could not be read, as this process last knew it. */
  mark: SeqMark;
  /** The mark file was read now (false: missing, corrupt or unreadable). */
  markRead: boolean;
  /** Seqs acknowledged this run whose DELETE was pending: delivered, whatever the file lost. */
  ackedNow: readonly number[];
  /** The salvage imported into this database, when a corrupt one was moved aside. */
  salvaged?: MovedSalvage;
  /** The seqs of the salvaged rows imported. */
  salvagedSeqs: readonly number[];
  /** This process's numbering so far (numbered from the mark while the disk was unavailable). */
  numbering: Numbering;
  /** The lowest seq held in memory by this process (assigned, not in the database). */
  memoryFirst?: number;
  counts: SpoolCounts;
}

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  msg: string;
}

export interface RecoveryPlan {
  numbering: Numbering;
  counts: SpoolCounts;
  mark: SeqMark;
  /** Meta rows to store in one transaction, with the next seq (for unsent_from). */
  meta: MetaEntry[];
  next: number;
  /** Lines to log once the meta rows are stored. */
  logs: LogLine[];
}

/**
 * The note a start makes for the seqs a mark reserved above the database's last (`dbLast`):
 * any of them may have been published from memory before the stop, so none is handed out
 * again. `count` leaves out those the mark records as settled (published, or dropped and
 * counted) when it was written after the database's last commit.
 */
export function reservedNote(mark: SeqMark, dbLast: number): GapNote | undefined {
  const top = Math.max(mark.ceiling, mark.revealed);
  if (top <= dbLast) return undefined;
  const settled = mark.stored === dbLast ? mark.revealedCounted : 0;
  const count = Math.max(0, top - dbLast - settled);
  return { count, firstSeq: dbLast + 1, lastSeq: top, reason: 'reserved' };
}

/**
 * Read the database's state against the mark: continue numbering after the highest seq either
 * knows, and count the seqs that may have been revealed but are gone.
 */
export function planRecovery(input: RecoveryInput): RecoveryPlan {
  const { mark, meta, salvaged, numbering: own } = input;
  const counts: SpoolCounts = { ...input.counts };
  const dbLast = Math.max(meta.lastSeq, input.maxSeq ?? 0, salvaged?.lastSeq ?? 0);
  // Seqs this process assigned that are not in the database (memory batches) start here.
  const ownFirst = input.memoryFirst ?? own.lastSeq + 1;
  const gaps: GapNote[] = [];
  const logs: LogLine[] = [];

  // A database that lost committed transactions (a damaged WAL is cut at the first bad
  // frame) is behind what the mark saw it store: treat its tail as lost too.
  const rolledBack = !input.fresh && salvaged === undefined && mark.stored > dbLast;
  const lost = salvaged !== undefined || (input.fresh && mark.ceiling > 0) || rolledBack;
  if (lost) {
    // The previous database is gone: seqs up to the mark's ceiling may have been assigned,
    // and of those, every one from the lowest unsettled seq on that is not read back is lost.
    const ceiling = Math.max(mark.ceiling, mark.revealed);
    const to = own.numbered ? Math.min(ceiling, ownFirst - 1) : ceiling;
    const from = rolledBack
      ? dbLast + 1
      : (salvaged?.unsentFrom ??
        (mark.unsentFrom > 0
          ? mark.unsentFrom
          : Math.min(mark.stored + 1, input.salvagedSeqs[0] ?? Infinity)));
    const kept = new Set([
      ...input.salvagedSeqs,
      ...(salvaged?.deadLetterSeqs ?? []),
      ...input.ackedNow,
    ]);
    const note = lostBetween(from, to, kept);
    if (note) gaps.push(note);
    if (salvaged?.pendingGap) counts.pendingGap = mergeGap(counts.pendingGap, salvaged.pendingGap);
    logs.push({
      level: 'error',
      fields: {
        path: input.path,
        movedTo: salvaged?.movedTo,
        salvaged: input.salvagedSeqs.length,
        lost: note?.count ?? 0,
        firstLost: note?.firstSeq,
        lastLost: note?.lastSeq,
        continuesAfter: Math.max(dbLast, to, own.numbered ? own.lastSeq : 0),
      },
      msg: salvaged
        ? 'SPOOL DATABASE CORRUPT: moved aside for inspection and replaced; readable batches were salvaged and numbering continues. Check the storage (SD card) and delete the moved file when done'
        : rolledBack
          ? 'SPOOL DATABASE ROLLED BACK (behind the seq mark: damaged or replaced write-ahead log?): numbering continues after the mark; the lost batches are counted. Check the storage (SD card)'
          : 'SPOOL DATABASE MISSING OR EMPTY while the seq mark shows earlier batches: numbering continues after the mark; unsent batches it held are lost',
    });
  } else if (own.numberedFrom !== undefined) {
    // Numbered from the mark while the database was unavailable: the seqs between the
    // database's last and our first may have been used by an earlier run, or never.
    if (own.numberedFrom - 1 > dbLast)
      gaps.push({
        count: own.numberedFrom - 1 - dbLast,
        firstSeq: dbLast + 1,
        lastSeq: own.numberedFrom - 1,
        reason: 'skipped-while-unavailable',
      });
  } else if (!own.numbered && reservedNote(mark, dbLast)) {
    // The last stop left seqs reserved above the database's last: any of them may have been
    // published from memory (the disk failed, or the process died before a clean stop).
    const note = reservedNote(mark, dbLast)!;
    if (note.count > 0) gaps.push(note);
    logs.push({
      level: 'warn',
      fields: { ...note },
      msg:
        note.count > 0
          ? 'spool: the last stop left seqs reserved above the last stored one (an unclean stop, or a disk that could not be written): numbering continues after them, and they are counted as dropped (reason reserved); seqs are not reused'
          : 'spool: every seq reserved above the last stored one was published before the last stop; numbering continues after them',
    });
  } else if (input.markRead && mark.ceiling < dbLast) {
    logs.push({
      level: 'warn',
      fields: { markCeiling: mark.ceiling, dbLastSeq: dbLast },
      msg: 'spool seq mark is behind the database (restored or replaced?); rewriting it',
    });
  }

  counts.dropped = Math.max(counts.dropped, meta.dropped, salvaged?.dropped ?? 0, mark.dropped);
  counts.setAside = Math.max(counts.setAside, meta.setAside, salvaged?.setAside ?? 0);
  counts.deadLettersDropped = Math.max(counts.deadLettersDropped, meta.deadLettersDropped);
  counts.corruptMoved = Math.max(counts.corruptMoved, meta.corruptMoved + (salvaged ? 1 : 0));
  if (meta.pendingGap) counts.pendingGap = mergeGap(counts.pendingGap, meta.pendingGap);

  // The database records every seq up to here; our memory batches follow when moved.
  // A start continues after the mark's ceiling too: seqs up to it may have been handed out.
  const markTop = own.numbered ? 0 : Math.max(mark.ceiling, mark.revealed);
  const durableTop = Math.max(dbLast, 0, markTop, ...gaps.map((g) => g.lastSeq));
  for (const g of gaps) {
    counts.dropped += g.count;
    counts.lastDrop = g;
    counts.pendingGap = mergeGap(counts.pendingGap, g);
  }
  return {
    numbering: {
      numbered: true,
      lastSeq: Math.max(own.numbered ? own.lastSeq : 0, durableTop),
      storedSeq: durableTop,
    },
    counts,
    mark,
    meta: [
      ['last_seq', durableTop],
      ['dropped', counts.dropped],
      ['corrupt_moved', counts.corruptMoved],
      ['opened_at', input.now],
      ['pending_gap', counts.pendingGap ? JSON.stringify(counts.pendingGap) : 0],
    ],
    next: durableTop + 1,
    logs,
  };
}

/**
 * What a stop logs when batches exist only in memory (the disk still fails) or reserved seqs
 * stay above the stored one: they are lost, never announced as kept, and `next` is the note the
 * next start will make for this stop (reservedNote on the mark as it is on disk), so the two
 * agree. Undefined when there is nothing to say.
 */
export function lostAtStop(stop: {
  memorySeqs: readonly number[];
  unnumbered: number;
  next: GapNote | undefined;
  dropped: number;
}): LogLine | undefined {
  const { memorySeqs: seqs, next } = stop;
  const lost = seqs.length + stop.unnumbered;
  if (lost === 0 && !(next && next.count > 0)) return undefined;
  const skip = next
    ? `the next start skips seqs ${next.firstSeq}–${next.lastSeq} and counts ${next.count} of them as dropped (reason ${next.reason}: those that were published are real batches, the others are lost or were never used)`
    : 'they are counted as dropped';
  return {
    level: 'error',
    fields: {
      lost,
      ...(seqs.length > 0 ? { lostFirstSeq: seqs[0], lostLastSeq: seqs[seqs.length - 1] } : {}),
      unnumbered: stop.unnumbered,
      ...(next ?? { count: 0 }),
      dropped: stop.dropped + (next?.count ?? 0),
    },
    msg: `SPOOL: ${lost} batches held in memory could not be written to disk and are lost at this stop; ${skip}; seqs are not reused`,
  };
}

/**
 * The note for the seqs in [from, to] that are not in `kept`: how many, the lowest and the
 * highest of them; undefined when there are none. Steps over kept seqs only (bounded by them).
 */
function lostBetween(from: number, to: number, kept: ReadonlySet<number>): GapNote | undefined {
  let inside = 0;
  for (const seq of kept) if (seq >= from && seq <= to) inside++;
  const count = to - from + 1 - inside;
  if (count <= 0) return undefined;
  let firstSeq = from;
  while (kept.has(firstSeq)) firstSeq++;
  let lastSeq = to;
  while (kept.has(lastSeq)) lastSeq--;
  return { count, firstSeq, lastSeq, reason: 'database-lost' };
}
