/**
 * A spool database SQLite calls corrupt: move it aside (kept for inspection) and read back
 * what can still be read. Moving is a rename in the same directory, so it needs no space.
 */
import { existsSync, renameSync } from 'node:fs';
import Database from 'better-sqlite3';
import { decodeBody } from './body-codec.js';
import { syncDir } from './seq-mark.js';
import { dirname } from 'node:path';
import { narrowToPrivate } from '../../ops/private-files.js';

/** SQLite result codes that mean the file itself is damaged. */
export function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^SQLITE_(CORRUPT|NOTADB)/.test(code);
}

/** The damaged database and its journal files, renamed to `<file>.corrupt-<ISO time>…`. */
export function moveAside(path: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '');
  let target = `${path}.corrupt-${stamp}`;
  // Never overwrite an earlier copy kept for inspection (bounded: a few tries).
  for (let n = 1; n < 100 && existsSync(target); n++) target = `${path}.corrupt-${stamp}.${n}`;
  renameSync(path, target);
  narrowToPrivate(target);
  // The WAL holds committed batches too: it moves with the file, under the name SQLite
  // looks for beside the moved file, so salvage and later inspection read both.
  for (const suffix of ['-wal', '-shm', '-journal']) {
    if (existsSync(path + suffix)) {
      renameSync(path + suffix, target + suffix);
      narrowToPrivate(target + suffix);
    }
  }
  syncDir(dirname(path));
  return target;
}

export interface SalvagedRow {
  seq: number;
  createdAt: number;
  body: Buffer;
  gap: string | null;
}

export interface Salvage {
  rows: SalvagedRow[];
  /** meta last_seq / dropped / set_aside if still readable. */
  lastSeq: number;
  dropped: number;
  setAside: number;
  /** Seq ranges the reader had to skip: rows there, if any, are lost. */
  skipped: Array<[number, number]>;
}

/** Attempts to step over a damaged page; each one jumps further ahead. */
const SKIP_ATTEMPTS = 12;

/**
 * Read every row that can still be read, oldest first, within `maxBytes` of bodies. Never
 * throws: a file that cannot be read at all gives an empty salvage.
 */
export function salvage(path: string, maxBytes: number): Salvage {
  const out: Salvage = { rows: [], lastSeq: 0, dropped: 0, setAside: 0, skipped: [] };
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true, timeout: 0 });
    const meta = (key: string) => {
      try {
        const row = db!.prepare('SELECT value FROM meta WHERE key = ?').get(key) as
          { value: unknown } | undefined;
        return typeof row?.value === 'number' ? row.value : 0;
      } catch {
        return 0;
      }
    };
    out.lastSeq = meta('last_seq');
    out.dropped = meta('dropped');
    out.setAside = meta('set_aside');
    const columns = (() => {
      try {
        return (db.prepare('PRAGMA table_info(batches)').all() as { name: string }[]).map(
          (c) => c.name,
        );
      } catch {
        return [];
      }
    })();
    const column = (name: string) => (columns.includes(name) ? name : `NULL AS ${name}`);
    const select = db.prepare(
      `SELECT seq, created_at AS createdAt, body, ${column('gap')}, ${column('enc')} FROM batches WHERE seq > ? ORDER BY seq`,
    );
    let after = 0;
    let bytes = 0;
    let step = 1;
    for (let attempt = 0; attempt <= SKIP_ATTEMPTS; attempt++) {
      try {
        for (const stored of select.iterate(after) as Iterable<SalvagedRow & { enc: unknown }>) {
          after = stored.seq;
          let body: Buffer;
          try {
            body = decodeBody(stored.body, stored.enc, stored.seq);
          } catch {
            // A damaged body: this row is lost.
            out.skipped.push([stored.seq, stored.seq]);
            continue;
          }
          if (bytes + body.length > maxBytes) return out;
          out.rows.push({ seq: stored.seq, createdAt: stored.createdAt, body, gap: stored.gap });
          bytes += body.length;
        }
        return out;
      } catch {
        // A damaged page: step over it (rows there are lost) and read on.
        out.skipped.push([after + 1, after + step]);
        after += step;
        step *= 4;
      }
    }
    return out;
  } catch {
    return out;
  } finally {
    try {
      db?.close();
    } catch {
      // A damaged file may also fail to close cleanly; nothing more to read from it.
    }
  }
}
