/**
 * Where the spool keeps its rows: the batches waiting for the broker's acknowledgement and
 * the dead letters the broker refused. Two implementations: SQLite (sqlite-store.ts, durable,
 * the normal case) and memory (memory-store.ts, while the disk fails). The Spool assigns seqs,
 * enforces the bounds, counts drops and decides which store a batch goes to; a store keeps
 * rows and promises (test/agent/publish/spool/store-suite.ts checks both):
 *
 * - rows are read back in seq order, with the body, createdAt and gap note they were written
 *   with; `write` stores all of its batches or none of them (and then returns false);
 * - an acknowledged row is never read again and no longer counts in `depth` or `bytes`
 *   (a store may delete it later: `heldBytes` still counts it until then);
 * - a dropped row is gone, and what it carried (its bytes and gap note) is returned so the
 *   spool can count it; an acknowledged row is never reported as dropped;
 * - a row set aside is never read again as a batch; it is listed among the dead letters,
 *   oldest first, until dropped.
 *
 * A store that cannot reach its storage reports it (the SQLite store through the callback it
 * is given) and returns what it did: false, undefined, or the rows it could read.
 */
import type { Logger } from '../../ops/logger.js';
import type { GapNote } from './gap-note.js';

export interface SpooledBatch {
  seq: number;
  createdAt: number;
  body: Buffer;
  /** Seqs dropped since the previous note (lower than this seq). */
  gapBefore?: GapNote;
}

/** A batch the broker refused for good, kept for inspection (never published again). */
export interface DeadLetter extends SpooledBatch {
  reason: string;
  setAsideAt: number;
}

/** What a dropped row carried. */
export interface DroppedRow {
  bytes: number;
  gapBefore?: GapNote;
}

export interface BatchStore {
  /** Unacknowledged batches held. */
  readonly depth: number;
  /** Their payload bytes. */
  readonly bytes: number;
  /** Payload bytes held, acknowledged rows not yet deleted included (what the bounds count). */
  readonly heldBytes: number;
  readonly deadLetterCount: number;
  readonly deadLetterBytes: number;
  /** Store the batches (each seq new to the store), all or none. */
  write(batches: readonly SpooledBatch[]): boolean;
  /** Up to `limit` unacknowledged batches with seq > afterSeq, in seq order. */
  read(afterSeq: number, limit: number): SpooledBatch[];
  /** The row with the lowest seq (acknowledged ones not yet deleted included). */
  oldest(): { seq: number; createdAt: number } | undefined;
  /** The broker has this batch: never read it again. False for a seq the store does not hold. */
  ack(seq: number): boolean;
  /** Remove a row; 'acked' when it was acknowledged already (not a drop), undefined when absent. */
  drop(seq: number): DroppedRow | 'acked' | undefined;
  /**
   * Move an unacknowledged batch to the dead letters. Undefined when the store does not hold
   * it; 'failed' when the storage could not do it (nothing changed).
   */
  setAside(seq: number, reason: string, at: number): DeadLetter | 'failed' | undefined;
  /** The dead letters, oldest first. */
  deadLetters(): DeadLetter[];
  /** The lowest seq among the dead letters. */
  oldestDeadLetter(): number | undefined;
  /** Remove a dead letter; false when the storage failed. */
  dropDeadLetter(seq: number): boolean;
}

/** A meta row written in the same transaction as the rows. */
export type MetaEntry = readonly [key: string, value: number | string];

/** A row read back from a damaged database, to import into a new one. */
export interface ImportedRow {
  seq: number;
  createdAt: number;
  body: Buffer;
  gap: string | null;
}

/** What opening a durable store found: 'in-use' (another process holds it), 'corrupt'. */
export type OpenResult = 'ok' | 'in-use' | 'corrupt';

export interface DurableStoreOptions {
  synchronous?: 'full' | 'normal';
  /** Store bodies deflated where that makes them smaller (default true). */
  deflate?: boolean;
  logger: Logger;
  /** A storage failure during a BatchStore method (the method then returns what it did). */
  failed: (err: unknown, op: string) => void;
}

/**
 * The store the spool keeps its rows in normally, in its state directory: SQLite
 * (sqlite-store.ts) in the agent. Besides the BatchStore rows it keeps meta values, defers
 * the DELETE of acknowledged rows to the next `write` (`pendingDeletes`) and may keep a copy
 * of rows just written (`retainRecent`). The methods used while opening (`open`, `load`,
 * `readMeta`, `setMeta`, `importRows`) throw; the others report through `failed`.
 */
export interface DurableStore extends BatchStore {
  readonly path: string;
  readonly isOpen: boolean;
  /** Acknowledged rows whose DELETE waits for the next write. */
  readonly pendingDeletes: number;
  open(): OpenResult;
  /** Count the rows of the open store; its batch count, bytes and highest seq. */
  load(): { depth: number; bytes: number; maxSeq: number | null };
  readMeta(key: string): unknown;
  /** Meta rows in one transaction; `next` is the next seq (for unsent_from). */
  setMeta(entries: readonly MetaEntry[], next: number): void;
  /** Acknowledged seqs whose DELETE is pending. */
  pendingAckSeqs(): number[];
  /** Insert salvaged rows, except those acknowledged meanwhile; the seqs inserted. */
  importRows(rows: readonly ImportedRow[]): number[];
  /** The pending DELETEs, the batches and `meta` in one transaction; false when it failed. */
  write(batches: readonly SpooledBatch[], meta?: readonly MetaEntry[]): boolean;
  setAside(
    seq: number,
    reason: string,
    at: number,
    meta?: readonly MetaEntry[],
  ): DeadLetter | 'failed' | undefined;
  /** The copy of a row kept by retainRecent, if any. */
  cached(seq: number): SpooledBatch | undefined;
  /** Write one meta row now. */
  recordMeta(key: string, value: number | string): void;
  retainRecent(on: boolean): void;
  forgetRecent(): void;
  syncMode(): 'full' | 'normal' | 'off' | 'extra' | undefined;
  /**
   * The operator's requeue (these dead letters back among the batches under their own seqs)
   * or drop (deleted), counted in meta; the seqs changed ('failed': nothing changed).
   */
  changeDeadLetters(kind: 'requeue' | 'drop', seqs: readonly number[]): number[] | 'failed';
  /** Close whatever state it is in; `forget` when the file is going away (moved aside). */
  release(forget: boolean): void;
  /** Close; throws when the storage reports a failure. */
  close(): void;
}

/** Makes the spool's durable store for a state directory (the agent: SqliteStore). */
export type OpenDurableStore = (dir: string, options: DurableStoreOptions) => DurableStore;
