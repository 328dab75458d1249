import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { mkdirPrivate } from '../ops/private-files.js';

/** The state directory cannot be created: the operator's to fix, told in one line. */
export class StateDirError extends Error {
  override name = 'StateDirError';
}

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOENT: 'the file system does not allow a directory there',
  ENOTDIR: 'a part of the path is a file, not a directory',
  ENOSPC: 'no space left on the device',
  EEXIST: 'a file of that name is in the way',
};

/** --state-dir, then config spool.dir, then systemd's $STATE_DIRECTORY, then ./state. */
export function stateDirPath(configured: string | undefined, flag: string | undefined): string {
  const first = process.env.STATE_DIRECTORY?.split(':')[0];
  return resolve(flag ?? configured ?? (first || 'state'));
}

/** The state directory (stateDirPath), created when missing. */
export function resolveStateDir(configured: string | undefined, flag: string | undefined): string {
  const dir = stateDirPath(configured, flag);
  try {
    makeDirectory(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new StateDirError(
      `cannot create the state directory ${dir}: ${REASONS[code] ?? (err as Error).message} (${code}); ` +
        'point --state-dir, spool.dir or $STATE_DIRECTORY at a directory the agent may write',
    );
  }
  return dir;
}

/** Mode of the parents of the state directory that the agent creates (less the umask). */
const PARENT_DIR_MODE = 0o755;

/**
 * mkdir -p, one level at a time and bounded by the path's depth: Node's recursive mkdir
 * loops forever where a parent exists but refuses children with ENOENT (/proc, /sys), and a
 * synchronous loop would leave the agent deaf to SIGTERM. The state directory itself is made
 * 0700 whatever the umask (it holds the spool); parents it creates are 0755 less the umask,
 * like `mkdir -p -m 0700`, so never writable by others.
 */
function makeDirectory(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    const kind = kindOf(d);
    if (kind === 'directory') break;
    if (kind === 'other') {
      throw Object.assign(new Error(`${d} is not a directory`), {
        code: d === dir ? 'EEXIST' : 'ENOTDIR',
      });
    }
    missing.push(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing.reverse()) {
    try {
      if (d === dir) mkdirPrivate(d);
      else mkdirSync(d, { mode: PARENT_DIR_MODE });
    } catch (err) {
      // Made by someone else in the meantime: as good as made here.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || kindOf(d) !== 'directory') throw err;
    }
  }
}

function kindOf(path: string): 'directory' | 'other' | 'missing' {
  try {
    return statSync(path).isDirectory() ? 'directory' : 'other';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
}
