/**
 * Replacing a file so that a crash at any moment leaves the whole old or the whole new one:
 * the new text goes to a temporary file in the same directory, is fsynced, renamed over the
 * target (rename is atomic within a file system), and the directory is fsynced so the rename
 * itself survives a power cut.
 */
import {
  closeSync,
  constants,
  fsyncSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** The temporary file's name for `file`: hidden, in the same directory. */
export function tempPathOf(file: string): string {
  return join(dirname(file), `.${basename(file)}.tmp`);
}

/** Makes a rename or unlink in `dir` durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `text` to `file` atomically; the file keeps the old one's mode (else `mode`). */
export function writeFileAtomic(file: string, text: string, mode = 0o600): void {
  let keepMode = mode;
  try {
    keepMode = statSync(file).mode & 0o777;
  } catch {
    // No old file: the default mode.
  }
  const temp = tempPathOf(file);
  try {
    unlinkSync(temp);
  } catch {
    // A leftover of a crash, or none.
  }
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, keepMode);
  try {
    const bytes = Buffer.from(text, 'utf8');
    for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(temp);
    throw err;
  }
  closeSync(fd);
  renameSync(temp, file);
  fsyncDir(dirname(file));
}
