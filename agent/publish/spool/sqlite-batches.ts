/**
 * The `batches` table of the spool's SQLite file: its SQL and its rows' encoding. Bodies are
 * stored deflated when that makes them smaller (body-codec.ts, column `enc`); the `size`
 * column keeps the payload bytes, which the bounds count; rows without them (a file from
 * before) are read as stored. The functions throw SQLite's errors: the store (sqlite-store.ts)
 * keeps the counts, the pending deletes and the read-back cache, and reports failures.
 */
import type Database from 'better-sqlite3';
import { decodeBody, encodeBody } from './body-codec.js';
import { parseGap } from './gap-note.js';
import { PAYLOAD, UPSERT_META, UPSERT_UNSENT } from './sqlite-open.js';
import type { Prepare } from './sqlite-dead-letters.js';
import type { GapNote } from './gap-note.js';
import type { ImportedRow, MetaEntry, SpooledBatch } from './store.js';

type Row = { seq: number; created_at: number; body: Buffer; gap: string | null; enc: unknown };

/** The table's row count, payload bytes and highest seq (null when empty). */
export function batchTotals(sql: Prepare): { rows: number; bytes: number; maxSeq: number | null } {
  const t = sql(
    `SELECT count(*) AS n, coalesce(sum(${PAYLOAD}), 0) AS b, max(seq) AS m FROM batches`,
  ).get() as { n: number; b: number; m: number | null };
  return { rows: t.n, bytes: t.b, maxSeq: t.m };
}

/**
 * One transaction: DELETE the rows `deletes`, insert `batches`, write `meta` and unsent_from
 * (`next` is the next seq). The rows deleted and their payload bytes.
 */
export function writeBatches(
  db: Database.Database,
  sql: Prepare,
  w: {
    deletes: readonly number[];
    batches: readonly SpooledBatch[];
    meta: readonly MetaEntry[];
    deflate: boolean;
    next: number;
  },
): { removed: number; removedBytes: number } {
  const remove = sql(`DELETE FROM batches WHERE seq = ? RETURNING ${PAYLOAD} AS n`);
  const insert = sql(
    'INSERT INTO batches (seq, created_at, body, gap, enc, size) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const setMeta = sql(UPSERT_META);
  let removed = 0;
  let removedBytes = 0;
  db.transaction(() => {
    for (const seq of w.deletes) {
      const row = remove.get(seq) as { n: number } | undefined;
      if (row) {
        removed++;
        removedBytes += row.n;
      }
    }
    for (const b of w.batches) {
      const { stored, enc } = encodeBody(b.body, w.deflate);
      const gap = b.gapBefore ? JSON.stringify(b.gapBefore) : null;
      insert.run(b.seq, b.createdAt, stored, gap, enc, b.body.length);
    }
    for (const [key, value] of w.meta) setMeta.run(key, value);
    sql(UPSERT_UNSENT).run(w.next);
  })();
  return { removed, removedBytes };
}

/** Seqs to leave out of a read or an import (the store's pending deletes). */
export interface SeqsLeftOut {
  has(seq: number): boolean;
  readonly size: number;
}

/**
 * Up to `limit` batches with afterSeq < seq < beforeSeq, in seq order, but those left out;
 * decoded one at a time, so a body that cannot be decoded throws after those before it.
 */
export function* readBatches(
  sql: Prepare,
  r: { afterSeq: number; beforeSeq: number; limit: number },
  leftOut: SeqsLeftOut,
): Generator<SpooledBatch> {
  const rows = sql(
    'SELECT seq, created_at, body, gap, enc FROM batches WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?',
  ).all(r.afterSeq, r.beforeSeq, r.limit + leftOut.size) as Row[];
  let n = 0;
  for (const row of rows) {
    if (n >= r.limit) return;
    if (leftOut.has(row.seq)) continue;
    n++;
    yield fromRow(row);
  }
}

/** The lowest seq and its creation time; undefined when the table is empty. */
export function oldestBatch(sql: Prepare): { seq: number; createdAt: number } | undefined {
  const row = sql('SELECT seq, created_at FROM batches ORDER BY seq LIMIT 1').get() as
    { seq: number; created_at: number } | undefined;
  return row ? { seq: row.seq, createdAt: row.created_at } : undefined;
}

/** Payload bytes of row `seq`; undefined when it is not there. */
export function batchBytes(sql: Prepare, seq: number): number | undefined {
  const row = sql(`SELECT ${PAYLOAD} AS n FROM batches WHERE seq = ?`).get(seq) as
    { n: number } | undefined;
  return row?.n;
}

/**
 * DELETE row `seq` with unsent_from (`next`) in one transaction: its payload bytes and the gap
 * noted before it, or undefined when it is not there.
 */
export function deleteBatch(
  db: Database.Database,
  sql: Prepare,
  seq: number,
  next: number,
): { bytes: number; gapBefore: GapNote | undefined } | undefined {
  const row = db.transaction(() => {
    const r = sql(`DELETE FROM batches WHERE seq = ? RETURNING ${PAYLOAD} AS n, gap`).get(seq) as
      { n: number; gap: string | null } | undefined;
    if (r) sql(UPSERT_UNSENT).run(next);
    return r;
  })();
  return row ? { bytes: row.n, gapBefore: parseGap(row.gap) } : undefined;
}

/** Insert `rows` (as read back, not deflated) but those left out, in one transaction; the seqs inserted. */
export function importBatches(
  db: Database.Database,
  sql: Prepare,
  rows: readonly ImportedRow[],
  leftOut: SeqsLeftOut,
): number[] {
  const insert = sql(
    'INSERT OR IGNORE INTO batches (seq, created_at, body, gap) VALUES (?, ?, ?, ?)',
  );
  const seqs: number[] = [];
  db.transaction(() => {
    for (const r of rows) {
      if (leftOut.has(r.seq)) continue;
      insert.run(r.seq, r.createdAt, r.body, r.gap);
      seqs.push(r.seq);
    }
  })();
  return seqs;
}

function fromRow(r: Row): SpooledBatch {
  const b: SpooledBatch = {
    seq: r.seq,
    createdAt: r.created_at,
    body: decodeBody(r.body, r.enc, r.seq),
  };
  const gap = parseGap(r.gap);
  if (gap) b.gapBefore = gap;
  return b;
}
