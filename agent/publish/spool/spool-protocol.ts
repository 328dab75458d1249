/** Messages between SpoolClient (main thread) and the spool worker thread (spool-thread.ts). */
import type {
  DeadLetterChange,
  DeadLetterList,
  DeadLetterSelection,
  SpoolFigures,
} from './operator.js';
import type { SpoolOptions, SpoolStats } from './spool-options.js';

/** What crosses to the thread: data only, no clocks (those are for in-thread tests). */
export type SpoolThreadOptions = Omit<SpoolOptions, 'now' | 'monotonic'>;

export interface SpoolThreadInit {
  dir: string;
  options: SpoolThreadOptions;
}

/** A batch as it crosses the thread boundary (structured clone turns a Buffer into a Uint8Array). */
export interface WireBatch {
  seq: number;
  createdAt: number;
  body: Uint8Array;
  gapBefore?: { count: number; firstSeq: number; lastSeq: number; reason: string };
}

/** An operator's request (`edge-agent spool …`), answered by `operator-answer` with its id. */
export type OperatorRequest =
  | { kind: 'figures' }
  | { kind: 'dead-letters'; limit: number }
  | { kind: 'requeue' | 'drop'; selection: DeadLetterSelection };

export type OperatorResult = SpoolFigures | DeadLetterList | DeadLetterChange;

export type ToSpoolThread =
  | { type: 'append'; id: number; body: Uint8Array; createdAt: number }
  | { type: 'commit' }
  | { type: 'read'; id: number; after: number; limit: number; maxBytes: number }
  | { type: 'ack'; seq: number }
  | { type: 'setAside'; seq: number; reason: string }
  | { type: 'retainRecent'; on: boolean }
  | { type: 'operator'; id: number; request: OperatorRequest }
  | { type: 'close' };

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export type FromSpoolThread =
  | { type: 'opened'; path: string; stats: SpoolStats }
  | { type: 'in-use'; message: string }
  | { type: 'appended'; id: number; seq: number }
  /** Every publishable batch with seq in (after, last returned]; `complete` when none follows now. */
  | { type: 'batches'; id: number; after: number; batches: WireBatch[]; complete: boolean }
  | { type: 'committed' }
  | { type: 'rewind'; fromSeq: number }
  | { type: 'setAsideFailed'; seq: number; reason: string }
  | { type: 'operator-answer'; id: number; result?: OperatorResult; error?: string }
  | { type: 'stats'; stats: SpoolStats }
  | { type: 'log'; level: LogLevel; fields: Record<string, unknown>; msg: string }
  | { type: 'closed'; stats: SpoolStats };
