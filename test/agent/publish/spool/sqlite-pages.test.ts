/**
 * The SQLite page reader used by salvage: databases built with better-sqlite3, then damaged
 * as an SD card does (cut short, pages overwritten, header destroyed, WAL torn or replaced).
 * Whatever it is given, it returns the rows on intact pages and nothing it cannot verify,
 * and it always terminates.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  bufferSource,
  cellPayload,
  decodeRecord,
  leafCells,
  localSize,
  openImage,
  readSchema,
  readVarint,
  readWal,
  tableColumns,
  tableLeaves,
  walChecksum,
  type PageImage,
} from '../../../../agent/publish/spool/sqlite-pages.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sqlite-pages-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const PAGE = 4096;

/** Every row of every table leaf page in the image: rowid → decoded values. */
function scan(image: PageImage): Map<number, unknown[]> {
  const rows = new Map<number, unknown[]>();
  for (let n = 2; n <= image.pageCount; n++) {
    if (image.free.has(n)) continue;
    for (const cell of leafCells(image, n) ?? []) {
      const payload = cellPayload(image, cell, 1 << 20);
      const v = payload && decodeRecord(payload);
      if (v && v.length === 3 && v[0] === null) rows.set(cell.rowid, v);
    }
  }
  return rows;
}

/** A body that identifies its row: `n` bytes, all derived from the seq. */
function bodyOf(seq: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (seq * 31 + i * 7) % 251;
  return b;
}

/** A database like the spool's: rows (seq, created_at, body); every 10th body overflows. */
function build(path: string, rows: number, wal = false): Database.Database {
  const db = new Database(path);
  if (wal) {
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
  }
  db.exec(
    'CREATE TABLE batches (seq INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, body BLOB NOT NULL)',
  );
  const insert = db.prepare('INSERT INTO batches VALUES (?, ?, ?)');
  db.transaction(() => {
    for (let s = 1; s <= rows; s++)
      insert.run(s, 1_700_000_000_000 + s, bodyOf(s, s % 10 === 0 ? 20_000 : 300));
  })();
  return db;
}

function expectRow(rows: Map<number, unknown[]>, seq: number): void {
  const v = rows.get(seq);
  expect(v, `row ${seq}`).toBeDefined();
  expect(v![1]).toBe(1_700_000_000_000 + seq);
  expect(Buffer.compare(v![2] as Buffer, bodyOf(seq, seq % 10 === 0 ? 20_000 : 300))).toBe(0);
}

describe('sqlite-pages: format pieces', () => {
  it('varints of 1 to 9 bytes, and none past the end of the buffer', () => {
    expect(readVarint(Buffer.from([0x05]), 0)).toEqual([5, 1]);
    expect(readVarint(Buffer.from([0x81, 0x00]), 0)).toEqual([128, 2]);
    expect(
      readVarint(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 0),
    ).toEqual([2 ** 64 - 255, 9]);
    expect(readVarint(Buffer.from([0x81]), 0)).toBeUndefined();
    expect(readVarint(Buffer.alloc(0), 0)).toBeUndefined();
  });

  it('local payload sizes as SQLite splits them (4096-byte pages)', () => {
    expect(localSize(100, PAGE)).toBe(100);
    expect(localSize(PAGE - 35, PAGE)).toBe(PAGE - 35);
    // Over the local limit: the minimum local part, or K when it fits.
    expect(localSize(20_000, PAGE)).toBe(489 + ((20_000 - 489) % (PAGE - 4)));
    expect(localSize(PAGE * 3, PAGE)).toBeLessThanOrEqual(PAGE - 35);
  });

  it('column names of a CREATE TABLE statement, including ones added by ALTER TABLE', () => {
    expect(
      tableColumns(
        'CREATE TABLE batches (\n seq INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, body BLOB NOT NULL, gap TEXT,\n enc INTEGER, size INTEGER)',
      ),
    ).toEqual(['seq', 'created_at', 'body', 'gap', 'enc', 'size']);
    expect(tableColumns('CREATE TABLE t (a INT, b DECIMAL(10, 2), PRIMARY KEY (a))')).toEqual([
      'a',
      'b',
    ]);
  });

  it('records of every serial type decode as SQLite stored them', () => {
    const path = join(dir, 'types.sqlite');
    const db = new Database(path);
    db.exec('CREATE TABLE t (a, b, c, d, e, f, g, h, i, j)');
    db.prepare('INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(
      null,
      0,
      1,
      -100,
      70_000,
      -(2 ** 40),
      2 ** 52,
      1.5,
      'tekst ✓',
      Buffer.from([1, 2, 3]),
    );
    db.close();
    const image = openImage(bufferSource(readFileSync(path)), undefined);
    const root = readSchema(image).find((e) => e.name === 't')!.rootpage;
    const [cell] = leafCells(image, tableLeaves(image, root)[0])!;
    expect(decodeRecord(cellPayload(image, cell, 1 << 20)!)).toEqual([
      null,
      0,
      1,
      -100,
      70_000,
      -(2 ** 40),
      2 ** 52,
      1.5,
      'tekst ✓',
      Buffer.from([1, 2, 3]),
    ]);
  });
});

describe('sqlite-pages: reading a database', () => {
  it('an intact file: every row, overflowing bodies included, and the schema', () => {
    const path = join(dir, 'db.sqlite');
    build(path, 200).close();
    const image = openImage(bufferSource(readFileSync(path)), undefined);
    expect(image).toMatchObject({ pageSize: PAGE, headerOk: true });
    const schema = readSchema(image);
    expect(schema.map((e) => e.name)).toEqual(['batches']);
    const rows = scan(image);
    expect(rows.size).toBe(200);
    for (let s = 1; s <= 200; s++) expectRow(rows, s);
  });

  it('cut to half: every row whose pages are in the first half, where SQLite reads none', () => {
    const path = join(dir, 'db.sqlite');
    build(path, 400).close();
    const bytes = readFileSync(path);
    const whole = scan(openImage(bufferSource(bytes), undefined));
    const half = bytes.subarray(0, Math.floor(bytes.length / PAGE / 2) * PAGE);
    const image = openImage(bufferSource(half), undefined);
    const rows = scan(image);
    expect(rows.size).toBeGreaterThan(100);
    for (const seq of rows.keys()) expectRow(rows, seq);
    // Exactly the rows whose leaf and overflow pages all lie in the kept half.
    const pagesOf = pageMap(openImage(bufferSource(bytes), undefined));
    const lastKept = half.length / PAGE;
    for (const seq of whole.keys())
      expect(rows.has(seq), `row ${seq}`).toBe(pagesOf.get(seq)!.every((p) => p <= lastKept));

    // SQLite's own walk gives up on the same file.
    const cut = join(dir, 'cut.sqlite');
    writeFileSync(cut, half);
    const db = new Database(cut, { readonly: true });
    let sqliteRows = 0;
    try {
      sqliteRows = (db.prepare('SELECT seq FROM batches ORDER BY seq').all() as unknown[]).length;
    } catch {
      // SQLITE_CORRUPT: what salvage had to get around.
    }
    db.close();
    expect(sqliteRows).toBeLessThan(rows.size);
  });

  it('random pages overwritten: the rows on the other pages, never a damaged one', () => {
    const path = join(dir, 'db.sqlite');
    build(path, 400).close();
    const bytes = readFileSync(path);
    const pagesOf = pageMap(openImage(bufferSource(bytes), undefined));
    const pages = bytes.length / PAGE;
    // The root (an interior page: SQLite's walk starts there) and three others.
    const damaged = new Set([2, 7, Math.floor(pages / 2), pages - 1]);
    for (const p of damaged) randomBytes(PAGE).copy(bytes, (p - 1) * PAGE);
    const rows = scan(openImage(bufferSource(bytes), undefined));
    for (const [seq, on] of pagesOf) {
      const intact = on.every((p) => !damaged.has(p));
      if (intact) expectRow(rows, seq);
      // A row touching a damaged page is either absent or (an overflow page overwritten)
      // read with other bytes: salvage checks the body's size and encoding for that.
      else if (rows.has(seq) && on[0] !== undefined && damaged.has(on[0]))
        expect.fail(`row ${seq} read from a damaged leaf page`);
    }
  });

  it('header destroyed (first 100 bytes): the page size defaults to 4096 and rows read', () => {
    const path = join(dir, 'db.sqlite');
    build(path, 100).close();
    const bytes = readFileSync(path);
    bytes.fill(0, 0, 100);
    const image = openImage(bufferSource(bytes), undefined);
    expect(image).toMatchObject({ pageSize: PAGE, headerOk: false });
    const rows = scan(image);
    expect(rows.size).toBe(100);
  });

  it('a freelist page is not read as live rows', () => {
    const path = join(dir, 'db.sqlite');
    const db = build(path, 300);
    db.exec('DELETE FROM batches WHERE seq <= 150');
    db.close();
    const image = openImage(bufferSource(readFileSync(path)), undefined);
    expect(image.free.size).toBeGreaterThan(0);
    const rows = scan(image);
    expect([...rows.keys()].every((s) => s > 150)).toBe(true);
    expect(rows.size).toBe(150);
  });
});

describe('sqlite-pages: the WAL', () => {
  /** A WAL database with `rows` committed in the WAL only; the files copied while open. */
  function walCopy(rows: number, more?: (db: Database.Database) => void) {
    const path = join(dir, 'live.sqlite');
    const db = build(path, rows, true);
    more?.(db);
    const main = readFileSync(path);
    const wal = readFileSync(`${path}-wal`);
    db.close();
    return { main, wal };
  }

  it('committed frames are applied; the main file alone lacks those rows', () => {
    const { main, wal } = walCopy(150);
    expect(scan(openImage(bufferSource(main), undefined)).size).toBe(0);
    const image = openImage(bufferSource(main), bufferSource(wal));
    expect(image.walFrames).toBeGreaterThan(0);
    const rows = scan(image);
    expect(rows.size).toBe(150);
    for (let s = 1; s <= 150; s++) expectRow(rows, s);
  });

  it('the header checksum and version are checked', () => {
    const { wal } = walCopy(10);
    expect(readWal(bufferSource(wal))).toBeDefined();
    const bad = Buffer.from(wal);
    bad[4] ^= 1;
    expect(readWal(bufferSource(bad))).toBeUndefined();
    const sum = walChecksum(wal.subarray(0, 24), [0, 0], wal.readUInt32BE(0) === 0x377f0683);
    expect(sum).toEqual([wal.readUInt32BE(24), wal.readUInt32BE(28)]);
  });

  it('a torn last transaction: the frames after the last valid commit are not applied', () => {
    const { main, wal } = walCopy(50, (db) => {
      const insert = db.prepare('INSERT INTO batches VALUES (?, ?, ?)');
      db.transaction(() => {
        for (let s = 51; s <= 100; s++) insert.run(s, 1_700_000_000_000 + s, bodyOf(s, 300));
      })();
    });
    const index = readWal(bufferSource(wal))!;
    // Cut inside the second transaction's last frame.
    const torn = wal.subarray(0, wal.length - 100);
    const rows = scan(openImage(bufferSource(main), bufferSource(torn)));
    expect([...rows.keys()].sort((a, b) => a - b)).toEqual(
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    // A flipped byte in a frame of the second transaction: the same.
    const flipped = Buffer.from(wal);
    const lastFrame = Math.max(...index.frames.values());
    flipped[lastFrame + 10] ^= 0xff;
    expect(scan(openImage(bufferSource(main), bufferSource(flipped))).size).toBe(50);
  });

  it('frames whose salt is not the header’s are not applied', () => {
    const { main, wal } = walCopy(30);
    const other = Buffer.from(wal);
    // New salts with a valid header checksum: an older log's frames no longer belong.
    other.writeUInt32BE(other.readUInt32BE(16) + 1, 16);
    const bigEndian = other.readUInt32BE(0) === 0x377f0683;
    const [a, b] = walChecksum(other.subarray(0, 24), [0, 0], bigEndian);
    other.writeUInt32BE(a, 24);
    other.writeUInt32BE(b, 28);
    const image = openImage(bufferSource(main), bufferSource(other));
    expect(image.walFrames).toBe(0);
    expect(scan(image).size).toBe(0);
  });

  it('a WAL of another page size is not applied to the file', () => {
    const { main } = walCopy(5);
    const path = join(dir, 'other.sqlite');
    const db = new Database(path);
    db.pragma('page_size = 1024');
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE x (a)');
    const otherWal = readFileSync(`${path}-wal`);
    db.close();
    // The main file has a valid header after the first checkpoint only; give it one.
    const image = openImage(bufferSource(withHeader(main)), bufferSource(otherWal));
    expect(image.walFrames).toBe(0);
  });
});

describe('sqlite-pages: hostile input terminates', () => {
  it('random files, cyclic overflow chains, absurd cell counts', () => {
    for (let i = 0; i < 20; i++) {
      const junk = randomBytes(PAGE * 8);
      if (i % 2 === 0) junk.write('SQLite format 3\0', 0, 'latin1');
      const image = openImage(bufferSource(junk), bufferSource(randomBytes(PAGE * 2)));
      scan(image);
      readSchema(image);
    }
    // A leaf page claiming 65535 cells, and one whose single cell overflows into itself.
    const path = join(dir, 'db.sqlite');
    build(path, 20).close();
    const bytes = readFileSync(path);
    const image0 = openImage(bufferSource(bytes), undefined);
    const withOverflow = [...pageMap(image0).entries()].find(([seq]) => seq % 10 === 0)!;
    const [leaf, firstOverflow] = withOverflow[1];
    // The overflow page points back at itself.
    bytes.writeUInt32BE(firstOverflow, (firstOverflow - 1) * PAGE);
    const looped = openImage(bufferSource(bytes), undefined);
    const cell = leafCells(looped, leaf)!.find((c) => c.overflow === firstOverflow)!;
    expect(cellPayload(looped, cell, 1 << 20)).toBeUndefined();
    bytes.writeUInt16BE(0xffff, (leaf - 1) * PAGE + 3);
    expect(leafCells(openImage(bufferSource(bytes), undefined), leaf)).toBeUndefined();
  });
});

/** Row → its pages (leaf first, then overflow), read from an intact image. */
function pageMap(image: PageImage): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (let n = 2; n <= image.pageCount; n++) {
    for (const cell of leafCells(image, n) ?? []) {
      const pages = [n];
      let next = cell.overflow;
      while (next !== 0 && pages.length < 100) {
        pages.push(next);
        next = image.page(next)!.readUInt32BE(0);
      }
      map.set(cell.rowid, pages);
    }
  }
  return map;
}

/** A copy of a WAL database's main file with a valid header in page 1 (SQLite writes one). */
function withHeader(main: Buffer): Buffer {
  const b = Buffer.alloc(Math.max(main.length, PAGE));
  main.copy(b);
  if (b.subarray(0, 16).toString('latin1') !== 'SQLite format 3\0') {
    b.write('SQLite format 3\0', 0, 'latin1');
    b.writeUInt16BE(PAGE, 16);
  }
  return b;
}
