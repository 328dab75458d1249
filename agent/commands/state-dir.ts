import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';

/** The state directory cannot be created: the operator's to fix, told in one line. */
export class StateDirError extends Error {
  override name = 'StateDirError';
}

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOTDIR: 'a part of the path is a file, not a directory',
  ENOSPC: 'no space left on the device',
  EEXIST: 'a file of that name is in the way',
};

/** --state-dir, then config spool.dir, then systemd's $STATE_DIRECTORY, then ./state. */
export function resolveStateDir(configured: string | undefined, flag: string | undefined): string {
  const first = process.env.STATE_DIRECTORY?.split(':')[0];
  const dir = resolve(flag ?? configured ?? (first || 'state'));
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new StateDirError(
      `cannot create the state directory ${dir}: ${REASONS[code] ?? (err as Error).message} (${code}); ` +
        'point --state-dir, spool.dir or $STATE_DIRECTORY at a directory the agent may write',
    );
  }
  return dir;
}
