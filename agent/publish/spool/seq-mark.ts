/**
 * The seq high-water mark: a small file beside the spool database (`spool.seq`) that the
 * next start reads, so seq numbering survives a database that is full, unwritable, corrupt
 * or gone.
 *
 * - Fixed size and allocated when created, then only overwritten in place: rewriting an
 *   allocated block needs no free space, so the mark can still be written on a full disk.
 * - Two slots written alternately, each with a generation and a CRC: a write torn by a power
 *   cut damages one slot, and the other still holds the previous mark.
 * - Every write is fsynced before it returns; a caller reveals nothing on the strength of
 *   a mark that was not written.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

export const MARK_FILE = 'spool.seq';
const FILE_BYTES = 4096;
/** Slot offsets: separate 512-byte sectors, so one torn sector write spoils one slot only. */
const SLOTS = [0, 512] as const;
const MAGIC = 'EASEQ001';
const RECORD_BYTES = 64;
/** unsentFrom, u32 (0 = unknown or too large): the bytes after the u64 fields. */
const UNSENT_AT = 56;
const CRC_AT = RECORD_BYTES - 4;

export interface SeqMark {
  /** No seq above this was ever assigned (written ahead). */
  ceiling: number;
  /**
   * Highest seq that may have been handed out to the publisher while its batch was in memory
   * only; 0 when every assigned seq is in the database.
   */
  revealed: number;
  /** Batches dropped, ever (the same total as the database's, which may be unwritable). */
  dropped: number;
  /** Of the seqs in (stored, revealed], how many `dropped` already counts. */
  revealedCounted: number;
  /** The database's last seq when this mark was written. */
  stored: number;
  /**
   * Every seq below this was settled (acknowledged, dropped or set aside) when this mark was
   * written; 0 when unknown. A lower bound: what a lost database held starts at or above it.
   */
  unsentFrom: number;
}

export const EMPTY_MARK: SeqMark = {
  ceiling: 0,
  revealed: 0,
  dropped: 0,
  revealedCounted: 0,
  stored: 0,
  unsentFrom: 0,
};

export type MarkRead =
  | { state: 'missing' }
  | { state: 'ok'; mark: SeqMark }
  /** The file is there but neither slot is valid. */
  | { state: 'corrupt' }
  | { state: 'unreadable'; error: NodeJS.ErrnoException };

/** Read the mark in `dir` without creating or changing anything. */
export function readMark(dir: string): MarkRead {
  let fd: number;
  try {
    fd = openSync(join(dir, MARK_FILE), constants.O_RDONLY);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return e.code === 'ENOENT' ? { state: 'missing' } : { state: 'unreadable', error: e };
  }
  try {
    const best = readSlots(fd);
    return best ? { state: 'ok', mark: best.mark } : { state: 'corrupt' };
  } catch (err) {
    return { state: 'unreadable', error: err as NodeJS.ErrnoException };
  } finally {
    closeSync(fd);
  }
}

export class SeqMarkFile {
  private generation: number;

  private constructor(
    private fd: number | undefined,
    generation: number,
  ) {
    this.generation = generation;
  }

  /**
   * Open the mark file for writing, creating and allocating it (fsynced, directory too) when
   * missing. Throws the file system's error.
   */
  static open(dir: string): SeqMarkFile {
    const path = join(dir, MARK_FILE);
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      if (fstatSync(fd).size < FILE_BYTES) {
        fchmodSync(fd, 0o600);
        const existing = readSlots(fd);
        const zero = Buffer.alloc(FILE_BYTES);
        writeSync(fd, zero, 0, FILE_BYTES, 0);
        fsyncSync(fd);
        syncDir(dir);
        const file = new SeqMarkFile(fd, existing?.generation ?? 0);
        if (existing) file.write(existing.mark);
        return file;
      }
      return new SeqMarkFile(fd, readSlots(fd)?.generation ?? 0);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Overwrite the older slot with `mark` and fsync. Throws the file system's error. */
  write(mark: SeqMark): void {
    if (this.fd === undefined) throw new Error('seq mark file is closed');
    const generation = this.generation + 1;
    const record = encode(mark, generation);
    writeSync(this.fd, record, 0, RECORD_BYTES, SLOTS[generation % 2]);
    fdatasyncSync(this.fd);
    this.generation = generation;
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } finally {
      this.fd = undefined;
    }
  }
}

function encode(mark: SeqMark, generation: number): Buffer {
  const b = Buffer.alloc(RECORD_BYTES);
  b.write(MAGIC, 0, 'latin1');
  const fields = [
    generation,
    mark.ceiling,
    mark.revealed,
    mark.dropped,
    mark.revealedCounted,
    mark.stored,
  ];
  fields.forEach((v, i) => b.writeBigUInt64LE(BigInt(Math.max(0, Math.trunc(v))), 8 + i * 8));
  const unsent = Math.trunc(mark.unsentFrom);
  b.writeUInt32LE(unsent > 0 && unsent <= 0xffffffff ? unsent : 0, UNSENT_AT);
  b.writeUInt32LE(crc32(b.subarray(0, CRC_AT)), CRC_AT);
  return b;
}

function decode(b: Buffer): { mark: SeqMark; generation: number } | undefined {
  if (b.length < RECORD_BYTES || b.toString('latin1', 0, 8) !== MAGIC) return undefined;
  if (b.readUInt32LE(CRC_AT) !== crc32(b.subarray(0, CRC_AT))) return undefined;
  const n = (i: number) => Number(b.readBigUInt64LE(8 + i * 8));
  return {
    generation: n(0),
    mark: {
      ceiling: n(1),
      revealed: n(2),
      dropped: n(3),
      revealedCounted: n(4),
      stored: n(5),
      unsentFrom: b.readUInt32LE(UNSENT_AT),
    },
  };
}

/** The valid slot with the highest generation, if any. */
function readSlots(fd: number): { mark: SeqMark; generation: number } | undefined {
  let best: { mark: SeqMark; generation: number } | undefined;
  for (const offset of SLOTS) {
    const b = Buffer.alloc(RECORD_BYTES);
    const n = readSync(fd, b, 0, RECORD_BYTES, offset);
    const slot = decode(b.subarray(0, n));
    if (slot && (!best || slot.generation > best.generation)) best = slot;
  }
  return best;
}

/** fsync a directory so a newly created entry in it survives a power cut. */
export function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, constants.O_RDONLY);
    fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a directory; the entry is then as durable as they make it.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
