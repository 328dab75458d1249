/**
 * The `dead_letters` table of the spool's SQLite file: batches the broker refused for good,
 * kept as published (not deflated) for inspection with any SQLite tool. Used by the store
 * (sqlite-store.ts) while the agent runs and by `edge-agent spool` while it is stopped; the
 * functions throw SQLite's errors, the caller reports them.
 */
import type Database from 'better-sqlite3';
import { decodeBody } from './body-codec.js';
import { UPSERT_META, UPSERT_UNSENT } from './sqlite-open.js';
import type { DeadLetter, MetaEntry } from './store.js';

/** Prepared statements by text (the store caches them per connection). */
export type Prepare = (text: string) => Database.Statement;

type DeadRow = {
  seq: number;
  created_at: number;
  body: Buffer;
  reason: string;
  set_aside_at: number;
};

/** The dead letters, oldest first. */
export function readDeadLetters(sql: Prepare): DeadLetter[] {
  const rows = sql(
    'SELECT seq, created_at, body, reason, set_aside_at FROM dead_letters ORDER BY seq',
  ).all() as DeadRow[];
  return rows.map((r) => ({
    seq: r.seq,
    createdAt: r.created_at,
    body: r.body,
    reason: r.reason,
    setAsideAt: r.set_aside_at,
  }));
}

/**
 * Move batch `seq` to the dead letters, with `meta`, in one transaction; `next` is the next
 * seq (for unsent_from). The row as it was (body decoded), or undefined when it is not there.
 */
export function setAsideRow(
  db: Database.Database,
  sql: Prepare,
  row: { seq: number; reason: string; at: number; meta: readonly MetaEntry[]; next: number },
): { createdAt: number; body: Buffer; gap: string | null } | undefined {
  const { seq } = row;
  return db.transaction(() => {
    const r = sql(
      'DELETE FROM batches WHERE seq = ? RETURNING created_at AS createdAt, body, gap, enc',
    ).get(seq) as { createdAt: number; body: Buffer; gap: string | null; enc: unknown } | undefined;
    if (!r) return undefined;
    const body = decodeBody(r.body, r.enc, seq);
    sql(
      'INSERT OR REPLACE INTO dead_letters (seq, created_at, body, reason, set_aside_at) VALUES (?, ?, ?, ?, ?)',
    ).run(seq, r.createdAt, body, row.reason, row.at);
    const set = sql(UPSERT_META);
    for (const [key, value] of row.meta) set.run(key, value);
    sql(UPSERT_UNSENT).run(row.next);
    return { createdAt: r.createdAt, body, gap: r.gap };
  })();
}

/** The lowest dead letter's seq. */
export function oldestDeadLetterSeq(sql: Prepare): number | undefined {
  return (
    (sql('SELECT min(seq) AS m FROM dead_letters').get() as { m: number | null }).m ?? undefined
  );
}

/** Delete one dead letter; its bytes, or undefined when it was not there. */
export function deleteDeadLetter(sql: Prepare, seq: number): number | undefined {
  const row = sql('DELETE FROM dead_letters WHERE seq = ? RETURNING length(body) AS n').get(seq) as
    { n: number } | undefined;
  return row?.n;
}

/**
 * The store's view of the table: its count and bytes (loaded at open, kept as rows come and
 * go) and the reads and deletes the spool makes while it runs, each reporting a failure
 * through `failed` and returning what it did.
 */
export class DeadLetterTable {
  count = 0;
  bytes = 0;

  constructor(
    private readonly sql: Prepare,
    private readonly failed: (err: unknown, op: string) => void,
  ) {}

  /** Count the rows of the open database (throws). */
  load(): void {
    const dead = this.sql(
      'SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS b FROM dead_letters',
    ).get() as { n: number; b: number };
    this.count = dead.n;
    this.bytes = dead.b;
  }

  /** A batch was set aside (setAsideRow). */
  added(bytes: number): void {
    this.count++;
    this.bytes += bytes;
  }

  list(): DeadLetter[] {
    if (this.count <= 0) return [];
    try {
      return readDeadLetters(this.sql);
    } catch (err) {
      this.failed(err, 'read dead letters');
      return [];
    }
  }

  oldest(): number | undefined {
    if (this.count <= 0) return undefined;
    try {
      return oldestDeadLetterSeq(this.sql);
    } catch (err) {
      this.failed(err, 'bound dead letters');
      return undefined;
    }
  }

  /** False when the storage failed. */
  drop(seq: number): boolean {
    try {
      const n = deleteDeadLetter(this.sql, seq);
      if (n !== undefined) {
        this.count--;
        this.bytes -= n;
      }
      return true;
    } catch (err) {
      this.failed(err, 'bound dead letters');
      return false;
    }
  }
}

/** What an operator did with dead letters, counted in meta (`edge-agent spool`). */
export const REQUEUED_META = 'dead_letters_requeued';
export const DISCARDED_META = 'dead_letters_discarded';

/**
 * Put dead letters back into the publish queue under their own seqs (the operator's
 * `requeue`), in one transaction with the count; the seqs moved, in order. Seqs that are not
 * dead letters are left out; a seq already queued is not duplicated.
 */
export function requeueDeadLetters(db: Database.Database, seqs: readonly number[]): number[] {
  const sql: Prepare = (text) => db.prepare(text);
  return db.transaction(() => {
    const moved: number[] = [];
    for (const seq of seqs) {
      const r = sql('DELETE FROM dead_letters WHERE seq = ? RETURNING created_at, body').get(
        seq,
      ) as { created_at: number | null; body: Buffer | null } | undefined;
      if (!r || r.body === null) continue;
      sql(
        'INSERT OR IGNORE INTO batches (seq, created_at, body, gap, enc, size) VALUES (?, ?, ?, NULL, NULL, ?)',
      ).run(seq, r.created_at ?? 0, r.body, r.body.length);
      moved.push(seq);
    }
    if (moved.length > 0) countIn(sql, REQUEUED_META, moved.length);
    const last = (
      sql("SELECT value FROM meta WHERE key = 'last_seq'").get() as { value: number } | undefined
    )?.value;
    sql(UPSERT_UNSENT).run((last ?? 0) + 1);
    return moved;
  })();
}

/** Delete dead letters for good (the operator's `drop`), counted; the seqs deleted. */
export function discardDeadLetters(db: Database.Database, seqs: readonly number[]): number[] {
  const sql: Prepare = (text) => db.prepare(text);
  return db.transaction(() => {
    const gone = seqs.filter((seq) => deleteDeadLetter(sql, seq) !== undefined);
    if (gone.length > 0) countIn(sql, DISCARDED_META, gone.length);
    return gone;
  })();
}

function countIn(sql: Prepare, key: string, n: number): void {
  const now = (
    sql('SELECT value FROM meta WHERE key = ?').get(key) as { value: number } | undefined
  )?.value;
  sql(UPSERT_META).run(key, (typeof now === 'number' ? now : 0) + n);
}
