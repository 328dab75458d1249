/**
 * The main thread's handle on a Spool running in its own worker thread (spool-thread.ts):
 * the main thread never waits on the disk. It implements SpoolPort, so the publishers use
 * it as they would the Spool itself.
 *
 * - `append` posts the body and resolves with the seq once the worker's commit made it
 *   durable, as Spool.append does.
 * - `peek` answers from a window of publishable batches copied from the worker: the window
 *   holds every publishable batch with seq in (windowFrom, windowTo]. When a caller reads
 *   past what the window holds, or outside it, `peek` returns what it has and asks the worker
 *   for more; the answer fires `onCommitted`, so a caller that pumps on it goes on. The window
 *   only grows on such reads, so it stays within a read or two of what the caller consumes.
 * - `stats` is the copy the worker last sent (after every change, and once a second), with
 *   the appends still on their way to the worker counted in depth and bytes.
 * - A worker that dies is not restarted (its database lock would still be held): the error is
 *   thrown on the main thread, which ends the process so the service manager restarts it;
 *   every committed batch is on disk, and uncommitted ones never had a seq anyone saw.
 */
import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import type { Logger } from '../../ops/logger.js';
import { startModuleWorker } from '../../ops/worker-module.js';
import type {
  DeadLetterChange,
  DeadLetterList,
  DeadLetterSelection,
  SpoolFigures,
} from './operator.js';
import type {
  FromSpoolThread,
  OperatorRequest,
  OperatorResult,
  SpoolThreadInit,
  SpoolThreadOptions,
  ToSpoolThread,
  WireBatch,
} from './spool-protocol.js';
import type { SpoolPort } from './spool-port.js';
import { SpoolInUseError } from './spool-errors.js';
import type { SpoolStats } from './spool-options.js';
import type { SpooledBatch } from './store.js';

/** Batches asked for per read (at least what the caller asked for). */
export const READ_AHEAD_BATCHES = 64;
/** Payload bytes per read (at least one batch). */
export const READ_AHEAD_BYTES = 4 * 1024 * 1024;
/** Bound on waiting for the worker's answer to an operator's request (a stalled disk). */
export const OPERATOR_TIMEOUT_MS = 15_000;
/** Bound on waiting for the worker to close the spool at stop. */
export const CLOSE_TIMEOUT_MS = 30_000;

/** The spool worker ended without being asked to: the process cannot go on safely. */
export class SpoolWorkerError extends Error {
  override name = 'SpoolWorkerError';
}

interface PendingAppend {
  bytes: number;
  resolve: (seq: number) => void;
}

export class SpoolClient implements SpoolPort {
  private snapshot: SpoolStats;
  private readonly appends = new Map<number, PendingAppend>();
  private appendBytes = 0;
  private nextId = 1;
  /** Publishable, unacknowledged batches with seq in (windowFrom, windowTo], in seq order. */
  private window: SpooledBatch[] = [];
  private windowFrom = 0;
  private windowTo = 0;
  /** Nothing publishable beyond windowTo, as of the last answer (cleared by each commit). */
  private atEnd = false;
  /** The read in progress: its id, and where it reads from. */
  private pendingRead: { id: number; after: number } | undefined;
  private readonly committedListeners = new Set<() => void>();
  private readonly rewindListeners = new Set<(fromSeq: number) => void>();
  private closing = false;
  private closed: ((stats: SpoolStats) => void) | undefined;
  private readonly operatorCalls = new Map<
    number,
    { resolve: (r: OperatorResult) => void; reject: (err: Error) => void }
  >();

  private constructor(
    private readonly worker: Worker,
    readonly path: string,
    stats: SpoolStats,
    private readonly logger: Logger,
  ) {
    this.snapshot = stats;
    // The pipeline's own handles keep the process alive; a forgotten client must not.
    worker.unref();
    worker.on('message', (m: FromSpoolThread) => this.receive(m));
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`exited with code ${code}`));
    });
  }

  /**
   * Start the worker and open the spool in `dir`. Rejects with SpoolInUseError when another
   * process holds it; any disk trouble is the worker's to handle (it runs in memory, retrying).
   */
  static async open(
    dir: string,
    options: SpoolThreadOptions,
    logger: Logger,
  ): Promise<SpoolClient> {
    const init: SpoolThreadInit = { dir, options };
    const worker = startModuleWorker(import.meta.url, 'spool-thread', { workerData: init });
    // Log lines the worker sends while opening are written as they come.
    const early = (m: FromSpoolThread) => {
      if (m.type === 'log') logAt(logger, m);
    };
    worker.on('message', early);
    try {
      for (;;) {
        const [m] = (await once(worker, 'message')) as [FromSpoolThread];
        if (m.type === 'opened') {
          worker.off('message', early);
          return new SpoolClient(worker, m.path, m.stats, logger);
        }
        if (m.type === 'in-use') throw new SpoolInUseError(m.message);
      }
    } catch (err) {
      worker.off('message', early);
      await worker.terminate();
      throw err;
    }
  }

  append(body: Uint8Array, createdAt: number): Promise<number> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.appends.set(id, { bytes: body.byteLength, resolve });
      this.appendBytes += body.byteLength;
      this.send({ type: 'append', id, body, createdAt });
    });
  }

  commit(): void {
    this.send({ type: 'commit' });
  }

  peek(afterSeq: number, limit: number): SpooledBatch[] {
    if (afterSeq < this.windowFrom || afterSeq > this.windowTo) {
      // Outside the window (a replay from the start, a rewind): start a new one there.
      this.window = [];
      this.windowFrom = this.windowTo = afterSeq;
      this.atEnd = false;
      this.pendingRead = undefined;
    }
    const out: SpooledBatch[] = [];
    for (const b of this.window) {
      if (b.seq <= afterSeq) continue;
      if (out.length >= limit) break;
      out.push(b);
    }
    if (out.length < limit && !this.atEnd) this.readMore(limit);
    return out;
  }

  get reading(): boolean {
    return this.pendingRead !== undefined;
  }

  ack(seq: number): void {
    this.forget(seq);
    this.send({ type: 'ack', seq });
  }

  setAside(seq: number, reason: string): boolean {
    if (!this.forget(seq)) return false;
    this.send({ type: 'setAside', seq, reason });
    return true;
  }

  retainRecent(on: boolean): void {
    this.send({ type: 'retainRecent', on });
  }

  stats(): SpoolStats {
    const s = this.snapshot;
    if (this.appends.size === 0) return { ...s };
    return { ...s, depth: s.depth + this.appends.size, bytes: s.bytes + this.appendBytes };
  }

  onCommitted(listener: () => void): () => void {
    this.committedListeners.add(listener);
    return () => this.committedListeners.delete(listener);
  }

  onRewind(listener: (fromSeq: number) => void): () => void {
    this.rewindListeners.add(listener);
    return () => this.rewindListeners.delete(listener);
  }

  figures(): Promise<SpoolFigures> {
    return this.askOperator({ kind: 'figures' }) as Promise<SpoolFigures>;
  }

  listDeadLetters(limit: number): Promise<DeadLetterList> {
    return this.askOperator({ kind: 'dead-letters', limit }) as Promise<DeadLetterList>;
  }

  changeDeadLetters(
    kind: 'requeue' | 'drop',
    selection: DeadLetterSelection,
  ): Promise<DeadLetterChange> {
    return this.askOperator({ kind, selection }) as Promise<DeadLetterChange>;
  }

  /**
   * Commit what is queued, close the database (the Spool counts batches held only in memory
   * as dropped) and end the worker. Resolves with the last stats.
   */
  async close(): Promise<SpoolStats> {
    if (this.closing) return this.snapshot;
    this.closing = true;
    this.endOperatorCalls('the spool is closing');
    const closed = new Promise<SpoolStats>((resolve) => (this.closed = resolve));
    this.worker.postMessage({ type: 'close' } satisfies ToSpoolThread);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), CLOSE_TIMEOUT_MS);
    });
    const stats = await Promise.race([closed, timedOut]);
    clearTimeout(timer);
    if (!stats)
      this.logger.error(
        { path: this.path, waitedMs: CLOSE_TIMEOUT_MS },
        'spool worker did not close the database in time (disk stalled?); ending it',
      );
    await this.worker.terminate();
    this.snapshot = stats ?? this.snapshot;
    return this.snapshot;
  }

  // ---- internals ----

  /** An operator's request to the worker; rejects when it does not answer in time or ends. */
  private askOperator(request: OperatorRequest): Promise<OperatorResult> {
    if (this.closing) return Promise.reject(new Error('the spool is closing'));
    const id = this.nextId++;
    return new Promise<OperatorResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.operatorCalls.delete(id);
        reject(
          new Error(
            `the spool thread did not answer within ${OPERATOR_TIMEOUT_MS / 1000} s (disk stalled?)`,
          ),
        );
      }, OPERATOR_TIMEOUT_MS);
      timer.unref();
      this.operatorCalls.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.send({ type: 'operator', id, request });
    });
  }

  private endOperatorCalls(why: string): void {
    for (const call of this.operatorCalls.values()) call.reject(new Error(why));
    this.operatorCalls.clear();
  }

  private send(m: ToSpoolThread): void {
    if (this.closing) return;
    this.worker.postMessage(m);
  }

  /** Forget the window: the next peek, wherever it reads, starts a new one. */
  private dropWindow(): void {
    this.window = [];
    this.windowFrom = Number.POSITIVE_INFINITY;
    this.windowTo = Number.NEGATIVE_INFINITY;
    this.atEnd = false;
    this.pendingRead = undefined;
  }

  /** Take a batch out of the window; false when the window does not hold it. */
  private forget(seq: number): boolean {
    const i = this.window.findIndex((b) => b.seq === seq);
    if (i < 0) return false;
    this.window.splice(i, 1);
    return true;
  }

  private readMore(limit: number): void {
    if (this.pendingRead) return;
    const id = this.nextId++;
    this.pendingRead = { id, after: this.windowTo };
    this.send({
      type: 'read',
      id,
      after: this.windowTo,
      limit: Math.max(limit, READ_AHEAD_BATCHES),
      maxBytes: READ_AHEAD_BYTES,
    });
  }

  private receive(m: FromSpoolThread): void {
    switch (m.type) {
      case 'appended': {
        const pending = this.appends.get(m.id);
        if (!pending) return;
        this.appends.delete(m.id);
        this.appendBytes -= pending.bytes;
        pending.resolve(m.seq);
        return;
      }
      case 'batches':
        this.received(m.id, m.after, m.batches, m.complete);
        return;
      case 'committed':
        this.atEnd = false;
        this.notify();
        return;
      case 'rewind':
        // Batches came back below the window's end: what it holds is no longer every
        // publishable batch in its range, so the next peek reads afresh.
        this.dropWindow();
        for (const listener of this.rewindListeners) listener(m.fromSeq);
        return;
      case 'operator-answer': {
        const call = this.operatorCalls.get(m.id);
        this.operatorCalls.delete(m.id);
        if (m.result !== undefined) call?.resolve(m.result);
        else call?.reject(new Error(m.error ?? 'no answer'));
        return;
      }
      case 'setAsideFailed':
        this.logger.warn(
          { seq: m.seq, reason: m.reason },
          `batch ${m.seq} could not be set aside (acknowledged or dropped meanwhile)`,
        );
        return;
      case 'stats':
        this.snapshot = m.stats;
        return;
      case 'log':
        logAt(this.logger, m);
        return;
      case 'closed':
        this.snapshot = m.stats;
        this.closed?.(m.stats);
        return;
      case 'opened':
      case 'in-use':
        return;
    }
  }

  private received(id: number, after: number, batches: WireBatch[], complete: boolean): void {
    // An answer for a window given up meanwhile is dropped; peek asks again.
    if (this.pendingRead?.id !== id) return;
    this.pendingRead = undefined;
    if (after !== this.windowTo) return;
    for (const b of batches) {
      const batch: SpooledBatch = {
        seq: b.seq,
        createdAt: b.createdAt,
        body: Buffer.from(b.body.buffer, b.body.byteOffset, b.body.byteLength),
      };
      if (b.gapBefore) batch.gapBefore = b.gapBefore;
      this.window.push(batch);
      this.windowTo = b.seq;
    }
    this.atEnd = complete;
    if (batches.length > 0) this.notify();
  }

  private notify(): void {
    for (const listener of this.committedListeners) listener();
  }

  private fail(err: Error): void {
    if (this.closing) return;
    this.closing = true;
    this.endOperatorCalls(`the spool worker failed: ${err.message}`);
    const failure = new SpoolWorkerError(`the spool worker failed: ${err.message}`);
    // Thrown outside any caller: the crash handlers end the process (systemd restarts it).
    setImmediate(() => {
      throw failure;
    });
  }
}

function logAt(logger: Logger, m: Extract<FromSpoolThread, { type: 'log' }>): void {
  logger[m.level](m.fields, m.msg);
}
