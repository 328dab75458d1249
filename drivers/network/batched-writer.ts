/**
 * Coalesces the small frames written to a socket within one tick into one write: with
 * ~1,000 Modbus requests leaving at once, one syscall per 12-byte frame would cost more
 * than everything else the agent does for them. Frames are written straight into the
 * tick's batch buffer (reserve()), so a frame costs no buffer of its own.
 */
import type { Writable } from 'node:stream';

/** First size of a tick's batch; it grows by doubling and starts the next tick at the last size. */
const MIN_BATCH_BYTES = 256;

export class BatchedWriter {
  private batch: Buffer | undefined;
  private length = 0;
  private nextSize = MIN_BATCH_BYTES;
  private scheduled = false;

  constructor(private readonly out: Writable) {}

  /** A frame has been queued this tick and not yet handed to the socket. */
  get pending(): boolean {
    return this.scheduled;
  }

  write(frame: Uint8Array): void {
    const at = this.reserve(frame.length);
    this.buffer.set(frame, at);
  }

  /**
   * Room for `bytes` more in this tick's batch: write them into `buffer` at the returned
   * offset before the tick ends (and before the next reserve(), which may move the batch).
   */
  reserve(bytes: number): number {
    const needed = this.length + bytes;
    let batch = this.batch;
    if (batch === undefined || needed > batch.length) {
      let size = batch === undefined ? this.nextSize : 2 * batch.length;
      while (size < needed) size *= 2;
      const grown = Buffer.allocUnsafe(size);
      if (batch !== undefined) batch.copy(grown, 0, 0, this.length);
      this.batch = batch = grown;
    }
    const at = this.length;
    this.length = needed;
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(flush, this);
    }
    return at;
  }

  /** This tick's batch; valid until the next reserve(). */
  get buffer(): Buffer {
    return this.batch!;
  }

  /** @internal Hand the tick's batch to the socket; the next tick starts a new buffer. */
  flush(): void {
    this.scheduled = false;
    const { batch, length } = this;
    this.batch = undefined;
    this.length = 0;
    if (batch === undefined || length === 0 || this.out.destroyed) return;
    this.nextSize = Math.max(MIN_BATCH_BYTES, length);
    this.out.write(batch.subarray(0, length));
  }
}

function flush(writer: BatchedWriter): void {
  writer.flush();
}
