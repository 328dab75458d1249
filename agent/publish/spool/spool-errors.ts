/** Errors the spool reports to its caller; kept apart so the main thread need not load SQLite. */

/** Another process has the spool open: running anyway would reuse seqs. */
export class SpoolInUseError extends Error {
  override name = 'SpoolInUseError';
}
