import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BatchedWriter } from '../../../drivers/network/batched-writer.js';
import { encodeMbap, encodeMbapInto, MBAP_HEADER_LENGTH } from '../../../drivers/network/mbap.js';

/** A real Writable that keeps every chunk it is given, as the socket would get them. */
function collector(): { out: Writable; chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(Buffer.from(chunk));
      done();
    },
  });
  return { out, chunks };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
const frame = (i: number) =>
  encodeMbap({ transactionId: i, unitId: i & 0xff, pdu: Buffer.from([4, 0, i & 0xff, 0, 2]) });

describe('BatchedWriter', () => {
  it('hands the frames of one tick to the stream as one write, in order, byte for byte', async () => {
    const { out, chunks } = collector();
    const writer = new BatchedWriter(out);
    // 300 frames of 12 bytes: the batch outgrows its first buffer several times.
    const frames = Array.from({ length: 300 }, (_, i) => frame(i));
    for (const f of frames) writer.write(f);
    expect(writer.pending).toBe(true);
    await tick();
    expect(writer.pending).toBe(false);
    expect(chunks).toEqual([Buffer.concat(frames)]);
  });

  it('writes reserved room in place, and the next tick is a write of its own', async () => {
    const { out, chunks } = collector();
    const writer = new BatchedWriter(out);
    const pdu = Buffer.from([3, 0, 0x6b, 0, 3]);
    const at = writer.reserve(MBAP_HEADER_LENGTH + pdu.length);
    encodeMbapInto(writer.buffer, at, 1, 0x11, pdu);
    writer.write(frame(2));
    await tick();
    writer.write(frame(3));
    await tick();
    expect(chunks).toEqual([
      Buffer.concat([encodeMbap({ transactionId: 1, unitId: 0x11, pdu }), frame(2)]),
      frame(3),
    ]);
  });

  it('drops what is queued for a stream destroyed before the tick ends', async () => {
    const { out, chunks } = collector();
    const writer = new BatchedWriter(out);
    writer.write(frame(1));
    out.destroy();
    await tick();
    expect(chunks).toEqual([]);
    expect(writer.pending).toBe(false);
  });
});
