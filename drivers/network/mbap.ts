/**
 * Modbus TCP framing: the MBAP header (Modbus Messaging on TCP/IP Implementation Guide
 * V1.0b, section 3.1.3) in front of a PDU.
 *
 *   transaction id (2, BE)  chosen by the client, echoed by the server: matches replies to
 *                           requests, so many requests can be outstanding on one connection
 *   protocol id    (2, BE)  0 = Modbus
 *   length         (2, BE)  bytes that follow: unit id + PDU (2..254)
 *   unit id        (1)      the device behind a gateway (RTU slave address); 0xFF if none
 *
 * No checksum: TCP already guarantees the bytes. Frames can arrive split or coalesced in
 * any way, so the reader reassembles them from a byte stream.
 */

export const MBAP_HEADER_LENGTH = 7;
/** Largest unit id + PDU (a PDU is at most 253 bytes). */
export const MAX_MBAP_LENGTH = 254;

export interface MbapFrame {
  transactionId: number;
  unitId: number;
  pdu: Buffer;
}

export function encodeMbap(frame: MbapFrame): Buffer {
  const { transactionId, unitId, pdu } = frame;
  const out = Buffer.allocUnsafe(MBAP_HEADER_LENGTH + pdu.length);
  encodeMbapInto(out, 0, transactionId, unitId, pdu);
  return out;
}

/** The frame written into `out` at `at` (MBAP_HEADER_LENGTH + pdu.length bytes). */
export function encodeMbapInto(
  out: Buffer,
  at: number,
  transactionId: number,
  unitId: number,
  pdu: Uint8Array,
): void {
  out.writeUInt16BE(transactionId & 0xffff, at);
  out.writeUInt16BE(0, at + 2);
  out.writeUInt16BE(pdu.length + 1, at + 4);
  out[at + 6] = unitId & 0xff;
  out.set(pdu, at + MBAP_HEADER_LENGTH);
}

/** Told each frame MbapReader.read() completes; `pdu` is a view valid during the call only. */
export interface MbapFrameSink {
  onFrame(transactionId: number, unitId: number, pdu: Buffer): void;
}

/** The byte stream no longer makes sense as MBAP; the connection has to be dropped. */
export class MbapFramingError extends Error {
  override name = 'MbapFramingError';
}

/**
 * Reassembles MBAP frames from TCP chunks. A header that cannot be MBAP (protocol id not 0,
 * impossible length) throws MbapFramingError: there is no way to find the next frame.
 */
const EMPTY = Buffer.alloc(0);

export class MbapReader {
  private pending: Buffer = EMPTY;

  /** Feed one chunk; returns every frame it completes, in order, each PDU a copy of its own. */
  push(chunk: Buffer): MbapFrame[] {
    const frames: MbapFrame[] = [];
    this.read(chunk, {
      onFrame: (transactionId, unitId, pdu) =>
        frames.push({ transactionId, unitId, pdu: Buffer.from(pdu) }),
    });
    return frames;
  }

  /**
   * Feed one chunk; tells `sink` every frame it completes, in order, without an object or a
   * copy per frame (the agent's pool decodes each reply in place). A frame that throws in
   * the sink is consumed; the frames after it stay for the next call.
   */
  read(chunk: Buffer, sink: MbapFrameSink): void {
    const pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = pending;
    let at = 0;
    try {
      while (pending.length - at >= MBAP_HEADER_LENGTH) {
        const protocol = pending.readUInt16BE(at + 2);
        const length = pending.readUInt16BE(at + 4);
        if (protocol !== 0) throw new MbapFramingError(`protocol id ${protocol}, expected 0`);
        if (length < 2 || length > MAX_MBAP_LENGTH)
          throw new MbapFramingError(`MBAP length ${length} outside 2..${MAX_MBAP_LENGTH}`);
        const end = at + 6 + length;
        if (pending.length < end) break;
        const start = at;
        at = end;
        sink.onFrame(
          pending.readUInt16BE(start),
          pending[start + 6],
          pending.subarray(start + MBAP_HEADER_LENGTH, end),
        );
      }
    } finally {
      // Buffer.concat never writes into its inputs, so the rest can stay a view of them.
      if (at > 0) this.pending = at === pending.length ? EMPTY : pending.subarray(at);
    }
  }

  /** Bytes of an incomplete frame waiting for more data. */
  get buffered(): number {
    return this.pending.length;
  }
}
