import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeMbap, MbapFramingError, MbapReader } from '../../../drivers/network/mbap.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('MBAP', () => {
  it('encodes the implementation guide example (tid 1, unit 0x11, read 3 holding registers)', () => {
    const frame = encodeMbap({ transactionId: 1, unitId: 0x11, pdu: hex('03 006B 0003') });
    expect(frame).toEqual(hex('0001 0000 0006 11 03006B0003'));
  });

  it('reassembles frames split at every byte and coalesced into one chunk', () => {
    const a = encodeMbap({ transactionId: 0xbeef, unitId: 7, pdu: hex('04 02 00F5') });
    const b = encodeMbap({ transactionId: 2, unitId: 8, pdu: hex('84 02') });
    const bytes = Buffer.concat([a, b]);

    const byteWise = new MbapReader();
    const frames = [...bytes].flatMap((byte) => byteWise.push(Buffer.from([byte])));
    expect(frames).toEqual([
      { transactionId: 0xbeef, unitId: 7, pdu: hex('04 02 00F5') },
      { transactionId: 2, unitId: 8, pdu: hex('84 02') },
    ]);
    expect(byteWise.buffered).toBe(0);
    expect(new MbapReader().push(bytes)).toEqual(frames);
  });

  it('yields the same frames however the stream is chunked (property)', () => {
    const frameArb = fc.record({
      transactionId: fc.integer({ min: 0, max: 0xffff }),
      unitId: fc.integer({ min: 0, max: 255 }),
      pdu: fc.uint8Array({ minLength: 1, maxLength: 253 }).map((u) => Buffer.from(u)),
    });
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (frames, cuts) => {
          const bytes = Buffer.concat(frames.map(encodeMbap));
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort(
            (x, y) => x - y,
          );
          const reader = new MbapReader();
          const out = [];
          let from = 0;
          for (const p of [...points, bytes.length]) {
            out.push(...reader.push(bytes.subarray(from, p)));
            from = p;
          }
          expect(out).toEqual(frames);
          expect(reader.buffered).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('read() tells each frame as a view of the stream, and keeps what follows a frame the sink threw on', () => {
    const a = encodeMbap({ transactionId: 1, unitId: 1, pdu: hex('04 02 00F5') });
    const b = encodeMbap({ transactionId: 2, unitId: 2, pdu: hex('04 02 0001') });
    const c = encodeMbap({ transactionId: 3, unitId: 3, pdu: hex('84 02') });
    const reader = new MbapReader();
    const seen: Array<[number, number, string]> = [];
    const sink = {
      onFrame(tid: number, unit: number, pdu: Buffer) {
        seen.push([tid, unit, pdu.toString('hex')]);
        if (tid === 1) throw new Error('decoder failed');
      },
    };
    // The second frame arrives split; the first one's sink throws.
    expect(() => reader.read(Buffer.concat([a, b.subarray(0, 5)]), sink)).toThrow('decoder failed');
    expect(reader.buffered).toBe(5);
    reader.read(Buffer.concat([b.subarray(5), c]), sink);
    expect(seen).toEqual([
      [1, 1, '040200f5'],
      [2, 2, '04020001'],
      [3, 3, '8402'],
    ]);
    expect(reader.buffered).toBe(0);
  });

  it('gives up on a stream that is not MBAP instead of guessing', () => {
    expect(() => new MbapReader().push(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'))).toThrow(
      MbapFramingError,
    );
    expect(() => new MbapReader().push(hex('0001 0000 0001 01'))).toThrow(/length 1/);
    expect(() => new MbapReader().push(hex('0001 0000 0100 01'))).toThrow(/length 256/);
  });

  it('never throws anything but MbapFramingError on random bytes (fuzz)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), (chunks) => {
        const reader = new MbapReader();
        try {
          for (const c of chunks) reader.push(Buffer.from(c));
        } catch (e) {
          expect(e).toBeInstanceOf(MbapFramingError);
        }
      }),
      { numRuns: 300 },
    );
  });
});
