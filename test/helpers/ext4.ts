/**
 * A real ext4 file system on a loop device for disk-fault tests (needs root: losetup, mount,
 * mkfs.ext4, e2fsck). Mounted `errors=remount-ro`, as an SD card's root usually is, so
 * `forceReadOnly()` turns it read-only under open files the way an I/O error does: through
 * /sys/fs/ext4/<loop>/trigger_fs_error where the kernel has it, else `mount -o remount,ro`
 * (refused while files are open for writing). `repair()` unmounts, runs e2fsck and mounts it
 * writable again (every process using it must have exited). Always `close()` in afterEach:
 * it unmounts (lazily if still busy), detaches the loop device and deletes the image.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

export interface Ext4Loop {
  /** Where it is mounted. */
  dir: string;
  /** The loop device, e.g. /dev/loop3. */
  device: string;
  /** Make it read-only now; says how. */
  forceReadOnly(): 'trigger_fs_error' | 'remount';
  /** Unmount, e2fsck -fy, mount writable again. */
  repair(): void;
  close(): void;
}

const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { stdio: 'pipe', encoding: 'utf8' });

/** Why an ext4 loop device cannot be made here, or undefined when it can. */
export function ext4Unavailable(): string | undefined {
  let loop: Ext4Loop | undefined;
  try {
    loop = mountExt4(8 * 1024 * 1024);
    return undefined;
  } catch (err) {
    return `cannot make an ext4 loop device (${(err as Error).message.split('\n')[0]}); needs root, losetup, mkfs.ext4 and free loop devices`;
  } finally {
    loop?.close();
  }
}

export function mountExt4(sizeBytes: number): Ext4Loop {
  const work = mkdtempSync(join(tmpdir(), 'ext4-'));
  const image = join(work, 'disk.img');
  const dir = join(work, 'mnt');
  let device: string | undefined;
  let mounted = false;
  const mount = () => {
    run('mount', ['-t', 'ext4', '-o', 'errors=remount-ro', device!, dir]);
    mounted = true;
  };
  const close = () => {
    if (mounted) {
      try {
        run('umount', [dir]);
      } catch {
        try {
          run('umount', ['-l', dir]);
        } catch {
          // Not mounted after all.
        }
      }
      mounted = false;
    }
    if (device) {
      try {
        run('losetup', ['-d', device]);
      } catch {
        // Already detached (a lazy unmount detaches it once the last file closes).
      }
      device = undefined;
    }
    rmSync(work, { recursive: true, force: true });
  };
  try {
    writeFileSync(image, '');
    run('truncate', ['-s', String(sizeBytes), image]);
    run('mkfs.ext4', ['-q', '-F', image]);
    device = run('losetup', ['-f', '--show', image]).trim();
    execFileSync('mkdir', ['-p', dir]);
    mount();
  } catch (err) {
    close();
    throw err;
  }
  const trigger = `/sys/fs/ext4/${basename(device)}/trigger_fs_error`;
  return {
    dir,
    device,
    forceReadOnly() {
      if (existsSync(trigger)) {
        writeFileSync(trigger, '1');
        return 'trigger_fs_error';
      }
      run('mount', ['-o', 'remount,ro', dir]);
      return 'remount';
    },
    repair() {
      run('umount', [dir]);
      mounted = false;
      fsck(device!);
      mount();
    },
    close,
  };
}

/**
 * e2fsck -fy on an unmounted device. Right after umount, something may still hold the device
 * for a moment (a udev probe, the last reference of a killed process' mount): e2fsck then
 * opens nothing and exits 8 ("in use"); that is retried, a bounded number of times.
 */
function fsck(device: string): void {
  for (let attempt = 1; ; attempt++) {
    try {
      run('e2fsck', ['-fy', device]);
      return;
    } catch (err) {
      const e = err as { status?: number; stdout?: string; stderr?: string };
      // Exit 1: errors were corrected. Anything above that is a real failure.
      if (e.status === 1) return;
      const inUse = /in use|Cannot continue/.test(`${e.stdout ?? ''}${e.stderr ?? ''}`);
      if (!inUse || attempt >= 20) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    }
  }
}
