/** The seq mark file: two CRC'd slots, so a torn or damaged write leaves the previous mark. */
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  EMPTY_MARK,
  MARK_FILE,
  SeqMarkFile,
  readMark,
} from '../../../agent/publish/spool/seq-mark.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'seq-mark-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const damage = (offset: number) => {
  const fd = openSync(join(dir, MARK_FILE), 'r+');
  writeSync(fd, Buffer.alloc(16, 0xff), 0, 16, offset + 16);
  closeSync(fd);
};

describe('seq mark file', () => {
  it('is missing until created, then allocated at its full size and read back', () => {
    expect(readMark(dir)).toEqual({ state: 'missing' });
    const file = SeqMarkFile.open(dir);
    expect(statSync(join(dir, MARK_FILE)).size).toBe(4096);
    file.write({ ...EMPTY_MARK, ceiling: 64, dropped: 2 });
    file.close();
    expect(readMark(dir)).toEqual({
      state: 'ok',
      mark: { ...EMPTY_MARK, ceiling: 64, dropped: 2 },
    });
  });

  it('a damaged latest slot leaves the previous mark; both damaged is reported as corrupt', () => {
    const file = SeqMarkFile.open(dir);
    file.write({ ...EMPTY_MARK, ceiling: 64 }); // slot at 512
    file.write({ ...EMPTY_MARK, ceiling: 128 }); // slot at 0
    file.close();
    damage(0);
    expect(readMark(dir)).toEqual({ state: 'ok', mark: { ...EMPTY_MARK, ceiling: 64 } });
    damage(512);
    expect(readMark(dir)).toEqual({ state: 'corrupt' });
    // Reopened, it writes on from there.
    const again = SeqMarkFile.open(dir);
    again.write({ ...EMPTY_MARK, ceiling: 200 });
    again.close();
    expect(readMark(dir)).toMatchObject({ state: 'ok', mark: { ceiling: 200 } });
  });
});
