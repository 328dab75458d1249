/**
 * SQLite's record format (https://www.sqlite.org/fileformat2.html#record_format), for the
 * salvage's page reader (sqlite-pages.ts): pure functions over bytes, every loop bounded by
 * the buffer.
 *
 * - Varint: 1 to 9 bytes, big-endian, 7 bits per byte while the high bit is set; the ninth
 *   byte gives all 8 bits.
 * - Record: varint header size, one varint serial type per column, then the values:
 *   0 NULL, 1-6 big-endian signed ints of 1, 2, 3, 4, 6, 8 bytes, 7 float64, 8 and 9 the
 *   integers 0 and 1, even N >= 12 a blob of (N - 12) / 2 bytes, odd N >= 13 text of
 *   (N - 13) / 2 bytes. An INTEGER PRIMARY KEY column is stored as NULL (the rowid is it).
 */

export type SqlValue = null | number | bigint | string | Buffer;

/** Read a varint at `at`: [value, bytes used], undefined when it runs past the buffer. */
export function readVarint(b: Buffer, at: number): [number, number] | undefined {
  let v = 0;
  for (let i = 0; i < 8; i++) {
    if (at + i >= b.length) return undefined;
    const byte = b[at + i];
    v = v * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) return [v, i + 1];
  }
  if (at + 8 >= b.length) return undefined;
  return [v * 256 + b[at + 8], 9];
}

/** Bytes a value of this serial type takes; undefined for the reserved types 10 and 11. */
function serialSize(t: number): number | undefined {
  if (t <= 4) return t;
  if (t === 5) return 6;
  if (t === 6 || t === 7) return 8;
  if (t === 8 || t === 9) return 0;
  if (t >= 12) return Math.floor((t - 12) / 2);
  return undefined;
}

/** The serial types of a record, read from its header; undefined when it is malformed. */
export function recordTypes(payload: Buffer): number[] | undefined {
  const hs = readVarint(payload, 0);
  if (!hs || hs[0] < hs[1] || hs[0] > payload.length) return undefined;
  const types: number[] = [];
  for (let at = hs[1]; at < hs[0];) {
    const t = readVarint(payload, at);
    if (!t || serialSize(t[0]) === undefined) return undefined;
    types.push(t[0]);
    at += t[1];
  }
  return types;
}

/** A record's values; undefined when its header or lengths do not fit the payload. */
export function decodeRecord(payload: Buffer): SqlValue[] | undefined {
  const types = recordTypes(payload);
  if (!types) return undefined;
  let at = readVarint(payload, 0)![0];
  const values: SqlValue[] = [];
  for (const t of types) {
    const n = serialSize(t)!;
    if (at + n > payload.length) return undefined;
    values.push(valueOf(payload, at, t, n));
    at += n;
  }
  return at === payload.length ? values : undefined;
}

function valueOf(b: Buffer, at: number, t: number, n: number): SqlValue {
  if (t === 0) return null;
  if (t === 8) return 0;
  if (t === 9) return 1;
  if (t === 7) return b.readDoubleBE(at);
  if (t === 6) {
    const v = b.readBigInt64BE(at);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v;
  }
  if (t <= 5) return b.readIntBE(at, n);
  const bytes = b.subarray(at, at + n);
  return t % 2 === 0 ? bytes : bytes.toString('utf8');
}
