/** Bodies as the spool file keeps them: deflated, and readable from a file of the previous format. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../../agent/ops/logger.js';
import { Spool } from '../../../../agent/publish/spool/spool.js';
import { SPOOL_FILE } from '../../../../agent/publish/spool/sqlite-store.js';

const OPTIONS = { maxBytes: 64 * 1024 * 1024, maxAgeSec: 3600 };
/** A telemetry-like body: compressible, and naming its number. */
const json = (n: number) =>
  Buffer.from(JSON.stringify({ n, windows: Array(40).fill({ q: 'temperature', mean: 21.5 + n }) }));
const seqsOf = (bs: { seq: number }[]) => bs.map((b) => b.seq);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'spool-bodies-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('Spool bodies on disk', () => {
  it('reads and continues a spool file written by the previous format (bodies as is, no enc/size columns)', async () => {
    // The previous version's tables and rows, as it wrote them.
    const t = Date.now();
    const old = new Database(join(dir, SPOOL_FILE));
    old.pragma('journal_mode = WAL');
    old.exec(`
      CREATE TABLE batches (
        seq INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, body BLOB NOT NULL, gap TEXT);
      CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      CREATE TABLE dead_letters (
        seq INTEGER PRIMARY KEY, created_at INTEGER, body BLOB, reason TEXT, set_aside_at INTEGER);`);
    const gap = { count: 2, firstSeq: 1, lastSeq: 2, reason: 'spool-bound' };
    const insert = old.prepare(
      'INSERT INTO batches (seq, created_at, body, gap) VALUES (?, ?, ?, ?)',
    );
    insert.run(3, t, json(3), JSON.stringify(gap));
    insert.run(4, t + 1, json(4), null);
    const meta = old.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
    for (const [k, v] of [
      ['created_at', 0],
      ['last_seq', 4],
      ['dropped', 2],
      ['opened_at', 1],
    ] as const)
      meta.run(k, v);
    old.close();

    const spool = Spool.open(dir, OPTIONS, silentLogger);
    const before = spool.peek(0, 10);
    expect(before).toEqual([
      { seq: 3, createdAt: t, body: json(3), gapBefore: gap },
      { seq: 4, createdAt: t + 1, body: json(4) },
    ]);
    expect(await spool.append(json(5), Date.now())).toBe(5);
    expect(spool.peek(0, 10).map((b) => b.body)).toEqual([json(3), json(4), json(5)]);
    expect(spool.stats()).toMatchObject({
      depth: 3,
      bytes: json(3).length + json(4).length + json(5).length,
      dropped: 2,
      lastSeq: 5,
    });
    spool.ack(3);
    spool.close();

    const db = new Database(join(dir, SPOOL_FILE), { readonly: true });
    const rows = db.prepare('SELECT seq, enc, size, length(body) AS stored FROM batches').all();
    db.close();
    expect(rows).toEqual([
      { seq: 4, enc: null, size: null, stored: json(4).length },
      { seq: 5, enc: 1, size: json(5).length, stored: expect.any(Number) as number },
    ]);
    expect((rows[1] as { stored: number }).stored).toBeLessThan(json(5).length / 2);

    const again = Spool.open(dir, OPTIONS, silentLogger);
    expect(seqsOf(again.peek(0, 10))).toEqual([4, 5]);
    expect(again.peek(0, 10)[1].body).toEqual(json(5));
    expect(await again.append(json(6), Date.now())).toBe(6);
    again.close();
  });

  it('a body damaged on disk: the file is moved aside, the other rows salvaged, its seq counted and noted', async () => {
    const spool = Spool.open(dir, OPTIONS, silentLogger);
    for (const n of [1, 2, 3]) void spool.append(json(n), Date.now());
    spool.close();
    const db = new Database(join(dir, SPOOL_FILE));
    db.prepare('UPDATE batches SET body = ? WHERE seq = 2').run(Buffer.alloc(60, 0xff));
    db.close();

    const again = Spool.open(dir, OPTIONS, silentLogger);
    // The replay reads up to the damaged body; the next retry moves the file aside.
    expect(seqsOf(again.peek(0, 10))).toEqual([1]);
    const deadline = Date.now() + 15_000;
    while (again.stats().corruptMovedAside === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(again.stats()).toMatchObject({ corruptMovedAside: 1, diskOk: true, dropped: 1 });
    expect(again.peek(0, 10).map((b) => b.body)).toEqual([json(1), json(3)]);
    expect(await again.append(json(4), Date.now())).toBe(4);
    again.commit();
    const [fourth] = again.peek(3, 10);
    expect(fourth.gapBefore).toEqual({
      count: 1,
      firstSeq: 2,
      lastSeq: 2,
      reason: 'database-lost',
    });
    again.close();
  }, 30_000);
});
