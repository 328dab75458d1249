/**
 * A real, small tmpfs for disk-fault tests (needs CAP_SYS_ADMIN, e.g. root). `fill()` takes
 * every free byte with dd, `free()` gives it back, `remount('ro' | 'rw')` flips it read-only.
 * Always `close()` in afterEach/afterAll: it unmounts lazily even when files are still open.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  dir: string;
  fill(): void;
  free(): void;
  remount(mode: 'ro' | 'rw'): void;
  close(): void;
}

/** Why tmpfs cannot be mounted here, or undefined when it can. */
export function tmpfsUnavailable(): string | undefined {
  const probe = mkdtempSync(join(tmpdir(), 'tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe]);
    return undefined;
  } catch (err) {
    return `cannot mount tmpfs (${(err as Error).message.split('\n')[0]}); needs root or CAP_SYS_ADMIN`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

export function mountTmpfs(sizeBytes: number): Tmpfs {
  const dir = mkdtempSync(join(tmpdir(), 'tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir]);
  const filler = join(dir, 'filler');
  let mounted = true;
  return {
    dir,
    fill() {
      // dd stops with "No space left on device" (exit 1): that is the point.
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4096'], { stdio: 'ignore' });
      } catch {
        // full now
      }
    },
    free() {
      rmSync(filler, { force: true });
    },
    remount(mode) {
      execFileSync('mount', ['-o', `remount,${mode}`, dir]);
    },
    close() {
      if (!mounted) return;
      mounted = false;
      try {
        execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
