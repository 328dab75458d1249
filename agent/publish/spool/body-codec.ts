/**
 * How a batch body is stored in the spool file: deflated (raw deflate, no header) when that
 * makes it smaller, as is otherwise. Fewer bytes stored means fewer pages written to the SD
 * card per batch; the `enc` column says which, so rows written as is (including every row of
 * a spool file from before bodies were deflated) read back unchanged.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';

/** `enc` of a deflated body; NULL (or any row without the column) is stored as is. */
export const ENC_DEFLATE_RAW = 1;
/**
 * zlib level: the fastest. On telemetry JSON it keeps most of level 6's saving (the disk
 * writes are in whole pages) for a fraction of the CPU on a Pi.
 */
export const DEFLATE_LEVEL = 1;
/** Bodies shorter than this are stored as is: deflating them saves no page. */
export const DEFLATE_MIN_BYTES = 256;

/** A stored body that cannot be inflated: the file is damaged (handled as corruption). */
export class CorruptBodyError extends Error {
  override name = 'CorruptBodyError';
  readonly code = 'SQLITE_CORRUPT_BODY';
}

export function encodeBody(body: Buffer, deflate: boolean): { stored: Buffer; enc: number | null } {
  if (!deflate || body.length < DEFLATE_MIN_BYTES) return { stored: body, enc: null };
  const deflated = deflateRawSync(body, { level: DEFLATE_LEVEL });
  return deflated.length < body.length
    ? { stored: deflated, enc: ENC_DEFLATE_RAW }
    : { stored: body, enc: null };
}

/** The body as it was written; throws CorruptBodyError for a body that cannot be read. */
export function decodeBody(stored: Buffer, enc: unknown, seq: number): Buffer {
  if (enc === null || enc === undefined) return stored;
  if (enc !== ENC_DEFLATE_RAW)
    throw new CorruptBodyError(`spool row ${seq}: unknown body encoding ${String(enc)}`);
  try {
    return inflateRawSync(stored);
  } catch (err) {
    throw new CorruptBodyError(
      `spool row ${seq}: stored body cannot be inflated (${(err as Error).message})`,
    );
  }
}
