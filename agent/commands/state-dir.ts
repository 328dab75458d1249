import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';

/** --state-dir, then config spool.dir, then systemd's $STATE_DIRECTORY, then ./state. */
export function resolveStateDir(configured: string | undefined, flag: string | undefined): string {
  const first = process.env.STATE_DIRECTORY?.split(':')[0];
  const dir = resolve(flag ?? configured ?? (first || 'state'));
  mkdirSync(dir, { recursive: true });
  return dir;
}
