/**
 * The spool's memory through an outage: batches keep being written and none is
 * acknowledged, so every batch takes new pages. SQLite's page cache must not grow with
 * them (better-sqlite3's default would let it reach 16 MB; issue #5 allows the whole agent
 * 10 MB of growth through a 60 s outage). Measured in a process of its own (RssAnon).
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runTs } from '../../helpers/process.js';
import { useTeardown } from '../../helpers/teardown.js';

const fixture = fileURLToPath(new URL('./fixtures/spool-outage-memory.ts', import.meta.url));
const t = useTeardown();

describe('spool memory during an outage', () => {
  it.skipIf(process.platform !== 'linux')(
    '32 MB of unacknowledged batches grow the process by less than 4 MB',
    async () => {
      const dir = t.tempDir('spool-memory-');
      const p = runTs(fixture, [dir, '32']);
      t.add(() => p.kill());
      const line = await p.waitForLine(/^grew -?\d+ depth \d+ written \d+$/, 60_000);
      const [, grewKiB, depth, written] = /^grew (-?\d+) depth (\d+) written (\d+)$/
        .exec(line)!
        .map(Number);
      // Every batch of the outage is still there…
      expect(written).toBeGreaterThan(150);
      expect(depth).toBe(written);
      // …on disk, not in memory (with a 16 MB page cache this grew by ≈ 16,000 KiB).
      expect(grewKiB).toBeLessThan(4096);
      expect(await p.exited).toBe(0);
    },
    90_000,
  );
});
