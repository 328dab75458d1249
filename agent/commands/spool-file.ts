/**
 * `edge-agent spool` on the spool file of a stopped agent (opened by spool-access.ts): the
 * same figures, rows and changes the running agent answers through its control socket
 * (agent/publish/spool/operator.ts), read and made with SQL.
 */
import type Database from 'better-sqlite3';
import { parseGap } from '../publish/spool/gap-note.js';
import {
  deadLetterRow,
  type DeadLetterChange,
  type DeadLetterList,
  type DeadLetterSelection,
  type SpoolFigures,
} from '../publish/spool/operator.js';
import { readMark } from '../publish/spool/seq-mark.js';
import {
  DISCARDED_META,
  REQUEUED_META,
  discardDeadLetters,
  readDeadLetters,
  requeueDeadLetters,
} from '../publish/spool/sqlite-dead-letters.js';
import { PAYLOAD } from '../publish/spool/sqlite-open.js';

export function fileFigures(db: Database.Database, dir: string): SpoolFigures {
  const meta = (key: string): unknown =>
    (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: unknown } | undefined)
      ?.value;
  const num = (key: string): number => {
    const v = meta(key);
    return typeof v === 'number' ? v : 0;
  };
  const totals = db
    .prepare(`SELECT count(*) AS n, coalesce(sum(${PAYLOAD}), 0) AS b, max(seq) AS m FROM batches`)
    .get() as { n: number; b: number; m: number | null };
  const oldest = db.prepare('SELECT seq, created_at FROM batches ORDER BY seq LIMIT 1').get() as
    { seq: number; created_at: number } | undefined;
  const dead = db
    .prepare('SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS b FROM dead_letters')
    .get() as { n: number; b: number };
  const mark = readMark(dir);
  const f: SpoolFigures = {
    path: db.name,
    depth: totals.n,
    bytes: totals.b,
    lastSeq: Math.max(num('last_seq'), totals.m ?? 0),
    dropped: Math.max(num('dropped'), mark.state === 'ok' ? mark.mark.dropped : 0),
    setAside: num('set_aside'),
    deadLetters: dead.n,
    deadLetterBytes: dead.b,
    deadLettersDropped: num('dead_letters_dropped'),
    requeued: num(REQUEUED_META),
    discarded: num(DISCARDED_META),
    corruptMovedAside: num('corrupt_moved'),
  };
  if (oldest) {
    f.oldestSeq = oldest.seq;
    f.oldestAgeMs = Math.max(0, Date.now() - oldest.created_at);
  }
  const note = parseGap(meta('pending_gap'));
  if (note) f.pendingNote = note;
  return f;
}

export function fileDeadLetters(db: Database.Database): DeadLetterList {
  const rows = readDeadLetters((text) => db.prepare(text)).map(deadLetterRow);
  return { rows, total: rows.length };
}

/** requeue or drop: all the selected seqs, or none when one is not a dead letter. */
export function fileChange(
  db: Database.Database,
  what: 'requeue' | 'drop',
  selection: DeadLetterSelection,
): DeadLetterChange {
  const dead = readDeadLetters((text) => db.prepare(text)).map((d) => d.seq);
  const have = new Set(dead);
  const seqs = 'all' in selection ? dead : selection.seqs;
  const missing = seqs.filter((s) => !have.has(s));
  if (missing.length > 0) return { ok: false, missing, deadLetters: dead };
  const done = what === 'requeue' ? requeueDeadLetters(db, seqs) : discardDeadLetters(db, seqs);
  return { ok: true, seqs: done };
}
