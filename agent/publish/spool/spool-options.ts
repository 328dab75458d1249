/**
 * The spool's options (the config's `spool` section, as the agent passes them) and the
 * figures it reports (the health topic's `spool`). Kept apart from spool.ts so that readers
 * of the figures need not load SQLite.
 */
import type { AgeClock } from './age-clock.js';
import type { DiskFailover } from './disk-failover.js';
import type { GapNote } from './gap-note.js';
import type { GroupCommit } from './group-commit.js';
import type { MarkKeeper } from './mark-keeper.js';
import type { MemoryStore } from './memory-store.js';
import type { Numbering, SpoolCounts } from './recovery.js';
import type { OldestBatch } from './retention.js';
import type { BatchStore } from './store.js';
import type { WaitingForSeq } from './waiting.js';

export interface SpoolOptions {
  /** Bound on the stored payload bytes (not the file size). */
  maxBytes: number;
  /** Batches older than this are dropped. */
  maxAgeSec: number;
  /** Bound on the batches held in memory while the disk fails (default MEMORY_MAX_BYTES). */
  memoryMaxBytes?: number;
  /** SQLite synchronous mode; default full (see sqlite-store.ts). */
  synchronous?: 'full' | 'normal';
  /** Group commit: longest wait for more appends and acks (default COMMIT_DELAY_MS; 0 = end of turn). */
  commitDelayMs?: number;
  /** Longest wait of acks for a batch to share its commit (default ACK_COMMIT_DELAY_MS). */
  ackCommitDelayMs?: number;
  /** Store bodies deflated where that makes them smaller (default true; see body-codec.ts). */
  deflateBodies?: boolean;
  /**
   * Seqs reserved ahead in the mark (default and least CEILING_BLOCK): how many batches can be
   * published while nothing can be written, and the largest gap an unclean stop leaves.
   */
  reserveSeqs?: number;
  /** Wall clock, for tests of the age bound. */
  now?: () => number;
  /**
   * Monotonic clock (ms) of ages and retry pauses. Default: `now` when that is given (a test
   * clock that does not step), else performance.now.
   */
  monotonic?: () => number;
}

export interface SpoolStats {
  /** Batches waiting to be acknowledged. */
  depth: number;
  bytes: number;
  /** Batches dropped (bounds, disk loss, crash in memory mode), ever (persisted). */
  dropped: number;
  /** The latest drop: how many, which seqs, why. */
  lastDrop?: GapNote;
  /** Age of the oldest unacknowledged batch, 0 when empty. */
  oldestAgeMs: number;
  /** The highest seq ever assigned (the last ones may still wait for their commit). */
  lastSeq: number;
  /** False while the database fails and batches live in memory only. */
  diskOk: boolean;
  /** False while the seq mark file cannot be written. */
  markOk: boolean;
  /** Batches held in memory because the disk failed. */
  memoryDepth: number;
  memoryBytes: number;
  /** Memory batches not published yet because their seq is above the durable ceiling. */
  withheld: number;
  /**
   * Batches waiting for a seq: neither the database nor the mark can be read, or the reserved
   * seqs are used up while neither can be written.
   */
  unnumbered: number;
  /** Corrupt databases moved aside, ever. */
  corruptMovedAside: number;
  /** Transactions that wrote queued batches or acks (batches per commit = group size). */
  commits: number;
  /** Batches the broker refused for good and that were moved to the dead letters, ever (persisted). */
  setAside: number;
  /** Dead letters kept for inspection now (not in depth or bytes). */
  deadLetters: number;
  deadLetterBytes: number;
  /** Dead letters dropped, oldest first, to keep them within their bound, ever (persisted). */
  deadLettersDropped: number;
}

/** The Spool's parts its figures are read from. */
export interface StatsParts {
  disk: BatchStore;
  memory: MemoryStore;
  waiting: WaitingForSeq;
  group: GroupCommit;
  counts: SpoolCounts;
  numbering: Numbering;
  failover: DiskFailover;
  marks: MarkKeeper;
  age: AgeClock;
  oldest: OldestBatch | undefined;
}

export function collectStats(p: StatsParts): SpoolStats {
  const { disk, memory, waiting, group, counts, oldest } = p;
  const revealable = p.marks.mark.ceiling;
  let withheld = 0;
  for (const seq of memory.seqs()) if (seq > revealable) withheld++;
  const stats: SpoolStats = {
    depth: disk.depth + memory.depth + group.length + waiting.length,
    bytes: disk.bytes + memory.bytes + group.bytes + waiting.bytes,
    dropped: counts.dropped,
    oldestAgeMs: oldest ? Math.max(0, Math.round(p.age.ageOf(oldest.seq, oldest.createdAt))) : 0,
    lastSeq: p.numbering.lastSeq,
    diskOk: p.failover.ok,
    markOk: p.marks.ok,
    memoryDepth: memory.depth,
    memoryBytes: memory.bytes + waiting.bytes,
    withheld,
    unnumbered: waiting.length,
    corruptMovedAside: counts.corruptMoved,
    commits: p.failover.commits,
    setAside: counts.setAside,
    deadLetters: disk.deadLetterCount + memory.deadLetterCount,
    deadLetterBytes: disk.deadLetterBytes + memory.deadLetterBytes,
    deadLettersDropped: counts.deadLettersDropped,
  };
  if (counts.lastDrop) stats.lastDrop = { ...counts.lastDrop };
  return stats;
}
