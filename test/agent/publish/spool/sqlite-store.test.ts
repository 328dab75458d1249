/** What only the SQLite store promises: its rows outlive the process, one writer, atomic writes. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../../agent/ops/logger.js';
import { isCorruption } from '../../../../agent/publish/spool/salvage.js';
import { SPOOL_FILE, SqliteStore } from '../../../../agent/publish/spool/sqlite-store.js';
import type { SpooledBatch } from '../../../../agent/publish/spool/store.js';

const batch = (seq: number, size = 10): SpooledBatch => ({
  seq,
  createdAt: 1_000 + seq,
  body: Buffer.alloc(size, 0x61 + (seq % 26)),
});
const seqsOf = (batches: readonly { seq: number }[]) => batches.map((b) => b.seq);

describe('SqliteStore', () => {
  let dir: string;
  let failures: string[];
  let stores: SqliteStore[];
  const open = (): SqliteStore => {
    const store = new SqliteStore(dir, {
      logger: silentLogger,
      failed: (_err, op) => failures.push(op),
    });
    stores.push(store);
    expect(store.open()).toBe('ok');
    store.load();
    return store;
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sqlite-store-'));
    failures = [];
    stores = [];
  });
  afterEach(() => {
    for (const s of stores) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps rows, dead letters and meta across a reopen; an ack whose DELETE was not written is replayed', () => {
    const first = open();
    expect(first.write([batch(1), batch(2), batch(3), batch(4)], [['last_seq', 4]])).toBe(true);
    expect(first.ack(1)).toBe(true);
    expect(first.write([])).toBe(true); // the DELETE of 1 is committed
    expect(first.setAside(3, 'refused', 5_000, [['set_aside', 1]])).toMatchObject({ seq: 3 });
    expect(first.ack(2)).toBe(true); // pending: lost with the connection
    first.close();

    const again = open();
    expect(seqsOf(again.read(0, 10))).toEqual([2, 4]);
    expect([again.depth, again.bytes]).toEqual([2, 20]);
    expect(again.deadLetters()).toMatchObject([{ seq: 3, reason: 'refused', setAsideAt: 5_000 }]);
    expect([again.readMeta('last_seq'), again.readMeta('set_aside')]).toEqual([4, 1]);
    expect(failures).toEqual([]);
  });

  it('one writer per directory: a second store finds the file in use', () => {
    open();
    const second = new SqliteStore(dir, { logger: silentLogger, failed: () => {} });
    expect(second.open()).toBe('in-use');
    expect(second.isOpen).toBe(false);
  });

  it('a write that fails changes nothing: batches, pending deletes and counts stay as they were', () => {
    const store = open();
    store.write([batch(1), batch(3)]);
    store.ack(1);
    // Seq 3 is taken: the INSERT fails inside the transaction, after the DELETE of 1 and the INSERT of 2.
    expect(store.write([batch(2), batch(3)])).toBe(false);
    expect(failures).toEqual(['write']);
    expect(seqsOf(store.read(0, 10))).toEqual([3]);
    expect([store.depth, store.heldBytes, store.pendingDeletes]).toEqual([1, 20, 1]);
    store.close();
    const again = open();
    expect(seqsOf(again.read(0, 10))).toEqual([1, 3]); // the DELETE of 1 was rolled back too
  });

  it('stores a compressible body deflated, reads it back byte for byte, counts its payload bytes', () => {
    const store = open();
    const json = Buffer.from(JSON.stringify({ readings: Array(200).fill({ t: 21.5, rh: 40 }) }));
    const small = Buffer.from('{"a":1}');
    store.write([
      { seq: 1, createdAt: 1, body: json },
      { seq: 2, createdAt: 2, body: small },
    ]);
    expect([store.bytes, store.heldBytes]).toEqual([
      json.length + small.length,
      json.length + small.length,
    ]);
    store.close();
    const again = open();
    expect(again.read(0, 10).map((b) => b.body)).toEqual([json, small]);
    expect(again.bytes).toBe(json.length + small.length);
    expect(again.drop(1)).toEqual({ bytes: json.length });
    again.close();
    const db = new Database(join(dir, SPOOL_FILE), { readonly: true });
    const row = db
      .prepare('SELECT length(body) AS stored, enc, size FROM batches WHERE seq = 2')
      .get();
    db.close();
    expect(row).toEqual({ stored: small.length, enc: null, size: small.length });
    expect(failures).toEqual([]);
  });

  it('a stored body that cannot be inflated is reported as corruption; the rows before it read', () => {
    const store = open();
    const json = (n: number) => Buffer.from(JSON.stringify({ n, readings: Array(300).fill(n) }));
    store.write([1, 2, 3].map((seq) => ({ seq, createdAt: seq, body: json(seq) })));
    store.close();
    const db = new Database(join(dir, SPOOL_FILE));
    db.prepare('UPDATE batches SET body = ? WHERE seq = 2').run(Buffer.alloc(40, 0xff));
    db.close();
    const errors: unknown[] = [];
    const again = new SqliteStore(dir, {
      logger: silentLogger,
      failed: (err) => errors.push(err),
    });
    stores.push(again);
    expect(again.open()).toBe('ok');
    again.load();
    expect(again.read(0, 10).map((b) => b.body)).toEqual([json(1)]);
    expect(errors).toHaveLength(1);
    expect(isCorruption(errors[0])).toBe(true);
  });

  it('reads a spool written before batches carried a gap note (no gap column)', () => {
    const db = new Database(join(dir, SPOOL_FILE));
    db.exec(`
      CREATE TABLE batches (seq INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, body BLOB NOT NULL);
      CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);`);
    db.prepare('INSERT INTO batches (seq, created_at, body) VALUES (?, ?, ?)').run(
      7,
      1_007,
      Buffer.from('{"old":true}'),
    );
    db.close();
    const store = open();
    expect(store.read(0, 10)).toEqual([
      { seq: 7, createdAt: 1_007, body: Buffer.from('{"old":true}') },
    ]);
    expect(store.write([batch(8)])).toBe(true);
    expect(seqsOf(store.read(0, 10))).toEqual([7, 8]);
  });
});
