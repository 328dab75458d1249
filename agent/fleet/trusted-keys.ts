/**
 * The operators' public keys a gateway trusts for remote configuration: every *.pem file in
 * one local directory, read at each request (adding or removing a key needs no restart).
 * Never a key that arrives over MQTT. Like ssh's StrictModes, the directory and each key file
 * must be owned by root or by the agent's user and writable by nobody else: a key anyone can
 * plant is no trust at all, so such a directory is refused as a whole, with the reason.
 */
import { readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { trustedKeyFromPem, type TrustedKey } from './signed-config.js';

/** The directory cannot be trusted or read; the message says what to fix. */
export class TrustedKeysError extends Error {
  override name = 'TrustedKeysError';
}

/** A key file is a few hundred bytes; anything larger is not one. */
const MAX_KEY_BYTES = 16 * 1024;
const MAX_KEYS = 256;

function ownerProblem(path: string, stats: Stats, uid: number): string | undefined {
  if (stats.uid !== 0 && stats.uid !== uid) {
    return `${path} is owned by uid ${stats.uid}, neither root nor the agent's user (uid ${uid})`;
  }
  if ((stats.mode & 0o022) !== 0) {
    const mode = (stats.mode & 0o777).toString(8).padStart(3, '0');
    return `${path} is writable by group or others (mode ${mode}); chmod go-w ${path}`;
  }
  return undefined;
}

/** Every trusted key in `dir`; throws TrustedKeysError when the directory cannot be trusted. */
export function loadTrustedKeys(dir: string, uid = process.getuid?.() ?? 0): TrustedKey[] {
  let stats: Stats;
  try {
    stats = statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new TrustedKeysError(`cannot read the trusted keys directory ${dir} (${code})`);
  }
  if (!stats.isDirectory()) throw new TrustedKeysError(`${dir} is not a directory`);
  const dirProblem = ownerProblem(dir, stats, uid);
  if (dirProblem) throw new TrustedKeysError(`trusted keys directory refused: ${dirProblem}`);
  const names = readdirSync(dir)
    .filter((n) => n.endsWith('.pem'))
    .sort();
  if (names.length > MAX_KEYS) {
    throw new TrustedKeysError(`${dir} holds ${names.length} keys, more than ${MAX_KEYS}`);
  }
  const keys: TrustedKey[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const fileStats = statSync(path);
    if (!fileStats.isFile()) continue;
    const problem = ownerProblem(path, fileStats, uid);
    if (problem) throw new TrustedKeysError(`trusted key refused: ${problem}`);
    if (fileStats.size > MAX_KEY_BYTES) {
      throw new TrustedKeysError(`${path} is not a public key (${fileStats.size} bytes)`);
    }
    try {
      keys.push(trustedKeyFromPem(readFileSync(path, 'utf8'), path));
    } catch (err) {
      throw new TrustedKeysError((err as Error).message);
    }
  }
  return keys;
}
