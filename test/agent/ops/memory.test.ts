/**
 * residentSetBytes(): Node's own figure where it has one, and under qemu-user (where
 * process.memoryUsage.rss() is 0, as on an arm64/armhf chroot on a PC) VmRSS from
 * /proc/self/status. The qemu case runs the built module under qemu-x86_64-static for real.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { residentSetBytes } from '../../../agent/ops/memory.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const BUILT = `${REPO}dist/agent/ops/memory.js`;

function qemuUnavailable(): string | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64') return 'needs Linux on x86-64';
  if (spawnSync('sh', ['-c', 'command -v qemu-x86_64-static']).status !== 0)
    return 'qemu-x86_64-static is not installed (apt-get install qemu-user-static)';
  if (!existsSync(BUILT)) return 'dist/ missing (npm run build)';
  return undefined;
}
const noQemu = qemuUnavailable();
if (noQemu) console.warn(`skipping the qemu-user memory test: ${noQemu}`);

describe('residentSetBytes', () => {
  it('is the process resident size, above the heap in use', () => {
    const rss = residentSetBytes();
    expect(rss).toBeGreaterThan(process.memoryUsage().heapUsed);
    expect(rss).toBeLessThan(64 * 2 ** 30);
  });

  it.skipIf(noQemu !== undefined)(
    'is not 0 under qemu-user, where Node reports 0',
    () => {
      const r = spawnSync(
        'qemu-x86_64-static',
        [
          process.execPath,
          '--input-type=module',
          '-e',
          `const m = await import(${JSON.stringify(BUILT)});` +
            'console.log(JSON.stringify({ node: process.memoryUsage.rss(), ours: m.residentSetBytes() }));',
        ],
        { encoding: 'utf8', timeout: 120_000 },
      );
      expect(r.status, r.stderr).toBe(0);
      const figures = JSON.parse(r.stdout) as { node: number; ours: number };
      // The premise: Node's own figure is 0 there (the health report used to say rssBytes 0).
      expect(figures.node).toBe(0);
      expect(figures.ours).toBeGreaterThan(10 * 2 ** 20);
    },
    150_000,
  );
});
