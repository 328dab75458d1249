/**
 * Debian trixie chroots for the package tests, made by packaging/chroot.sh (the same code
 * `npm run package` builds in): a fresh tree from the cached debootstrap tarball, commands
 * run in a private mount namespace with /proc, /dev and the shared apt cache mounted.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const LIB = `${REPO}packaging/chroot.sh`;

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run bash with packaging/chroot.sh sourced. */
function bash(script: string, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', `set -euo pipefail; . '${LIB}'; ${script}`], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Why a chroot of `arch` cannot be made on this machine, or undefined when it can. */
export function chrootUnavailable(arch: string): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (spawnSync('sh', ['-c', 'command -v dpkg']).status !== 0) return 'not a Debian host (no dpkg)';
  const r = spawnSync('bash', ['-c', `. '${LIB}'; chroot_unavailable ${arch}`], {
    encoding: 'utf8',
  });
  return r.stdout.trim() || undefined;
}

/** The cached base tarball of `arch`, or undefined: then the first chroot downloads it. */
export function baseCached(arch: string): boolean {
  const r = spawnSync('bash', ['-c', `. '${LIB}'; test -s "$CACHE/base/$SUITE-${arch}.tar"`]);
  return r.status === 0;
}

/** Whether Debian's mirror answers (checked only when the base is not cached yet). */
export function mirrorUnreachable(): string | undefined {
  const r = spawnSync(
    'bash',
    ['-c', `. '${LIB}'; curl -sSfI --max-time 15 "$MIRROR/dists/$SUITE/Release" >/dev/null`],
    { encoding: 'utf8' },
  );
  return r.status === 0 ? undefined : `Debian's mirror does not answer: ${r.stderr.trim()}`;
}

export class DebianChroot {
  private constructor(
    readonly arch: string,
    readonly dir: string,
  ) {}

  /** A fresh chroot in `dir` (debootstraps once per cache). */
  static async create(arch: string, dir: string, timeoutMs = 15 * 60_000): Promise<DebianChroot> {
    const r = await bash(`new_chroot ${arch} ${quote(dir)}`, timeoutMs);
    if (r.status !== 0) throw new Error(`new_chroot ${arch} failed: ${r.stderr}`);
    return new DebianChroot(arch, dir);
  }

  /** Run a shell script inside (sh -e, as root); `binds` are "hostDir:chrootDir". */
  run(script: string, options: { timeoutMs?: number; binds?: string[] } = {}): Promise<RunResult> {
    const binds = (options.binds ?? []).map(quote).join(' ');
    return bash(
      `in_chroot ${this.arch} ${quote(this.dir)} ${quote(script)} ${binds}`,
      options.timeoutMs ?? 10 * 60_000,
    );
  }

  path(p: string): string {
    return `${this.dir}/${p.replace(/^\/+/, '')}`;
  }

  read(p: string): string {
    return readFileSync(this.path(p), 'utf8');
  }

  /** Whether anything is still mounted below the chroot (then it must not be deleted). */
  hasMounts(): boolean {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((l) => (l.split(' ')[4] ?? '').startsWith(this.dir + '/'));
  }
}
