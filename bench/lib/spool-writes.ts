/**
 * What the spool writes per batch, on real telemetry bodies, in this process: the agent's
 * own Spool (agent/publish/spool/spool.ts) in a directory on disk, each batch appended (one
 * commit) and then acknowledged (the DELETE in a commit of its own, as after a PUBACK),
 * `rounds` times; write_bytes of this process over those rounds against the payload bytes.
 * With `compress`, the Spool stores bodies deflated (its default, body-codec.ts); without,
 * as is. With `ackWithNext`, a batch's DELETE rides in the next batch's commit (the Spool's
 * default); without, each ack is committed on its own (what the Spool did before).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { silentLogger } from '../../agent/ops/logger.js';
import { DEFLATE_LEVEL } from '../../agent/publish/spool/body-codec.js';
import { Spool } from '../../agent/publish/spool/spool.js';
import { procIo } from './proc-stats.js';

export interface SpoolWrites {
  payloadBytes: number;
  storedBytes: number;
  rounds: number;
  writeBytesPerBatch: number;
  writesPerPayload: number;
  /** Time to deflate one body, when compressing. */
  deflateUs: number | null;
}

export async function spoolWrites(
  workDir: string,
  body: Buffer,
  options: {
    compress: boolean;
    rounds: number;
    synchronous: 'full' | 'normal';
    /** Acknowledge each batch only with the next append: one commit per batch instead of two. */
    ackWithNext?: boolean;
  },
): Promise<SpoolWrites> {
  const dir = mkdtempSync(path.join(workDir, 'spool-writes-'));
  const spool = Spool.open(
    dir,
    {
      maxBytes: 256 * 1024 * 1024,
      maxAgeSec: 7 * 24 * 3600,
      synchronous: options.synchronous,
      deflateBodies: options.compress,
    },
    silentLogger,
  );
  try {
    const stored = options.compress ? deflateRawSync(body, { level: DEFLATE_LEVEL }) : body;
    // Timed after a first call (zlib's set-up), over 20 bodies.
    const t0 = performance.now();
    for (let i = 0; i < 20 && options.compress; i++) deflateRawSync(body, { level: DEFLATE_LEVEL });
    const deflateUs = options.compress ? Math.round(((performance.now() - t0) * 1000) / 20) : null;
    let previous: number | undefined;
    const cycle = async () => {
      if (options.ackWithNext) {
        // The previous batch's DELETE rides in the same transaction as this INSERT.
        const appended = spool.append(body, Date.now());
        if (previous !== undefined) spool.ack(previous);
        previous = await appended;
        return;
      }
      const seq = await spool.append(body, Date.now());
      spool.ack(seq);
      spool.commit();
    };
    // A few rounds first: the file's first pages and the free list settle.
    for (let i = 0; i < 5; i++) await cycle();
    const io0 = procIo(process.pid);
    for (let i = 0; i < options.rounds; i++) await cycle();
    const io1 = procIo(process.pid);
    const written = io0 && io1 ? io1.writeBytes - io0.writeBytes : NaN;
    return {
      payloadBytes: body.length,
      storedBytes: stored.length,
      rounds: options.rounds,
      writeBytesPerBatch: Math.round(written / options.rounds),
      writesPerPayload: Math.round((written / (options.rounds * body.length)) * 100) / 100,
      deflateUs,
    };
  } finally {
    spool.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
