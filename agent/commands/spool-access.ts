/**
 * How `edge-agent spool` reaches the spool file when no agent answers on the state
 * directory's control socket (a running agent carries the request out itself: spool.ts,
 * agent/control): who holds the database, and opening it for the operator.
 *
 * A running agent holds `spool.sqlite` with `locking_mode = EXCLUSIVE`: its WAL index lives in
 * the agent's memory, so no other process can read the file, let alone write it, while the
 * agent runs. An agent that runs without answering on its socket (a socket path too long,
 * one that could not be made) is found here: the subcommand says who holds the database (the
 * POSIX lock's pid from /proc/locks) and changes nothing. A stopped agent that starts while a
 * subcommand runs (milliseconds) finds the spool in use and exits 1 (systemd restarts it).
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { SPOOL_FILE } from '../publish/spool/sqlite-open.js';

/** A spool the operator's command cannot work on; the message says why and what to do. */
export class SpoolAccessError extends Error {
  override name = 'SpoolAccessError';
}

/**
 * The pid holding a POSIX lock on `path` (SQLite's locks), from /proc/locks; undefined when
 * none does or it cannot be told.
 */
export function lockHolder(file: string): number | undefined {
  const path = resolve(file);
  let locks: string;
  let ino: bigint;
  let dev: bigint;
  try {
    const st = statSync(path, { bigint: true });
    ino = st.ino;
    dev = st.dev;
    locks = readFileSync('/proc/locks', 'utf8');
  } catch {
    return undefined;
  }
  // glibc's dev_t encoding (gnu_dev_major / gnu_dev_minor); /proc/locks prints them in hex.
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const id = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${ino}`;
  let sameInode: number | undefined;
  for (const line of locks.split('\n')) {
    // "1: POSIX  ADVISORY  WRITE 1234 08:01:131 0 EOF" (a "->" marks a waiting lock)
    const f = line.trim().split(/\s+/);
    if (f[1] !== 'POSIX') continue;
    const pid = Number(f[4]);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    if (f[5] === id) return pid;
    // Stacked file systems (overlayfs) report the lower inode's device: check the pid's files.
    if (f[5]?.endsWith(`:${ino}`) && holdsOpen(pid, path)) sameInode ??= pid;
  }
  return sameInode;
}

/** Whether process `pid` has `path` open (readable for root or the same user). */
function holdsOpen(pid: number, path: string): boolean {
  try {
    const fds = readdirSync(`/proc/${pid}/fd`).slice(0, 4096);
    return fds.some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === path;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

function inUse(path: string, pid: number | undefined): SpoolAccessError {
  const who = pid === undefined ? 'pid unknown' : `pid ${pid}`;
  return new SpoolAccessError(
    `the agent is running (${who}) and holds the spool ${path}, but does not answer on its control socket (control.sock in the state directory; its log says why): stop it first (systemctl stop edge-agent), then run this again; while it runs, its spool figures are on the health topic (edge/<gateway>/health, "spool")`,
  );
}

/**
 * Open the spool database in `dir` for the operator: exclusively, as the agent does, so that
 * nothing else changes it meanwhile. Throws SpoolAccessError when there is none or the agent
 * holds it.
 */
export function openSpoolForOperator(dir: string): Database.Database {
  const path = join(dir, SPOOL_FILE);
  if (!existsSync(path)) {
    throw new SpoolAccessError(
      `no spool in ${dir} (no ${SPOOL_FILE}): pass the agent's state directory with --state-dir (the service's is /var/lib/edge-agent), or --config with the configuration that sets spool.dir`,
    );
  }
  const holder = lockHolder(path);
  if (holder !== undefined && holder !== process.pid) throw inUse(path, holder);
  let db: Database.Database | undefined;
  try {
    // timeout 0: a lock held by the agent is an answer, not something to wait for.
    db = new Database(path, { fileMustExist: true, timeout: 0 });
    // Before the first read, as the agent does: no -shm file, and the lock is kept.
    db.pragma('locking_mode = EXCLUSIVE');
    db.prepare('SELECT count(*) FROM meta').get();
    return db;
  } catch (err) {
    db?.close();
    const code = (err as { code?: unknown }).code;
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw inUse(path, lockHolder(path));
    if (typeof code === 'string' && /^SQLITE_(CORRUPT|NOTADB)/.test(code)) {
      throw new SpoolAccessError(
        `the spool ${path} is damaged (${code}): start the agent, which moves it aside and salvages its readable batches`,
      );
    }
    throw err;
  }
}
