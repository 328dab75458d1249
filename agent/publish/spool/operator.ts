/**
 * What an operator reads and changes in a spool (`edge-agent spool …`): its figures, the dead
 * letters, and putting dead letters back (requeue) or deleting them (drop). The same shapes
 * whether the command runs on a stopped agent's file (agent/commands/spool.ts) or in the
 * running agent's spool thread (SpoolPort, answered over the control socket).
 */
import type { GapNote } from './gap-note.js';

/** What `spool status` reports (also its --json output). */
export interface SpoolFigures {
  path: string;
  /** Batches waiting to be published, and their payload bytes. */
  depth: number;
  bytes: number;
  oldestSeq?: number;
  /** Now less the oldest batch's createdAt. */
  oldestAgeMs?: number;
  lastSeq: number;
  dropped: number;
  /** The note the next published batch carries (drops not yet announced). */
  pendingNote?: GapNote;
  setAside: number;
  deadLetters: number;
  deadLetterBytes: number;
  deadLettersDropped: number;
  requeued: number;
  discarded: number;
  corruptMovedAside: number;
}

/** One dead letter as listed (its body stays in the spool). */
export interface DeadLetterRow {
  seq: number;
  bytes: number;
  reason: string;
  /** ISO 8601, UTC. */
  setAsideAt: string;
  createdAt: string;
}

/** Rows listed per request at most: an answer stays bounded whatever the spool holds. */
export const DEAD_LETTER_LIST_MAX = 1000;

export interface DeadLetterList {
  rows: DeadLetterRow[];
  /** Dead letters in all (more than `rows` when the list was cut at its bound). */
  total: number;
}

/** Which dead letters a requeue or drop is about: the given seqs, or every one. */
export type DeadLetterSelection = { seqs: number[] } | { all: true };

/**
 * What a requeue or drop did: the seqs changed, or nothing when a given seq is not a dead
 * letter (`missing`, with the dead letters there are, so the operator sees what to ask for).
 */
export type DeadLetterChange =
  | { ok: true; seqs: number[] }
  | { ok: false; missing: number[]; deadLetters: number[]; reason?: string };

/** The operator's message for a change refused because of seqs that are not dead letters. */
export function missingMessage(change: Extract<DeadLetterChange, { ok: false }>): string {
  if (change.reason) return change.reason;
  const { missing, deadLetters } = change;
  const one = missing.length === 1;
  const shown = deadLetters.length > 20 ? [...deadLetters.slice(0, 20), '…'] : deadLetters;
  return `${one ? 'seq' : 'seqs'} ${missing.join(', ')} ${one ? 'is not a dead letter' : 'are not dead letters'} (dead letters: ${deadLetters.length > 0 ? shown.join(', ') : 'none'}); nothing changed`;
}

/** A dead letter's row as listed. */
export function deadLetterRow(d: {
  seq: number;
  body: Uint8Array;
  reason: string;
  setAsideAt: number;
  createdAt: number;
}): DeadLetterRow {
  return {
    seq: d.seq,
    bytes: d.body.length,
    reason: d.reason,
    setAsideAt: new Date(d.setAsideAt).toISOString(),
    createdAt: new Date(d.createdAt).toISOString(),
  };
}
