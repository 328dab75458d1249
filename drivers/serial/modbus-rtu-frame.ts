/**
 * Modbus RTU framing (Modbus over Serial Line v1.02): ADU = unit id(1) PDU CRC(2).
 * - CRC-16/MODBUS: init 0xFFFF, reflected polynomial 0xA001, appended low byte first.
 *   Check value: "123456789" → 0x4B37. Request `01 04 00 01 00 01 60 0A`; reply
 *   `01 04 02 00 F5 79 77` (input register 1 = 245 = 24.5 °C on an XY-MD02).
 * - Frames are delimited by silence: at least 3.5 character times between frames; above
 *   19200 baud the spec fixes it at 1.75 ms. One character is start + data + parity + stop
 *   bits: 10 bits for 8N1, 11 for 8E1 / 8O1 / 8N2.
 */
import { SensorError } from '../types.js';

export function crc16Modbus(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/** unit id + PDU + CRC (low byte first). */
export function encodeRtuFrame(unitId: number, pdu: Uint8Array): Buffer {
  const frame = Buffer.alloc(pdu.length + 3);
  frame[0] = unitId;
  frame.set(pdu, 1);
  const crc = crc16Modbus(frame.subarray(0, pdu.length + 1));
  frame.writeUInt16LE(crc, pdu.length + 1);
  return frame;
}

export interface RtuFrame {
  unitId: number;
  pdu: Buffer;
}

/** Checks length and CRC; throws SensorError('PROTOCOL' | 'CRC'). */
export function decodeRtuFrame(frame: Uint8Array): RtuFrame {
  if (frame.length < 4)
    throw new SensorError('PROTOCOL', `RTU frame too short (${frame.length} B)`);
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  const expected = crc16Modbus(b.subarray(0, b.length - 2));
  const got = b.readUInt16LE(b.length - 2);
  if (expected !== got) {
    throw new SensorError(
      'CRC',
      `CRC mismatch: frame says 0x${got.toString(16).padStart(4, '0')}, computed 0x${expected.toString(16).padStart(4, '0')}`,
    );
  }
  return { unitId: b[0], pdu: Buffer.from(b.subarray(1, b.length - 2)) };
}

/**
 * Total length of a reply to a read (0x03 / 0x04) once enough of it has arrived to tell,
 * else undefined: exception replies are 5 bytes, normal ones 5 + byte count.
 */
export function readReplyLength(partial: Uint8Array): number | undefined {
  if (partial.length < 2) return undefined;
  if (partial[1] & 0x80) return 5;
  if (partial.length < 3) return undefined;
  return 5 + partial[2];
}

export interface CharacterFormat {
  baudRate: number;
  dataBits?: number;
  parity?: 'none' | 'even' | 'odd' | string;
  stopBits?: number;
}

export function bitsPerCharacter(f: CharacterFormat): number {
  const parity = f.parity && f.parity !== 'none' ? 1 : 0;
  return 1 + (f.dataBits ?? 8) + parity + (f.stopBits ?? 1);
}

/** Time to transmit one character, ms. */
export function characterTimeMs(f: CharacterFormat): number {
  return (bitsPerCharacter(f) * 1000) / f.baudRate;
}

/** Minimum silence between two frames, ms. */
export function interFrameSilenceMs(f: CharacterFormat): number {
  return f.baudRate > 19_200 ? 1.75 : 3.5 * characterTimeMs(f);
}
