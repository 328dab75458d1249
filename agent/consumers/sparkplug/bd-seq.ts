/**
 * The Sparkplug birth/death sequence number (bdSeq), kept in a file in the state directory so
 * each MQTT session gets a new one, across restarts too: a host tells a stale NDEATH (the Will
 * of an older session, delivered late) from the current one by it. 0-255, wrapping. A session
 * is a CONNECT sent (tck-id-topics-nbirth-bdseq-increment): an attempt that never reached the
 * broker does not take one (node.ts).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../ops/logger.js';

export const BD_SEQ_FILE = 'bdseq';

export class BdSeqFile {
  private readonly path: string;

  constructor(
    dir: string,
    private readonly logger: Logger,
  ) {
    this.path = join(dir, BD_SEQ_FILE);
  }

  /**
   * The bdSeq for the session about to connect; the file then holds the next one. A missing or
   * unreadable file starts at 0; a file that cannot be written is logged and the value still
   * used (the next start may then repeat it, which a host treats like a restart).
   */
  take(): number {
    const current = this.read();
    this.write((current + 1) % 256);
    return current;
  }

  /** The bdSeq the next session takes: what the file holds, 0 when it holds none. */
  read(): number {
    try {
      const n = Number(readFileSync(this.path, 'utf8').trim());
      if (Number.isInteger(n) && n >= 0 && n <= 255) return n;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.logger.warn(
          { file: this.path, err: (err as Error).message },
          'sparkplug bdSeq file unreadable; using 0',
        );
      }
    }
    return 0;
  }

  /** Keeps `next` as the bdSeq of the next session (written whole, by rename). */
  write(next: number): void {
    try {
      const tmp = `${this.path}.tmp`;
      writeFileSync(tmp, `${next}\n`, { mode: 0o600 });
      renameSync(tmp, this.path);
    } catch (err) {
      this.logger.warn(
        { file: this.path, err: (err as Error).message },
        'sparkplug bdSeq file not writable',
      );
    }
  }
}
