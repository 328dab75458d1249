import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEAD_LETTER_SHARE, Spool } from '../../../agent/publish/spool/spool.js';
import { SPOOL_FILE } from '../../../agent/publish/spool/sqlite-store.js';
import { silentLogger } from '../../../agent/ops/logger.js';

const BIG = { maxBytes: 64 * 1024 * 1024, maxAgeSec: 3600 };
const body = (n: number, size = 100) => new Uint8Array(size).fill(48 + (n % 10));
const seqsOf = (bs: { seq: number }[]) => bs.map((b) => b.seq);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'spool-aside-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('Spool.setAside (dead letters)', () => {
  it('moves a refused batch out of the queue into dead_letters, in the same file, and the rest flows on', async () => {
    const spool = Spool.open(dir, BIG, silentLogger);
    spool.retainRecent(true);
    const t0 = Date.now();
    for (let i = 1; i <= 4; i++) await spool.append(body(i), t0 + i);
    expect(spool.setAside(2, 'packet too large (broker limit 3000)')).toBe(true);
    expect(seqsOf(spool.peek(0, 10))).toEqual([1, 3, 4]);
    expect(spool.stats()).toMatchObject({
      depth: 3,
      bytes: 300,
      setAside: 1,
      deadLetters: 1,
      deadLetterBytes: 100,
    });
    // Already set aside, acked or never assigned: false.
    expect(spool.setAside(2, 'again')).toBe(false);
    spool.ack(1);
    expect(spool.setAside(1, 'acked')).toBe(false);
    expect(spool.setAside(99, 'unknown')).toBe(false);
    spool.close();

    // Survives a restart: not handed out, counted, kept for inspection with its reason.
    const again = Spool.open(dir, BIG, silentLogger);
    expect(seqsOf(again.peek(0, 10))).toEqual([3, 4]);
    expect(again.stats()).toMatchObject({ depth: 2, setAside: 1, deadLetters: 1 });
    const [letter] = again.deadLetters();
    expect(letter).toMatchObject({
      seq: 2,
      createdAt: t0 + 2,
      reason: 'packet too large (broker limit 3000)',
    });
    expect(Buffer.from(body(2)).equals(letter.body)).toBe(true);
    // The next seq is not affected, and the next batch names the set-aside seq, so the
    // subscriber's gap is explained like any other (the note survived the restart).
    expect(await again.append(body(5), Date.now())).toBe(5);
    expect(again.peek(4, 1)[0].gapBefore).toEqual({
      count: 1,
      firstSeq: 2,
      lastSeq: 2,
      reason: 'set-aside',
    });
    again.close();
    const db = new Database(join(dir, SPOOL_FILE), { readonly: true });
    expect(db.prepare('SELECT seq, reason FROM dead_letters').all()).toEqual([
      { seq: 2, reason: 'packet too large (broker limit 3000)' },
    ]);
    db.close();
  });

  it('a batch still waiting for its commit cannot be set aside (it was never handed out)', () => {
    const spool = Spool.open(dir, BIG, silentLogger);
    void spool.append(body(1), Date.now());
    expect(spool.setAside(1, 'too early')).toBe(false);
    spool.commit();
    expect(spool.setAside(1, 'now')).toBe(true);
    expect(spool.peek(0, 10)).toEqual([]);
    spool.close();
  });

  it('keeps dead letters within their share of maxBytes, dropping the oldest and counting them', async () => {
    const maxBytes = 64 * 1024;
    const size = 1000;
    const spool = Spool.open(dir, { maxBytes, maxAgeSec: 3600 }, silentLogger);
    const n = 12;
    for (let i = 1; i <= n; i++) await spool.append(body(i, size), Date.now());
    for (let i = 1; i <= n; i++) expect(spool.setAside(i, 'refused')).toBe(true);
    const keep = Math.floor((maxBytes * DEAD_LETTER_SHARE) / size);
    expect(spool.stats()).toMatchObject({
      depth: 0,
      setAside: n,
      deadLetters: keep,
      deadLettersDropped: n - keep,
    });
    expect(seqsOf(spool.deadLetters())).toEqual(
      Array.from({ length: keep }, (_, i) => n - keep + 1 + i),
    );
    spool.close();
    const again = Spool.open(dir, { maxBytes, maxAgeSec: 3600 }, silentLogger);
    expect(again.stats()).toMatchObject({ deadLettersDropped: n - keep, deadLetters: keep });
    again.close();
  });

  it('sets aside a batch held in memory (disk unavailable) into the bounded in-memory dead letters', async () => {
    // The database cannot be opened (a directory in its place); the seq mark still works.
    const first = Spool.open(dir, BIG, silentLogger);
    first.close();
    rmSync(join(dir, SPOOL_FILE));
    mkdirSync(join(dir, SPOOL_FILE));
    const spool = Spool.open(dir, BIG, silentLogger);
    const seqs = [await spool.append(body(1), Date.now()), await spool.append(body(2), Date.now())];
    expect(spool.stats().diskOk).toBe(false);
    expect(spool.setAside(seqs[0], 'refused')).toBe(true);
    expect(seqsOf(spool.peek(0, 10))).toEqual([seqs[1]]);
    expect(spool.stats()).toMatchObject({ setAside: 1, deadLetters: 1, memoryDepth: 1 });
    expect(spool.deadLetters()[0]).toMatchObject({ seq: seqs[0], reason: 'refused' });
    spool.close();
  });
});
