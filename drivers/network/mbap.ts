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
  out.writeUInt16BE(transactionId & 0xffff, 0);
  out.writeUInt16BE(0, 2);
  out.writeUInt16BE(pdu.length + 1, 4);
  out[6] = unitId & 0xff;
  pdu.copy(out, MBAP_HEADER_LENGTH);
  return out;
}

/** The byte stream no longer makes sense as MBAP; the connection has to be dropped. */
export class MbapFramingError extends Error {
  override name = 'MbapFramingError';
}

/**
 * Reassembles MBAP frames from TCP chunks. A header that cannot be MBAP (protocol id not 0,
 * impossible length) throws MbapFramingError: there is no way to find the next frame.
 */
export class MbapReader {
  private pending: Buffer = Buffer.alloc(0);

  /** Feed one chunk; returns every frame it completes, in order. */
  push(chunk: Buffer): MbapFrame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: MbapFrame[] = [];
    let at = 0;
    while (this.pending.length - at >= MBAP_HEADER_LENGTH) {
      const protocol = this.pending.readUInt16BE(at + 2);
      const length = this.pending.readUInt16BE(at + 4);
      if (protocol !== 0) throw new MbapFramingError(`protocol id ${protocol}, expected 0`);
      if (length < 2 || length > MAX_MBAP_LENGTH)
        throw new MbapFramingError(`MBAP length ${length} outside 2..${MAX_MBAP_LENGTH}`);
      const end = at + 6 + length;
      if (this.pending.length < end) break;
      frames.push({
        transactionId: this.pending.readUInt16BE(at),
        unitId: this.pending[at + 6],
        // Copy: the pending buffer is reused/concatenated on the next chunk.
        pdu: Buffer.from(this.pending.subarray(at + MBAP_HEADER_LENGTH, end)),
      });
      at = end;
    }
    this.pending = at === 0 ? this.pending : this.pending.subarray(at);
    return frames;
  }

  /** Bytes of an incomplete frame waiting for more data. */
  get buffered(): number {
    return this.pending.length;
  }
}
