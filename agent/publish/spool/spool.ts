/**
 * Store-and-forward spool: every batch is written here, with its seq, before it is
 * published, and deleted only when the broker acknowledged it (PUBACK).
 *
 * The rule everything below keeps: **a seq is handed to the publisher only after it is
 * durable somewhere the next start reads** (the database, or the seq mark file beside it),
 * so no start ever hands out a seq a subscriber may already have seen, whatever the disk did.
 *
 * The Spool assigns seqs and answers the publisher; its parts each do one job:
 * - rows live in a durable store (store.ts; SQLite, sqlite-store.ts, unless `openStore` says
 *   otherwise) and, while the disk fails, in the memory store (disk-failover.ts);
 * - appends and acks are written in group commits (group-commit.ts);
 * - the seq mark (seq-mark.ts, `spool.seq`, kept by mark-keeper.ts) holds, outside the
 *   database, a ceiling no assigned seq exceeds: seqs are reserved ahead in blocks of
 *   `reserveSeqs` (minutes of batches), so the ceiling is durable before the disk fails, and a
 *   clean stop brings it back down to the last seq. Once the reserve is used up and the mark
 *   cannot be written, new batches wait in memory without a seq (waiting.ts);
 * - a start (spool-opening.ts) reads the database and the mark and continues after the
 *   highest (recovery.ts);
 *   after an unclean stop the seqs between the database's last and the ceiling may have been
 *   published from memory, so they are skipped and noted (`reserved`). A database SQLite
 *   reports corrupt is moved aside, its readable rows salvaged into a new one (salvage.ts).
 *   Numbering unknown (neither database nor mark readable): batches wait unnumbered until one
 *   of them can be read; numbering never restarts from 1 by guess;
 * - bounds by bytes and age, drops and their notes (retention.ts); batches the broker
 *   refused for good (dead-letters.ts).
 */
import type { Logger } from '../../ops/logger.js';
import { AgeClock, linuxBoot } from './age-clock.js';
import { DeadLetters } from './dead-letters.js';
import { causeOf } from './disk-trouble.js';
import { DISK_RETRY_MS, DiskFailover } from './disk-failover.js';
import { GroupCommit } from './group-commit.js';
import { MarkKeeper } from './mark-keeper.js';
import { MemoryStore } from './memory-store.js';
import { lostAtStop, reservedNote, type Numbering, type SpoolCounts } from './recovery.js';
import { CEILING_BLOCK } from './reserve.js';
import { Retention } from './retention.js';
import type { SeqMark } from './seq-mark.js';
import { SpoolInUseError } from './spool-errors.js';
import { collectStats, type SpoolOptions, type SpoolStats } from './spool-options.js';
import type { DeadLetterList, DeadLetterSelection, SpoolFigures } from './operator.js';
import { OperatorAccess } from './operator-access.js';
import type { SpoolPort } from './spool-port.js';
import { SeqAssigner } from './seq-assigner.js';
import { SpoolOpening } from './spool-opening.js';
import { SqliteStore } from './sqlite-store.js';
import type { DeadLetter, DurableStore, OpenDurableStore, SpooledBatch } from './store.js';
import { WaitingForSeq } from './waiting.js';

export { SpoolInUseError } from './spool-errors.js';
export type { SpoolOptions, SpoolStats } from './spool-options.js';
export { DISK_RETRY_MS, REOPEN_MS } from './disk-failover.js';
export { DEAD_LETTER_SHARE } from './dead-letters.js';
export { ACK_COMMIT_DELAY_MS, COMMIT_DELAY_MS, COMMIT_MAX_BATCHES } from './group-commit.js';

/** The agent's durable store: SQLite in the state directory. */
const openSqlite: OpenDurableStore = (dir, options) => new SqliteStore(dir, options);

export class Spool implements SpoolPort {
  readonly path: string;
  /** This spool answers `peek` at once: nothing is ever on its way. */
  readonly reading = false;
  private readonly disk: DurableStore;
  private readonly memory = new MemoryStore();
  private readonly waiting = new WaitingForSeq();
  private readonly numbering: Numbering = { numbered: false, lastSeq: 0, storedSeq: 0 };
  private readonly counts: SpoolCounts = {
    dropped: 0,
    setAside: 0,
    deadLettersDropped: 0,
    corruptMoved: 0,
  };
  private readonly marks: MarkKeeper;
  private readonly group: GroupCommit;
  private readonly retention: Retention;
  private readonly failover: DiskFailover;
  private readonly dead: DeadLetters;
  private readonly operator: OperatorAccess;
  private readonly opening: SpoolOpening;
  private readonly assigner: SeqAssigner;
  private readonly age: AgeClock;
  private readonly now: () => number;
  private readonly mono: () => number;
  private readonly commitListeners = new Set<() => void>();
  private readonly rewindListeners = new Set<(fromSeq: number) => void>();
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly options: SpoolOptions,
    private readonly logger: Logger,
    openStore: OpenDurableStore,
  ) {
    this.disk = openStore(dir, {
      synchronous: options.synchronous,
      deflate: options.deflateBodies ?? true,
      logger,
      failed: (err, op) => this.failover.failed(err, op),
    });
    this.path = this.disk.path;
    this.now = options.now ?? Date.now;
    this.mono = options.monotonic ?? options.now ?? (() => performance.now());
    const real = options.now === undefined && options.monotonic === undefined;
    this.age = new AgeClock({
      wall: this.now,
      mono: this.mono,
      boot: real ? linuxBoot : undefined,
    });
    this.marks = new MarkKeeper(dir, logger, this.mono, DISK_RETRY_MS, () => ({
      dropped: this.counts.dropped,
      stored: this.numbering.storedSeq,
      revealedCounted: this.failover.memorySettled,
      unsentFrom: this.unsentFrom(),
      lastSeq: this.numbering.lastSeq,
    }));
    this.group = new GroupCommit(options, () => this.commit());
    // Every part gets what it reads and changes from this one object (see its Parts type).
    const parts = {
      dir,
      options,
      bounds: options,
      logger,
      now: this.now,
      mono: this.mono,
      disk: this.disk,
      memory: this.memory,
      waiting: this.waiting,
      age: this.age,
      counts: this.counts,
      numbering: this.numbering,
      marks: this.marks,
      reserve: this.reserve,
      rewindListeners: this.rewindListeners,
      mark: () => this.marks.mark,
      writeMark: (change: Partial<SeqMark>) => this.writeMark(change),
      notifyCommitted: () => this.notifyCommitted(),
      numberWaiting: () => this.assigner.assignWaiting(),
      settledInMemory: () => this.failover.memorySettled++,
      persistDrops: () => this.failover.persistDrops(),
      enforceMemoryBound: () => this.retention.enforceMemoryBound(),
      reopen: (corrupt: boolean) => this.opening.reopen(corrupt),
      settle: () => {
        this.assigner.assignWaiting();
        this.retention.enforceBounds();
      },
    };
    this.retention = new Retention(parts);
    this.failover = new DiskFailover(parts);
    this.dead = new DeadLetters({ ...parts, failover: this.failover });
    this.operator = new OperatorAccess({
      ...parts,
      path: this.path,
      dead: this.dead,
      retention: this.retention,
    });
    this.opening = new SpoolOpening({ ...parts, failover: this.failover });
    this.assigner = new SeqAssigner({
      ...parts,
      failover: this.failover,
      retention: this.retention,
      group: this.group,
      commit: () => this.commit(),
    });
  }

  /**
   * Open (or create) the spool in `dir`. Throws SpoolInUseError when another process holds
   * it; any other disk trouble is logged and the spool runs in memory, retrying the disk.
   * `openStore` makes the durable store (default: SQLite, `spool.sqlite` in `dir`).
   */
  static open(
    dir: string,
    options: SpoolOptions,
    logger: Logger,
    openStore: OpenDurableStore = openSqlite,
  ): Spool {
    const spool = new Spool(dir, options, logger, openStore);
    if (spool.opening.first() === 'in-use') {
      throw new SpoolInUseError(
        `the spool ${spool.path} is in use by another process (another edge-agent on the same state directory?)`,
      );
    }
    spool.retention.enforceBounds();
    spool.failover.startRetrying();
    return spool;
  }

  /**
   * Queue a batch for the next commit; resolves with its seq once it is stored (see the
   * header), never rejects: with a failing disk it resolves once the batch is in the memory
   * store, and while numbering is unknown once a seq can be given. The spool keeps a
   * reference to `body` (no copy): do not modify it afterwards.
   */
  append(body: Uint8Array, createdAt: number): Promise<number> {
    const view = Buffer.isBuffer(body)
      ? body
      : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    return new Promise((resolve) => {
      // Batches take seqs in arrival order: behind any that wait for one.
      if (
        this.numbering.numbered &&
        this.waiting.length === 0 &&
        this.assigner.assign(view, createdAt, resolve)
      )
        return;
      this.waiting.push({ body: view, createdAt, resolve });
      this.assigner.assignWaiting();
      this.retention.enforceMemoryBound();
    });
  }

  /**
   * Write the queued appends and acks now, in one transaction. Runs by itself after the
   * commit delay; call it to make them durable sooner (close() does).
   */
  commit(): void {
    const queued = this.group.take();
    if (queued.length === 0 && !(this.failover.ok && this.disk.pendingDeletes > 0)) return;
    const batches = queued.map((q) => q.batch);
    if (!(this.failover.ok && this.failover.write(batches, batches.at(-1)?.seq)))
      this.failover.keep(batches);
    this.retention.enforceBounds();
    for (const q of queued) q.resolve(q.batch.seq);
    if (batches.length > 0) this.notifyCommitted();
  }

  /**
   * Called when batches older than ones already handed out become publishable (a database
   * that could not be read is open again, or a corrupt one was salvaged) with the lowest such
   * seq: the publisher rewinds its cursor there, or they would wait for the next reconnect.
   */
  onRewind(listener: (fromSeq: number) => void): () => void {
    this.rewindListeners.add(listener);
    return () => this.rewindListeners.delete(listener);
  }

  /** Called after each commit that stored batches (the publisher pumps then). */
  onCommitted(listener: () => void): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  /**
   * Keep the bodies of newly written batches in memory (the publisher turns this on while
   * connected), so handing them out does not read them back. Turning it off empties that
   * cache: later peeks read SQLite.
   */
  retainRecent(on: boolean): void {
    this.disk.retainRecent(on);
  }

  /** Up to `limit` unacknowledged batches with seq > afterSeq whose seq is durable, in seq order. */
  peek(afterSeq: number, limit: number): SpooledBatch[] {
    const fromDisk = this.disk.read(afterSeq, limit);
    // A memory batch is handed out only when the mark's ceiling covers its seq (the mark is
    // what was last written successfully, or read).
    const revealable = this.marks.mark.ceiling;
    const fromMemory = this.memory.read(afterSeq, limit).filter((b) => b.seq <= revealable);
    if (fromMemory.length === 0) return fromDisk.slice(0, limit);
    return [...fromDisk, ...fromMemory].sort((a, b) => a.seq - b.seq).slice(0, limit);
  }

  /**
   * The broker has the batch: forget it. The DELETE goes into the next commit; until then
   * (or if it fails) the batch is never handed out again. Unknown seqs are ignored.
   */
  ack(seq: number): void {
    if (this.memory.ack(seq)) {
      // The next start must not count a published seq as lost.
      this.failover.memorySettled++;
      this.writeMark({});
      return;
    }
    // Queued batches were never handed out: only committed seqs can be acknowledged.
    if (this.group.has(seq)) return;
    if (this.disk.ack(seq)) this.group.scheduleAcks(this.disk.pendingDeletes);
  }

  /**
   * The broker refused this batch for good: move it out of the publish queue into the dead
   * letters (one transaction: DELETE from batches, INSERT into dead_letters), so the batches
   * after it flow on. It is never handed out again and is counted in `setAside`; dead letters
   * are kept for inspection within DEAD_LETTER_SHARE of maxBytes, the oldest dropped (counted).
   * False for a seq that is not waiting to be published (unknown, acked, dropped or not yet
   * committed).
   */
  setAside(seq: number, reason: string): boolean {
    if (this.group.has(seq)) return false;
    return this.dead.setAside(seq, reason, this.now());
  }

  /** The dead letters kept now, oldest first (for inspection and tests). */
  deadLetters(): DeadLetter[] {
    return this.dead.list();
  }

  /** What `edge-agent spool status` shows (operator-access.ts). */
  figures(): Promise<SpoolFigures> {
    return Promise.resolve(this.operator.figures(this.stats()));
  }

  /** The dead letters as listed, up to `limit` rows, oldest first. */
  listDeadLetters(limit: number): Promise<DeadLetterList> {
    return Promise.resolve(this.operator.list(limit));
  }

  /** The operator's requeue or drop; requeued batches are published without a restart. */
  changeDeadLetters(kind: 'requeue' | 'drop', selection: DeadLetterSelection) {
    return Promise.resolve(this.operator.change(kind, selection));
  }

  /** The synchronous mode SQLite actually runs with; undefined while in memory. */
  syncMode(): 'full' | 'normal' | 'off' | 'extra' | undefined {
    return this.disk.syncMode();
  }

  stats(): SpoolStats {
    const { disk, memory, waiting, group, counts, numbering, failover, marks, age } = this;
    const oldest = this.retention.oldest();
    return collectStats({
      disk,
      memory,
      waiting,
      group,
      counts,
      numbering,
      failover,
      marks,
      age,
      oldest,
    });
  }

  /**
   * Commits what is queued and closes the database; brings the mark's ceiling down to the last
   * seq, so the next start continues right after it. Batches that exist only in memory (the
   * disk still fails) cannot be kept: they are logged as lost, never announced as kept, with
   * the note the next start will make for this stop (reservedNote on the mark as it is on
   * disk), so the two agree; the next start counts them.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failover.stop();
    this.commit();
    const { memory, waiting, numbering, counts } = this;
    if (memory.depth > 0 && this.disk.isOpen) this.failover.moveBack(true);
    const mark = this.marks.mark;
    if (numbering.numbered && (mark.ceiling > numbering.lastSeq || memory.depth > 0)) {
      // With every seq in the database only the ceiling comes down: `stored` keeps telling a
      // start that finds the database lost where the mark last saw it.
      const inDatabase = memory.depth === 0 && this.failover.memorySettled === 0;
      this.writeMark(
        {
          ceiling: numbering.lastSeq,
          revealed: 0,
          ...(inDatabase ? { stored: mark.stored } : {}),
        },
        true,
      );
    }
    // Unnumbered batches have no seq for a note to name: counted here (persisted with the mark
    // where it can be written). Numbered ones are counted by the next start's note.
    if (waiting.length > 0) {
      counts.dropped += waiting.length;
      this.writeMark({});
    }
    const line = lostAtStop({
      memorySeqs: memory.seqs(),
      unnumbered: waiting.length,
      next: numbering.numbered ? reservedNote(this.marks.mark, numbering.storedSeq) : undefined,
      dropped: counts.dropped,
    });
    if (line) {
      this.logger.error(line.fields, line.msg);
      memory.clearBatches();
      waiting.clear();
    }
    try {
      this.disk.close();
    } catch (err) {
      this.logger.warn(causeOf(err), 'spool close failed');
    }
    this.failover.ok = false;
    this.marks.close();
  }

  private get reserve(): number {
    return Math.max(CEILING_BLOCK, Math.floor(this.options.reserveSeqs ?? CEILING_BLOCK));
  }

  /** Write the mark with `change` applied (mark-keeper.ts); `now` skips the retry pause. */
  private writeMark(change: Partial<SeqMark>, now = false): boolean {
    return this.marks.update(change, now);
  }

  /** The lowest seq not settled yet (a lower bound: acked rows may wait for their DELETE). */
  private unsentFrom(): number {
    const disk = this.disk.oldest()?.seq;
    const mem = this.memory.first()?.seq;
    const queued = this.group.firstSeq;
    return Math.min(
      disk ?? Infinity,
      mem ?? Infinity,
      queued ?? Infinity,
      this.numbering.lastSeq + 1,
    );
  }

  private notifyCommitted(): void {
    for (const listener of this.commitListeners) listener();
  }
}
