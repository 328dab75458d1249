/**
 * Coalesces the small frames written to a socket within one tick into one write: with
 * ~1,000 Modbus requests leaving at once, one syscall per 12-byte frame would cost more
 * than everything else the agent does for them.
 */
import type { Writable } from 'node:stream';

export class BatchedWriter {
  private queued: Buffer[] = [];
  private scheduled = false;

  constructor(private readonly out: Writable) {}

  write(frame: Buffer): void {
    this.queued.push(frame);
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const frames = this.queued;
    this.queued = [];
    if (this.out.destroyed || frames.length === 0) return;
    this.out.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
  }
}
