/**
 * The note a batch carries of the seqs the spool dropped before it (`dropped` in the
 * telemetry header, docs/payload.md), kept in the spool as JSON text.
 */
import type { DroppedNote } from '../payload.js';

/** Seqs dropped before a batch: how many, their range, why (reasons comma-separated). */
export type GapNote = DroppedNote;

/** A stored gap note, or undefined for none or an unreadable one. */
export function parseGap(value: unknown): GapNote | undefined {
  if (typeof value !== 'string' || value.length === 0) return undefined;
  try {
    const g = JSON.parse(value) as Partial<GapNote>;
    if (
      typeof g.count === 'number' &&
      typeof g.firstSeq === 'number' &&
      typeof g.lastSeq === 'number' &&
      typeof g.reason === 'string'
    )
      return { count: g.count, firstSeq: g.firstSeq, lastSeq: g.lastSeq, reason: g.reason };
  } catch {
    // Not a note: nothing to carry.
  }
  return undefined;
}

/** One note for two drops: counts add up, the range spans both, the reasons are listed. */
export function mergeGap(a: GapNote | undefined, b: GapNote): GapNote {
  if (!a) return { ...b };
  const reasons = new Set([...a.reason.split(','), ...b.reason.split(',')]);
  return {
    count: a.count + b.count,
    firstSeq: Math.min(a.firstSeq, b.firstSeq),
    lastSeq: Math.max(a.lastSeq, b.lastSeq),
    reason: [...reasons].join(','),
  };
}
