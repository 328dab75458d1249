/** bdSeq kept in the state directory: a new value per session, across restarts, 0-255. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BD_SEQ_FILE, BdSeqFile } from '../../../../agent/consumers/sparkplug/bd-seq.js';
import { silentLogger } from '../../../../agent/ops/logger.js';
import { useTeardown } from '../../../helpers/teardown.js';

const t = useTeardown();
const tempDir = () => t.tempDir('bdseq-');

describe('BdSeqFile', () => {
  it('starts at 0, rises by one per session, survives a new instance (a restart) and wraps after 255', () => {
    const dir = tempDir();
    expect(new BdSeqFile(dir, silentLogger).take()).toBe(0);
    const file = new BdSeqFile(dir, silentLogger);
    expect([file.take(), file.take()]).toEqual([1, 2]);
    writeFileSync(join(dir, BD_SEQ_FILE), '255\n');
    expect(new BdSeqFile(dir, silentLogger).take()).toBe(255);
    expect(new BdSeqFile(dir, silentLogger).take()).toBe(0);
    expect(readFileSync(join(dir, BD_SEQ_FILE), 'utf8')).toBe('1\n');
  });

  it('starts over at 0 from a file that does not hold a bdSeq', () => {
    const dir = tempDir();
    for (const junk of ['', 'x', '256', '-1', '1.5']) {
      writeFileSync(join(dir, BD_SEQ_FILE), junk);
      expect(new BdSeqFile(dir, silentLogger).take()).toBe(0);
    }
  });
});
