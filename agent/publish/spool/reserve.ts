/**
 * How far ahead the spool reserves seqs (the seq mark's ceiling, spool.ts): far enough that
 * a card turned read-only leaves minutes of telemetry publishable on seqs already durable.
 * Kept apart from spool.ts so the main thread can size it without loading SQLite.
 */

/** The least number of seqs the mark's ceiling is written ahead (spool.reserveSeqs). */
export const CEILING_BLOCK = 64;
/** How long the reserved seqs should last at the configured rate (reserveSeqsFor). */
export const RESERVE_MS = 10 * 60_000;

/** Seqs to reserve ahead for one batch per window of `windowMs`: RESERVE_MS of them. */
export function reserveSeqsFor(windowMs: number): number {
  return Math.max(CEILING_BLOCK, Math.ceil(RESERVE_MS / Math.max(1, windowMs)));
}
