/**
 * Opening the spool's SQLite file (`spool.sqlite`): the pragmas every connection runs with,
 * the integrity check and the tables.
 *
 * - WAL, `locking_mode = EXCLUSIVE`: one writer per state directory (two agents sharing it
 *   would hand out the same seqs), and the WAL index stays in process memory (no -shm file).
 *   Another process then gets SQLITE_BUSY at once (timeout 0): 'in-use'.
 * - synchronous=FULL by default: every transaction is fsynced before it returns, so a power
 *   cut cannot roll back batches whose seq was handed out. NORMAL is still safe against
 *   SIGKILL (the WAL is in the page cache).
 * - `PRAGMA quick_check` at open: a damaged page would otherwise surface as batches that never
 *   publish. A `-wal` of another database file (meta `file_id`) counts as damage too: SQLite
 *   would apply its pages to this file. The Spool moves a corrupt file aside (salvage.ts).
 * - Columns missing from an older file are added.
 */
import { randomInt } from 'node:crypto';
import Database from 'better-sqlite3';
import type { Logger } from '../../ops/logger.js';
import { ensurePrivateFile, mkdirsPrivate, narrowToPrivate } from '../../ops/private-files.js';
import { isCorruption, walIsForeign } from './salvage.js';

export const SPOOL_FILE = 'spool.sqlite';
/**
 * SQLite's page cache for the spool, in KiB: enough for the B-tree interior pages, not for
 * the data pages an outage writes (read, if ever, at replay), so memory stays bounded however
 * long the outage. SQLite's stock default, which better-sqlite3's build raises.
 */
export const PAGE_CACHE_KIB = 2000;
/** Columns of `batches` added after its first version, with their types. */
const ADDED_COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ['gap', 'TEXT'],
  ['enc', 'INTEGER'],
  ['size', 'INTEGER'],
];

/** Payload bytes of a row: `size`, or the stored length for rows written as is without it. */
export const PAYLOAD = 'coalesce(size, length(body))';

export const UPSERT_META =
  'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value';
/**
 * meta unsent_from, written in every transaction that removes or adds rows: every seq below it
 * is settled (acknowledged, dropped or set aside), so a salvage of a damaged file knows which
 * of the seqs it cannot read back were still to be published. The parameter is the next seq
 * for an empty table.
 */
export const UPSERT_UNSENT =
  "INSERT INTO meta (key, value) VALUES ('unsent_from', coalesce((SELECT min(seq) FROM batches), ?)) ON CONFLICT(key) DO UPDATE SET value = excluded.value";

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, body BLOB NOT NULL, gap TEXT,
    enc INTEGER, size INTEGER);
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY, created_at INTEGER, body BLOB, reason TEXT,
    set_aside_at INTEGER);`;

/**
 * Open (or create) the file `path` in `dir` and its tables: the connection, 'in-use' when
 * another process holds it, 'corrupt' when SQLite calls it damaged; any other failure throws.
 */
export function openSpoolDatabase(
  dir: string,
  path: string,
  options: { synchronous?: 'full' | 'normal'; logger: Logger },
): Database.Database | 'in-use' | 'corrupt' {
  let db: Database.Database | undefined;
  try {
    mkdirsPrivate(dir);
    if (walIsForeign(path)) {
      options.logger.error(
        { path: `${path}-wal` },
        'spool write-ahead log belongs to another database file (restored or copied?): not applied',
      );
      return 'corrupt';
    }
    // SQLite creates the file 0644 less the umask, and its -wal/-shm with the file's mode:
    // made 0600 first, the database and its journals are private to the agent's user.
    ensurePrivateFile(path);
    for (const suffix of ['-wal', '-shm']) narrowToPrivate(path + suffix);
    // timeout 0: another process holding the lock is an answer, not something to wait for.
    db = new Database(path, { timeout: 0 });
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') {
      db.close();
      options.logger.error(
        { path, check: String(check).slice(0, 200) },
        'spool database failed its integrity check',
      );
      return 'corrupt';
    }
    db.exec(SCHEMA);
    const columns = db.prepare('PRAGMA table_info(batches)').all() as { name: string }[];
    for (const [name, type] of ADDED_COLUMNS)
      if (!columns.some((c) => c.name === name))
        db.exec(`ALTER TABLE batches ADD COLUMN ${name} ${type}`);
    // A write takes the exclusive lock now, rather than at the first batch.
    db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('created_at', 0);
    // Tells this file's WAL from another's when salvaging (salvage.ts).
    db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run(
      'file_id',
      randomInt(1, 2 ** 48 - 1),
    );
    return db;
  } catch (err) {
    try {
      db?.close();
    } catch {
      // Closing a handle that failed to open has nothing left to release.
    }
    const code = (err as { code?: string }).code;
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return 'in-use';
    if (isCorruption(err)) return 'corrupt';
    throw err;
  }
}
