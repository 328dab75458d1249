/**
 * A small reader of the SQLite file format, for salvaging rows from a damaged spool without
 * SQLite's own b-tree walk: every page is looked at on its own, so a row on an intact page is
 * found even when the pages that lead to it are damaged or gone. Pure functions over bytes
 * (a ByteSource); every loop is bounded by the file's size.
 *
 * Format facts used (https://www.sqlite.org/fileformat2.html):
 * - Header, the first 100 bytes of page 1: "SQLite format 3\0"; page size u16 BE at 16
 *   (1 means 65536); bytes reserved at the end of each page at 20; first freelist trunk page
 *   u32 at 32. Page n (from 1) starts at (n - 1) * pageSize; page 1's b-tree header follows
 *   the file header.
 * - B-tree page: type byte (0x0D table leaf, 0x05 table interior), cell count u16 at 3,
 *   right-most child u32 at 8 (interior only); then one u16 offset per cell.
 * - Table leaf cell: varint payload size P, varint rowid, payload. With U the usable page size,
 *   a payload over U - 35 keeps only a local part here, followed by the u32 first overflow
 *   page; each overflow page is a u32 next page (0 = last) and U - 4 bytes of payload.
 * - Table interior cell: u32 left child, varint key.
 * - Records: sqlite-record.ts.
 * - Freelist trunk page: u32 next trunk, u32 count, that many u32 free (leaf) pages.
 * - WAL (`-wal`): a 32-byte header (magic 0x377f0682 or 0x377f0683 — the low bit says the
 *   checksums read words big-endian —, version, page size, checkpoint seq, salt-1, salt-2,
 *   checksum of the first 24 bytes), then frames: a 24-byte header (page number, database
 *   size in pages after a commit or 0, salt-1, salt-2, running checksum) and one page. A frame
 *   counts while its salts equal the header's and the running checksum matches; only frames
 *   up to the last valid commit frame were committed. The latest committed frame of a page
 *   replaces that page of the main file.
 */
import { decodeRecord, readVarint } from './sqlite-record.js';

export { decodeRecord, readVarint } from './sqlite-record.js';

/** Bytes read at an offset; `read` returns fewer at the end (never throws for a valid range). */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Buffer;
}

export function bufferSource(bytes: Buffer): ByteSource {
  return {
    size: bytes.length,
    read: (offset, length) => bytes.subarray(offset, Math.min(bytes.length, offset + length)),
  };
}

const MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
export const DEFAULT_PAGE_SIZE = 4096;
const WAL_MAGIC_LE = 0x377f0682;
const WAL_MAGIC_BE = 0x377f0683;
const WAL_VERSION = 3007000;
const WAL_HEADER = 32;
const FRAME_HEADER = 24;
export const TABLE_LEAF = 0x0d;
export const TABLE_INTERIOR = 0x05;

function validPageSize(n: number): boolean {
  return n >= 512 && n <= 65536 && (n & (n - 1)) === 0;
}

export interface DbHeader {
  pageSize: number;
  reserved: number;
  freelistTrunk: number;
}

/** The database header of page 1, or undefined when it is not an SQLite header. */
export function parseHeader(page1: Buffer): DbHeader | undefined {
  if (page1.length < 100 || !page1.subarray(0, 16).equals(MAGIC)) return undefined;
  const raw = page1.readUInt16BE(16);
  const pageSize = raw === 1 ? 65536 : raw;
  const reserved = page1[20];
  if (!validPageSize(pageSize) || pageSize - reserved < 480) return undefined;
  return { pageSize, reserved, freelistTrunk: page1.readUInt32BE(32) };
}

export interface WalIndex {
  pageSize: number;
  /** Page number → offset of its latest committed image in the WAL. */
  frames: Map<number, number>;
  /** Database size in pages after the last commit (0 without a commit). */
  dbPages: number;
  salt: [number, number];
}

/**
 * The committed frames of a WAL, or undefined when its header is not valid. A frame with
 * other salts or a wrong checksum ends the log (what follows it was never committed).
 */
export function readWal(wal: ByteSource): WalIndex | undefined {
  const h = wal.read(0, WAL_HEADER);
  if (h.length < WAL_HEADER) return undefined;
  const magic = h.readUInt32BE(0);
  if (magic !== WAL_MAGIC_LE && magic !== WAL_MAGIC_BE) return undefined;
  const bigEndian = magic === WAL_MAGIC_BE;
  const pageSize = h.readUInt32BE(8);
  if (h.readUInt32BE(4) !== WAL_VERSION || !validPageSize(pageSize)) return undefined;
  let sum = walChecksum(h.subarray(0, 24), [0, 0], bigEndian);
  if (sum[0] !== h.readUInt32BE(24) || sum[1] !== h.readUInt32BE(28)) return undefined;
  const salt: [number, number] = [h.readUInt32BE(16), h.readUInt32BE(20)];
  const index: WalIndex = { pageSize, frames: new Map(), dbPages: 0, salt };
  const pending = new Map<number, number>();
  const frameBytes = FRAME_HEADER + pageSize;
  const frameCount = Math.floor((wal.size - WAL_HEADER) / frameBytes);
  for (let i = 0; i < frameCount; i++) {
    const at = WAL_HEADER + i * frameBytes;
    const frame = wal.read(at, frameBytes);
    if (frame.length < frameBytes) break;
    const page = frame.readUInt32BE(0);
    const commit = frame.readUInt32BE(4);
    if (page === 0 || frame.readUInt32BE(8) !== salt[0] || frame.readUInt32BE(12) !== salt[1])
      break;
    sum = walChecksum(frame.subarray(0, 8), sum, bigEndian);
    sum = walChecksum(frame.subarray(FRAME_HEADER), sum, bigEndian);
    if (sum[0] !== frame.readUInt32BE(16) || sum[1] !== frame.readUInt32BE(20)) break;
    pending.set(page, at + FRAME_HEADER);
    if (commit !== 0) {
      for (const [p, offset] of pending) index.frames.set(p, offset);
      pending.clear();
      index.dbPages = commit;
    }
  }
  return index;
}

/** SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `start`. */
export function walChecksum(
  data: Buffer,
  start: [number, number],
  bigEndian: boolean,
): [number, number] {
  let [s0, s1] = start;
  for (let i = 0; i + 8 <= data.length; i += 8) {
    const x0 = bigEndian ? data.readUInt32BE(i) : data.readUInt32LE(i);
    const x1 = bigEndian ? data.readUInt32BE(i + 4) : data.readUInt32LE(i + 4);
    s0 = (s0 + x0 + s1) >>> 0;
    s1 = (s1 + x1 + s0) >>> 0;
  }
  return [s0, s1];
}

/** The pages of a database file with its WAL's committed frames applied. */
export interface PageImage {
  pageSize: number;
  /** Usable bytes of a page (page size less the reserved bytes). */
  usable: number;
  pageCount: number;
  /** Page n as it was last committed, or undefined when it is not in the files. */
  page(n: number): Buffer | undefined;
  /** Pages on the freelist (when page 1 could be read): their contents are stale. */
  free: ReadonlySet<number>;
  /** Whether the file header was valid; WAL frames applied. */
  headerOk: boolean;
  walFrames: number;
}

export interface ImageOptions {
  /** Ignore the WAL (e.g. one found not to belong to the file). */
  ignoreWal?: boolean;
}

/**
 * The database as it was last committed, as far as the files still hold it. The page size
 * comes from the file header, else the WAL's header, else SQLite's default; a WAL whose page
 * size differs from a valid file header belongs to another database and is not applied.
 */
export function openImage(
  main: ByteSource,
  wal: ByteSource | undefined,
  options: ImageOptions = {},
): PageImage {
  const fileHeader = parseHeader(main.read(0, 100));
  let walIndex = wal && !options.ignoreWal ? readWal(wal) : undefined;
  if (walIndex && fileHeader && walIndex.pageSize !== fileHeader.pageSize) walIndex = undefined;
  if (walIndex && walIndex.frames.size === 0) walIndex = undefined;
  const pageSize = fileHeader?.pageSize ?? walIndex?.pageSize ?? DEFAULT_PAGE_SIZE;
  const mainPages = Math.floor(main.size / pageSize);
  const pageCount = Math.max(mainPages, walIndex?.dbPages ?? 0);
  const page = (n: number): Buffer | undefined => {
    if (!Number.isInteger(n) || n < 1 || n > pageCount) return undefined;
    const inWal = walIndex?.frames.get(n);
    if (inWal !== undefined && wal) {
      const b = wal.read(inWal, pageSize);
      return b.length === pageSize ? b : undefined;
    }
    if (n > mainPages) return undefined;
    const b = main.read((n - 1) * pageSize, pageSize);
    return b.length === pageSize ? b : undefined;
  };
  // The header as last committed (page 1 may be in the WAL).
  const p1 = page(1);
  const header = (p1 && parseHeader(p1)) ?? fileHeader;
  const usable = pageSize - (header?.pageSize === pageSize ? header.reserved : 0);
  const image: PageImage = {
    pageSize,
    usable,
    pageCount,
    page,
    free: new Set(),
    headerOk: header !== undefined,
    walFrames: walIndex?.frames.size ?? 0,
  };
  if (header) image.free = freelist(image, header.freelistTrunk);
  return image;
}

/** The pages on the freelist, walked from its first trunk page (bounded by the page count). */
function freelist(image: PageImage, firstTrunk: number): Set<number> {
  const free = new Set<number>();
  let trunk = firstTrunk;
  while (trunk >= 2 && trunk <= image.pageCount && !free.has(trunk)) {
    const b = image.page(trunk);
    if (!b) break;
    free.add(trunk);
    const count = b.readUInt32BE(4);
    if (count > (image.usable - 8) / 4) break;
    for (let i = 0; i < count; i++) {
      const leaf = b.readUInt32BE(8 + 4 * i);
      if (leaf >= 2 && leaf <= image.pageCount) free.add(leaf);
    }
    trunk = b.readUInt32BE(0);
  }
  return free;
}

/** One cell of a table leaf page; the payload may continue on overflow pages. */
export interface LeafCell {
  rowid: number;
  payloadSize: number;
  /** The part of the payload stored on the leaf page. */
  local: Buffer;
  /** First overflow page, 0 when the payload is all local. */
  overflow: number;
}

/** Where a page's b-tree header starts: after the file header on page 1. */
function headerAt(pageNo: number): number {
  return pageNo === 1 ? 100 : 0;
}

/** The b-tree page type of a page (0x0D, 0x05, …), or undefined for a missing page. */
export function pageType(image: PageImage, pageNo: number): number | undefined {
  const b = image.page(pageNo);
  return b ? b[headerAt(pageNo)] : undefined;
}

/**
 * The cells of a table leaf page that decode within the page, in pointer order; undefined
 * when the page is not a table leaf (or its header is implausible). A damaged cell is left
 * out, the others are kept.
 */
export function leafCells(image: PageImage, pageNo: number): LeafCell[] | undefined {
  const b = image.page(pageNo);
  if (!b) return undefined;
  const h = headerAt(pageNo);
  if (b[h] !== TABLE_LEAF) return undefined;
  const u = image.usable;
  const count = b.readUInt16BE(h + 3);
  const firstCell = h + 8 + 2 * count;
  if (firstCell > u) return undefined;
  const cells: LeafCell[] = [];
  for (let i = 0; i < count; i++) {
    const p = b.readUInt16BE(h + 8 + 2 * i);
    if (p < firstCell || p >= u) continue;
    const size = readVarint(b, p);
    if (!size) continue;
    const rowid = readVarint(b, p + size[1]);
    if (!rowid) continue;
    const start = p + size[1] + rowid[1];
    const payloadSize = size[0];
    const local = localSize(payloadSize, u);
    const end = start + local + (local < payloadSize ? 4 : 0);
    if (end > u) continue;
    cells.push({
      rowid: rowid[0],
      payloadSize,
      local: b.subarray(start, start + local),
      overflow: local < payloadSize ? b.readUInt32BE(start + local) : 0,
    });
  }
  return cells;
}

/** Bytes of a table leaf cell's payload kept on the page (the rest overflows). */
export function localSize(payload: number, usable: number): number {
  const maxLocal = usable - 35;
  if (payload <= maxLocal) return payload;
  const minLocal = Math.floor(((usable - 12) * 32) / 255) - 23;
  const k = minLocal + ((payload - minLocal) % (usable - 4));
  return k <= maxLocal ? k : minLocal;
}

/** Child pages of a table interior page, or undefined when it is not one. */
export function interiorChildren(image: PageImage, pageNo: number): number[] | undefined {
  const b = image.page(pageNo);
  if (!b) return undefined;
  const h = headerAt(pageNo);
  if (b[h] !== TABLE_INTERIOR) return undefined;
  const count = b.readUInt16BE(h + 3);
  if (h + 12 + 2 * count > image.usable) return undefined;
  const children: number[] = [];
  for (let i = 0; i < count; i++) {
    const p = b.readUInt16BE(h + 12 + 2 * i);
    if (p + 4 <= image.usable) children.push(b.readUInt32BE(p));
  }
  children.push(b.readUInt32BE(h + 8));
  return children.filter((c) => c >= 1 && c <= image.pageCount);
}

/**
 * The leaf pages reachable from a table's root page, as far as its interior pages can be
 * read (each page visited once, so a damaged tree cannot loop).
 */
export function tableLeaves(image: PageImage, root: number): number[] {
  const leaves: number[] = [];
  const seen = new Set<number>();
  const todo = [root];
  while (todo.length > 0 && seen.size < image.pageCount) {
    const n = todo.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    const type = pageType(image, n);
    if (type === TABLE_LEAF) leaves.push(n);
    else if (type === TABLE_INTERIOR) todo.push(...(interiorChildren(image, n) ?? []).reverse());
  }
  return leaves;
}

/**
 * A cell's whole payload, following its overflow chain; undefined when the chain is broken
 * or the payload is over `maxBytes`.
 */
export function cellPayload(
  image: PageImage,
  cell: LeafCell,
  maxBytes: number,
): Buffer | undefined {
  if (cell.payloadSize > maxBytes) return undefined;
  if (cell.overflow === 0) return cell.local.length === cell.payloadSize ? cell.local : undefined;
  const per = image.usable - 4;
  const parts = [cell.local];
  let have = cell.local.length;
  let next = cell.overflow;
  const seen = new Set<number>();
  const maxPages = Math.ceil((cell.payloadSize - have) / per);
  while (have < cell.payloadSize) {
    if (seen.size >= maxPages || next < 2 || seen.has(next)) return undefined;
    seen.add(next);
    const b = image.page(next);
    if (!b) return undefined;
    const take = Math.min(per, cell.payloadSize - have);
    parts.push(b.subarray(4, 4 + take));
    have += take;
    next = b.readUInt32BE(0);
  }
  return Buffer.concat(parts, cell.payloadSize);
}

export interface SchemaEntry {
  type: string;
  name: string;
  rootpage: number;
  sql: string;
}

/** sqlite_master's rows (page 1's tree), as far as they can be read. */
export function readSchema(image: PageImage): SchemaEntry[] {
  const out: SchemaEntry[] = [];
  for (const leaf of tableLeaves(image, 1)) {
    for (const cell of leafCells(image, leaf) ?? []) {
      const payload = cellPayload(image, cell, image.pageSize * 64);
      const v = payload && decodeRecord(payload);
      if (!v || v.length !== 5) continue;
      const [type, name, , rootpage, sql] = v;
      if (typeof type === 'string' && typeof name === 'string' && typeof rootpage === 'number')
        out.push({ type, name, rootpage, sql: typeof sql === 'string' ? sql : '' });
    }
  }
  return out;
}

/** The column names of a CREATE TABLE statement, in order (constraints left out). */
export function tableColumns(sql: string): string[] {
  const open = sql.indexOf('(');
  const close = sql.lastIndexOf(')');
  if (open < 0 || close <= open) return [];
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of sql.slice(open + 1, close)) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  const constraint = /^(PRIMARY|UNIQUE|CHECK|FOREIGN|CONSTRAINT)\b/i;
  return parts
    .map((p) => p.trim())
    .filter((p) => p.length > 0 && !constraint.test(p))
    .map((p) => p.split(/\s+/)[0].replace(/^["`[]|["`\]]$/g, ''));
}
