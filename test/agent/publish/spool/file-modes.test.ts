/**
 * The spool's files are private to the agent's user whatever the umask: outside systemd
 * (UMask=0077) a shell's 022, or a permissive 000, must not leave batches readable by all.
 */
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MARK_FILE } from '../../../../agent/publish/spool/seq-mark.js';
import { Spool } from '../../../../agent/publish/spool/spool.js';
import { SPOOL_FILE } from '../../../../agent/publish/spool/sqlite-store.js';
import { capturingLogger } from '../../../helpers/logger.js';
import { useTeardown } from '../../../helpers/teardown.js';

const BIG = { maxBytes: 64 << 20, maxAgeSec: 3600 };
const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

describe('spool files under umask 000', () => {
  let root: string;
  let saved: number;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'spool-modes-'));
    saved = process.umask(0o000);
  });
  afterEach(() => {
    process.umask(saved);
    rmSync(root, { recursive: true, force: true });
  });
  // After hooks run newest first: the spools close before the hook above removes their dir.
  const t = useTeardown();

  it('a directory the spool creates is 0700; the database, its WAL and the seq mark 0600', async () => {
    const dir = join(root, 'state', 'sparkplug');
    const spool = Spool.open(dir, BIG, capturingLogger().logger);
    t.add(() => spool.close());
    await spool.append(Buffer.from('{"windows":[]}'), Date.now());
    spool.commit();
    const wal = join(dir, `${SPOOL_FILE}-wal`);
    expect(existsSync(wal)).toBe(true);
    expect({
      parent: mode(join(root, 'state')),
      dir: mode(dir),
      db: mode(join(dir, SPOOL_FILE)),
      wal: mode(wal),
      mark: mode(join(dir, MARK_FILE)),
    }).toEqual({ parent: '700', dir: '700', db: '600', wal: '600', mark: '600' });
  });

  it('a corrupt database (left 0644 by an older version) is moved aside as 0600 and replaced by a 0600 one', async () => {
    const dir = join(root, 'state');
    const first = Spool.open(dir, BIG, capturingLogger().logger);
    await first.append(Buffer.from('{"windows":[]}'), Date.now());
    first.commit();
    first.close();
    const path = join(dir, SPOOL_FILE);
    writeFileSync(path, Buffer.alloc(8192, 0x5a));
    chmodSync(path, 0o644);
    expect(mode(path)).toBe('644');
    const spool = Spool.open(dir, BIG, capturingLogger().logger);
    t.add(() => spool.close());
    expect(await spool.append(Buffer.from('{}'), Date.now())).toBeGreaterThan(1);
    const copies = readdirSync(dir).filter((f) => f.startsWith(`${SPOOL_FILE}.corrupt-`));
    expect(copies).toHaveLength(1);
    expect(mode(join(dir, copies[0]))).toBe('600');
    expect(mode(path)).toBe('600');
  });
});
