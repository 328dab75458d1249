/**
 * What the publishers (telemetry, Sparkplug) use of a spool. Two implementations: the Spool
 * itself (spool.ts, synchronous, in the calling thread: tests and tools) and SpoolClient
 * (spool-client.ts), which runs a Spool in a worker thread so that no commit, fsync or read
 * of the disk ever runs on the main thread. The calls are the same; with the client, `peek`
 * answers from what the worker has sent so far and asks for more, and `onCommitted` fires
 * again when more arrives, so a caller that pumps on `onCommitted` needs no change.
 */
import type {
  DeadLetterChange,
  DeadLetterList,
  DeadLetterSelection,
  SpoolFigures,
} from './operator.js';
import type { SpoolStats } from './spool-options.js';
import type { SpooledBatch } from './store.js';

export interface SpoolPort {
  readonly path: string;
  /** Store a batch; resolves with its seq once it is durable (see Spool.append). */
  append(body: Uint8Array, createdAt: number): Promise<number>;
  /** Commit what is queued now instead of after the group-commit delay. */
  commit(): void;
  /** Up to `limit` publishable batches with seq > afterSeq, in seq order (possibly fewer for now). */
  peek(afterSeq: number, limit: number): SpooledBatch[];
  /** True while more batches may be on their way to `peek` (a read in progress). */
  readonly reading: boolean;
  /** The broker has the batch: it leaves the spool. */
  ack(seq: number): void;
  /** The broker refused it for good: move it to the dead letters; false when it is not waiting. */
  setAside(seq: number, reason: string): boolean;
  /** Keep freshly written bodies in memory while connected (no read-back). */
  retainRecent(on: boolean): void;
  stats(): SpoolStats;
  /** Called when batches may have become publishable. */
  onCommitted(listener: () => void): () => void;
  /** Called when batches older than ones handed out became publishable, with the lowest seq. */
  onRewind(listener: (fromSeq: number) => void): () => void;
  /** The operator's view (`edge-agent spool status`), read where the spool runs. */
  figures(): Promise<SpoolFigures>;
  /** The dead letters, oldest first, up to `limit` rows. */
  listDeadLetters(limit: number): Promise<DeadLetterList>;
  /**
   * The operator's requeue (back into the publish queue under their own seqs, published
   * without a restart: onRewind fires) or drop (deleted), both counted in meta.
   */
  changeDeadLetters(
    kind: 'requeue' | 'drop',
    selection: DeadLetterSelection,
  ): Promise<DeadLetterChange>;
}
