/**
 * A spool database SQLite calls corrupt: move it aside (kept for inspection) and read back
 * what can still be read. Moving is a rename in the same directory, so it needs no space.
 *
 * Salvage reads the file page by page (sqlite-pages.ts), not through SQLite: a truncated file,
 * a destroyed header or damaged interior pages cut SQLite's walk short, while every row on an
 * intact leaf page can still be read. Rows are told apart by the schema's root pages where
 * page 1 can be read and by their record shape where it cannot. The WAL's committed frames
 * are applied, unless it is not the file's own (another page size or another `file_id` in its meta).
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { narrowToPrivate } from '../../ops/private-files.js';
import { decodeBody } from './body-codec.js';
import { parseGap, type GapNote } from './gap-note.js';
import { syncDir } from './seq-mark.js';
import {
  cellPayload,
  leafCells,
  openImage,
  readSchema,
  tableColumns,
  tableLeaves,
  type ByteSource,
  type LeafCell,
  type PageImage,
} from './sqlite-pages.js';
import { decodeRecord, recordTypes, type SqlValue } from './sqlite-record.js';

/** SQLite result codes that mean the file itself is damaged. */
export function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^SQLITE_(CORRUPT|NOTADB)/.test(code);
}

/** The damaged database and its journal files, renamed to `<file>.corrupt-<ISO time>…`. */
export function moveAside(path: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '');
  let target = `${path}.corrupt-${stamp}`;
  // Never overwrite an earlier copy kept for inspection (bounded: a few tries).
  for (let n = 1; n < 100 && existsSync(target); n++) target = `${path}.corrupt-${stamp}.${n}`;
  renameSync(path, target);
  narrowToPrivate(target);
  // The WAL holds committed batches too: it moves with the file, under the name SQLite
  // looks for beside the moved file, so salvage and later inspection read both.
  for (const suffix of ['-wal', '-shm', '-journal']) {
    if (existsSync(path + suffix)) {
      renameSync(path + suffix, target + suffix);
      narrowToPrivate(target + suffix);
    }
  }
  syncDir(dirname(path));
  return target;
}

export interface SalvagedRow {
  seq: number;
  createdAt: number;
  body: Buffer;
  gap: string | null;
}

export interface Salvage {
  /** The batches read back, oldest first: the newest that fit in `maxBytes`. */
  rows: SalvagedRow[];
  /** meta last_seq / dropped / set_aside if still readable (else 0). */
  lastSeq: number;
  dropped: number;
  setAside: number;
  /**
   * meta unsent_from: every seq below it was settled (acknowledged, dropped or set aside)
   * when the file was last committed; undefined when the meta could not be read.
   */
  unsentFrom?: number;
  /** The note the file still had to publish (meta pending_gap). */
  pendingGap?: GapNote;
  /** Seqs of the dead letters found (already announced: not lost). */
  deadLetterSeqs: number[];
  /** Batch rows found whose body could not be read back intact. */
  damaged: number;
  /** The WAL was there but not applied (not valid, or not this file's). */
  walIgnored: boolean;
}

/** The columns of `batches` in its current schema; older files have a prefix of them. */
const BATCH_COLUMNS = ['seq', 'created_at', 'body', 'gap', 'enc', 'size'];

type Table = 'batches' | 'meta' | 'dead_letters';

/**
 * Read every batch row that can still be read, within `maxBytes` of bodies (the newest kept),
 * and the meta. Never throws: a file that cannot be read at all gives an empty salvage. Time
 * and memory are bounded by the file sizes and `maxBytes`.
 */
export function salvage(path: string, maxBytes: number): Salvage {
  const out: Salvage = {
    rows: [],
    lastSeq: 0,
    dropped: 0,
    setAside: 0,
    deadLetterSeqs: [],
    damaged: 0,
    walIgnored: false,
  };
  const files: number[] = [];
  try {
    const main = fileSource(path, files);
    const wal = existsSync(`${path}-wal`) ? fileSource(`${path}-wal`, files) : undefined;
    let image = openImage(main, wal);
    if (wal && image.walFrames > 0 && foreign(main, image))
      image = openImage(main, wal, { ignoreWal: true });
    out.walIgnored = wal !== undefined && image.walFrames === 0;
    read(image, maxBytes, out);
  } catch {
    // Unreadable from here on: keep what was read.
  } finally {
    for (const fd of files) {
      try {
        closeSync(fd);
      } catch {
        // Nothing more to read from it.
      }
    }
  }
  return out;
}

/**
 * Whether the `-wal` beside `path` is another database file's (its meta `file_id` differs from
 * the file's): SQLite would apply its pages to this file without noticing. Reads page 1 and
 * the meta pages only; false when either cannot tell, or when anything fails.
 */
export function walIsForeign(path: string): boolean {
  if (!existsSync(`${path}-wal`)) return false;
  const files: number[] = [];
  try {
    const main = fileSource(path, files);
    const image = openImage(main, fileSource(`${path}-wal`, files));
    return image.walFrames > 0 && foreign(main, image);
  } catch {
    return false;
  } finally {
    for (const fd of files) closeSync(fd);
  }
}

/** The file alone and with its WAL name different `file_id`s. */
function foreign(main: ByteSource, withWal: PageImage): boolean {
  const own = metaByRoot(openImage(main, undefined)).get('file_id');
  const theirs = metaByRoot(withWal).get('file_id');
  return typeof own === 'number' && typeof theirs === 'number' && own !== theirs;
}

/** The meta table read from its root page (no scan of the other pages). */
function metaByRoot(image: PageImage): Map<string, SqlValue> {
  const meta = new Map<string, SqlValue>();
  const root = readSchema(image).find((e) => e.type === 'table' && e.name === 'meta')?.rootpage;
  if (root === undefined || root < 2) return meta;
  for (const leaf of tableLeaves(image, root))
    for (const cell of leafCells(image, leaf) ?? []) {
      const v = decodeRecord(cell.local);
      if (v && v.length === 2 && typeof v[0] === 'string') meta.set(v[0], v[1]);
    }
  return meta;
}

function fileSource(path: string, opened: number[]): ByteSource {
  const fd = openSync(path, 'r');
  opened.push(fd);
  const size = fstatSync(fd).size;
  return {
    size,
    read(offset, length) {
      const b = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      let got = 0;
      // Each read returns at least one byte until the end: bounded by the length.
      while (got < b.length) {
        const n = readSync(fd, b, got, b.length - got, offset + got);
        if (n <= 0) break;
        got += n;
      }
      return b.subarray(0, got);
    },
  };
}

interface Found {
  cell: LeafCell;
  /** On a page reached from the table's root (not told by shape alone). */
  rooted: boolean;
  columns: string[];
}

/** Which leaf pages belong to which table, as far as the schema and its trees can be read. */
function classify(image: PageImage): { label: Map<number, Table>; batchColumns: string[] } {
  const schema = readSchema(image);
  const rootOf = (name: string) =>
    schema.find((e) => e.type === 'table' && e.name === name)?.rootpage;
  const sqlOf = schema.find((e) => e.type === 'table' && e.name === 'batches')?.sql;
  const batchColumns = sqlOf ? tableColumns(sqlOf) : BATCH_COLUMNS;
  const label = new Map<number, Table>();
  for (const table of ['batches', 'meta', 'dead_letters'] as const) {
    const root = rootOf(table);
    if (root !== undefined && root > 1)
      for (const leaf of tableLeaves(image, root)) label.set(leaf, table);
  }
  return { label, batchColumns };
}

/** Fill `out` from the image. */
function read(image: PageImage, maxBytes: number, out: Salvage): void {
  const { label, batchColumns } = classify(image);
  const batches = new Map<number, Found>();
  const metaPages: Array<{ rooted: boolean; meta: Map<string, SqlValue> }> = [];
  const dead = new Set<number>();
  for (let n = 2; n <= image.pageCount; n++) {
    if (image.free.has(n) && !label.has(n)) continue;
    const cells = leafCells(image, n);
    if (!cells || cells.length === 0) continue;
    const known = label.get(n);
    const meta = new Map<string, SqlValue>();
    for (const cell of cells) {
      const table = known ?? shapeOf(cell, batchColumns);
      if (table === 'batches') {
        const seq = cell.rowid;
        if (!Number.isSafeInteger(seq) || seq < 1) continue;
        const had = batches.get(seq);
        if (!had || (!had.rooted && known !== undefined))
          batches.set(seq, { cell, rooted: known !== undefined, columns: batchColumns });
      } else if (table === 'dead_letters') {
        if (Number.isSafeInteger(cell.rowid) && cell.rowid > 0) dead.add(cell.rowid);
      } else if (table === 'meta') {
        const v = decodeRecord(cell.local);
        if (v && v.length === 2 && typeof v[0] === 'string') meta.set(v[0], v[1]);
      }
    }
    if (meta.size > 0) metaPages.push({ rooted: known === 'meta', meta });
  }

  const meta = pickMeta(metaPages);
  const num = (key: string) => {
    const v = meta.get(key);
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  };
  out.lastSeq = num('last_seq') ?? 0;
  out.dropped = num('dropped') ?? 0;
  out.setAside = num('set_aside') ?? 0;
  out.unsentFrom = num('unsent_from');
  out.pendingGap = parseGap(meta.get('pending_gap'));
  out.deadLetterSeqs = [...dead].sort((a, b) => a - b);

  // Newest first, within the byte bound; rows below unsent_from were settled already.
  const floor = out.unsentFrom ?? 1;
  const seqs = [...batches.keys()].filter((s) => s >= floor).sort((a, b) => b - a);
  let bytes = 0;
  for (const seq of seqs) {
    const found = batches.get(seq)!;
    const row = decodeBatch(image, seq, found, maxBytes - bytes);
    if (row === 'over') break;
    if (!row) {
      out.damaged++;
      continue;
    }
    out.rows.push(row);
    bytes += row.body.length;
  }
  out.rows.reverse();
}

/** The table a cell found outside any known tree belongs to, by its record's shape. */
function shapeOf(cell: LeafCell, batchColumns: string[]): Table | undefined {
  const types = recordTypes(cell.local);
  if (!types) return undefined;
  const isInt = (t: number) => (t >= 1 && t <= 6) || t === 8 || t === 9;
  const isBlob = (t: number) => t >= 12 && t % 2 === 0;
  const isText = (t: number) => t >= 13 && t % 2 === 1;
  if (types.length === 2 && isText(types[0]) && (isInt(types[1]) || isText(types[1])))
    return 'meta';
  const batchLike =
    types.length >= 3 &&
    types.length <= batchColumns.length &&
    types[0] === 0 &&
    isInt(types[1]) &&
    isBlob(types[2]) &&
    (types.length < 4 || types[3] === 0 || isText(types[3])) &&
    types.slice(4).every((t) => t === 0 || isInt(t));
  const deadLike =
    types.length === 5 &&
    types[0] === 0 &&
    (types[1] === 0 || isInt(types[1])) &&
    (types[2] === 0 || isBlob(types[2])) &&
    (types[3] === 0 || isText(types[3])) &&
    (types[4] === 0 || isInt(types[4]));
  if (batchLike && deadLike) {
    // A batch's fourth column is its gap note (JSON) or NULL; a dead letter's is its reason.
    const v = decodeRecord(cell.local);
    const text = v?.[3];
    return text === null || parseGap(text) ? 'batches' : 'dead_letters';
  }
  if (batchLike) return 'batches';
  if (deadLike) return 'dead_letters';
  return undefined;
}

/** The meta as last committed: from the table's own page if known, else the most advanced. */
function pickMeta(pages: Array<{ rooted: boolean; meta: Map<string, SqlValue> }>) {
  const rooted = pages.find((p) => p.rooted);
  if (rooted) return rooted.meta;
  const last = (m: Map<string, SqlValue>) => {
    const v = m.get('last_seq');
    return typeof v === 'number' ? v : -1;
  };
  return pages.sort((a, b) => last(b.meta) - last(a.meta))[0]?.meta ?? new Map<string, SqlValue>();
}

/** A batch row read back intact, undefined when damaged, 'over' past the byte bound. */
function decodeBatch(
  image: PageImage,
  seq: number,
  found: Found,
  budget: number,
): SalvagedRow | 'over' | undefined {
  if (found.cell.payloadSize > Math.max(0, budget) * 2 + 1024) return 'over';
  const payload = cellPayload(image, found.cell, found.cell.payloadSize);
  const v = payload && decodeRecord(payload);
  if (!v) return undefined;
  const col = (name: string) => {
    const i = found.columns.indexOf(name);
    return i >= 0 && i < v.length ? v[i] : null;
  };
  const createdAt = col('created_at');
  const stored = col('body');
  const gap = col('gap');
  const size = col('size');
  if (typeof createdAt !== 'number' || !Buffer.isBuffer(stored)) return undefined;
  if (gap !== null && typeof gap !== 'string') return undefined;
  let body: Buffer;
  try {
    body = decodeBody(stored, col('enc'), seq);
  } catch {
    return undefined;
  }
  // A damaged overflow page can leave a body of the wrong length: not the batch written.
  if (typeof size === 'number' && size !== body.length) return undefined;
  if (body.length > budget) return 'over';
  // A copy: the bytes outlive the page buffers they were read from.
  return { seq, createdAt, body: Buffer.from(body), gap };
}
