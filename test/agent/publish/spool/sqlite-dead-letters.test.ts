/**
 * The operator's changes to the dead letters (`edge-agent spool requeue|drop`) on a spool file
 * the agent wrote, read back by the agent's own Spool.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../../agent/ops/logger.js';
import { Spool } from '../../../../agent/publish/spool/spool.js';
import {
  discardDeadLetters,
  requeueDeadLetters,
} from '../../../../agent/publish/spool/sqlite-dead-letters.js';
import { SPOOL_FILE } from '../../../../agent/publish/spool/sqlite-store.js';

const OPTS = { maxBytes: 64 * 1024 * 1024, maxAgeSec: 3600 };
// Large and repetitive: the spool stores these deflated, dead letters as published.
const bodyOf = (seq: number) => Buffer.from(`{"seq":${seq},"pad":"${'a'.repeat(2000)}"}`);

let dir: string;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'spool-dead-'));
  const spool = Spool.open(dir, OPTS, silentLogger);
  for (let seq = 1; seq <= 4; seq++) await spool.append(bodyOf(seq), Date.now());
  spool.ack(1);
  spool.setAside(2, 'too large');
  spool.setAside(3, 'too large');
  spool.close();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function withDb<T>(use: (db: Database.Database) => T): T {
  const db = new Database(join(dir, SPOOL_FILE), { fileMustExist: true });
  try {
    return use(db);
  } finally {
    db.close();
  }
}

const meta = (db: Database.Database, key: string) =>
  (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: number } | undefined)
    ?.value;

describe('dead letters changed by the operator', () => {
  it('requeue moves a dead letter back under its seq, counted; unknown seqs are left out', async () => {
    expect(withDb((db) => requeueDeadLetters(db, [3, 99]))).toEqual([3]);
    withDb((db) => {
      expect(meta(db, 'dead_letters_requeued')).toBe(1);
      // The lowest unsettled seq is the requeued one again (what a salvage reads as unsent).
      expect(meta(db, 'unsent_from')).toBe(3);
    });
    const spool = Spool.open(dir, OPTS, silentLogger);
    try {
      const out = spool.peek(0, 10);
      expect(out.map((b) => b.seq)).toEqual([3, 4]);
      expect(out[0].body.equals(bodyOf(3))).toBe(true);
      expect(spool.deadLetters().map((d) => d.seq)).toEqual([2]);
      expect(spool.stats()).toMatchObject({ depth: 2, deadLetters: 1, setAside: 2 });
      // Published and acknowledged like any batch; numbering is not disturbed.
      spool.ack(3);
      expect(await spool.append(bodyOf(5), Date.now())).toBe(5);
    } finally {
      spool.close();
    }
  });

  it('drop deletes dead letters for good, counted once per seq', () => {
    expect(withDb((db) => discardDeadLetters(db, [2, 2, 7]))).toEqual([2]);
    withDb((db) => expect(meta(db, 'dead_letters_discarded')).toBe(1));
    const spool = Spool.open(dir, OPTS, silentLogger);
    try {
      expect(spool.deadLetters().map((d) => d.seq)).toEqual([3]);
      expect(spool.peek(0, 10).map((b) => b.seq)).toEqual([4]);
    } finally {
      spool.close();
    }
  });
});
