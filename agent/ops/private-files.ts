/**
 * The agent's state (spool, seq mark, moved-aside copies) is private to the user it runs as:
 * a directory it creates is 0700 and a file 0600, whatever the process's umask. The mode is
 * set explicitly after creation, because a umask only narrows a mode: under a permissive one
 * (000, 022 — anything outside systemd's UMask=0077) new files would be readable by every user.
 */
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  mkdirSync,
  openSync,
  statSync,
} from 'node:fs';
import { dirname, resolve } from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** mkdir of one level whose parent exists, mode 0700. Throws like mkdirSync (EEXIST too). */
export function mkdirPrivate(dir: string): void {
  mkdirSync(dir, { mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
}

/**
 * mkdir -p: every level it creates is 0700; existing levels are left as they are (a directory
 * the operator made, or systemd's StateDirectory=, keeps its mode). Throws like mkdirSync.
 */
export function mkdirsPrivate(dir: string): void {
  const created = mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (created === undefined) return;
  const first = resolve(created);
  // The levels from `dir` up to the first one created, all made by the call above.
  for (let d = resolve(dir); ; d = dirname(d)) {
    chmodSync(d, PRIVATE_DIR_MODE);
    if (d === first || dirname(d) === d) break;
  }
}

/**
 * Makes `path` a 0600 file before another library (SQLite) opens it: created empty when
 * missing, narrowed when group or others may read it. Best effort: on a file system that
 * refuses (read-only, full, not ours), the caller's own open meets the same fault and reports
 * it, so nothing is thrown here.
 */
export function ensurePrivateFile(path: string): void {
  try {
    const fd = openSync(
      path,
      constants.O_RDWR | constants.O_CREAT | constants.O_EXCL,
      PRIVATE_FILE_MODE,
    );
    try {
      fchmodSync(fd, PRIVATE_FILE_MODE);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') narrowToPrivate(path);
  }
}

/** chmod 0600 when group or others have any access; no-op for a missing file; never throws. */
export function narrowToPrivate(path: string): void {
  try {
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, PRIVATE_FILE_MODE);
  } catch {
    // Missing, or a file system that refuses: the file's own users report that.
  }
}
