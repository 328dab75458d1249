/**
 * Modbus PDU (protocol data unit) for the two read functions the agent uses, independent of
 * the transport (MBAP over TCP here; RTU adds address + CRC around the same PDU).
 *
 * Facts (Modbus Application Protocol Specification V1.1b3):
 * - 0x03 Read Holding Registers, 0x04 Read Input Registers.
 *   Request:  function(1) start address(2, BE) quantity(2, BE), quantity 1..125.
 *   Response: function(1) byte count(1) = 2·quantity, then the registers, each 2 bytes BE.
 * - Exception response: function | 0x80, exception code(1):
 *   01 illegal function, 02 illegal data address, 03 illegal data value,
 *   04 server device failure, 05 acknowledge, 06 server busy,
 *   0A gateway path unavailable, 0B gateway target device failed to respond.
 */
import { SensorError } from '../types.js';

export type ReadFunction = 3 | 4;
/** Largest register count one read may ask for (PDU limited to 253 bytes). */
export const MAX_READ_REGISTERS = 125;

export const EXCEPTION_NAMES: Readonly<Record<number, string>> = {
  0x01: 'illegal function',
  0x02: 'illegal data address',
  0x03: 'illegal data value',
  0x04: 'server device failure',
  0x05: 'acknowledge',
  0x06: 'server device busy',
  0x0a: 'gateway path unavailable',
  0x0b: 'gateway target device failed to respond',
};

/** PDU of a 0x03 / 0x04 read request. */
export function encodeReadRequest(fn: ReadFunction, address: number, count: number): Buffer {
  if (!Number.isInteger(address) || address < 0 || address > 0xffff)
    throw new RangeError(`register address ${address} out of 0..65535`);
  if (!Number.isInteger(count) || count < 1 || count > MAX_READ_REGISTERS)
    throw new RangeError(`register count ${count} out of 1..${MAX_READ_REGISTERS}`);
  if (address + count > 0x10000) throw new RangeError('register range passes 65535');
  const pdu = Buffer.alloc(5);
  pdu[0] = fn;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(count, 3);
  return pdu;
}

/** What a server needs from a read request PDU; undefined when it is not a valid one. */
export function decodeReadRequest(
  pdu: Buffer,
): { fn: ReadFunction; address: number; count: number } | undefined {
  if (pdu.length !== 5 || (pdu[0] !== 3 && pdu[0] !== 4)) return undefined;
  return { fn: pdu[0], address: pdu.readUInt16BE(1), count: pdu.readUInt16BE(3) };
}

/** PDU of a read response carrying these 16-bit register values. */
export function encodeReadResponse(fn: ReadFunction, registers: readonly number[]): Buffer {
  const pdu = Buffer.alloc(2 + 2 * registers.length);
  pdu[0] = fn;
  pdu[1] = 2 * registers.length;
  registers.forEach((r, i) => pdu.writeUInt16BE(r & 0xffff, 2 + 2 * i));
  return pdu;
}

/** PDU of an exception response. */
export function encodeException(fn: number, code: number): Buffer {
  return Buffer.from([(fn | 0x80) & 0xff, code & 0xff]);
}

/**
 * Registers from a read response PDU, checked against the request. Exception replies and
 * malformed PDUs reject with SensorError('PROTOCOL') saying what was wrong.
 */
export function decodeReadResponse(pdu: Buffer, fn: ReadFunction, count: number): number[] {
  if (pdu.length < 2)
    throw new SensorError('PROTOCOL', `response PDU too short (${pdu.length} bytes)`);
  if (pdu[0] === (fn | 0x80)) {
    const code = pdu[1];
    const name = EXCEPTION_NAMES[code] ?? 'unknown exception';
    throw new SensorError(
      'PROTOCOL',
      `exception 0x${code.toString(16).padStart(2, '0')} (${name}) to function 0x0${fn}`,
    );
  }
  if (pdu[0] !== fn)
    throw new SensorError(
      'PROTOCOL',
      `response function 0x${pdu[0].toString(16)} to request 0x0${fn}`,
    );
  const byteCount = pdu[1];
  if (byteCount !== 2 * count)
    throw new SensorError('PROTOCOL', `byte count ${byteCount}, expected ${2 * count}`);
  if (pdu.length !== 2 + byteCount)
    throw new SensorError('PROTOCOL', `PDU length ${pdu.length}, byte count says ${2 + byteCount}`);
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(pdu.readUInt16BE(2 + 2 * i));
  return out;
}

/** One register's meaning, as in the config (same model for RTU and TCP). */
export interface RegisterSpec {
  address: number;
  scale: number;
  signed: boolean;
}

/** Physical value of a raw 16-bit register: int16 when signed, times scale. */
export function registerValue(raw: number, spec: Pick<RegisterSpec, 'scale' | 'signed'>): number {
  const word = raw & 0xffff;
  const n = spec.signed && word >= 0x8000 ? word - 0x10000 : word;
  // Round away binary noise such as 245 * 0.1 = 24.500000000000004.
  return Number((n * spec.scale).toPrecision(12));
}

/** Raw register holding a physical value (inverse of registerValue, for simulators). */
export function registerRaw(value: number, spec: Pick<RegisterSpec, 'scale' | 'signed'>): number {
  const n = Math.round(value / spec.scale);
  const lo = spec.signed ? -0x8000 : 0;
  const hi = spec.signed ? 0x7fff : 0xffff;
  return Math.min(hi, Math.max(lo, n)) & 0xffff;
}

/**
 * Read blocks covering the configured registers: adjacent addresses share one request;
 * gaps are not bridged, because devices answer "illegal data address" for unmapped ones.
 */
export function planReads(addresses: readonly number[]): { address: number; count: number }[] {
  const sorted = [...new Set(addresses)].sort((a, b) => a - b);
  const blocks: { address: number; count: number }[] = [];
  for (const a of sorted) {
    const last = blocks[blocks.length - 1];
    if (last && last.address + last.count === a && last.count < MAX_READ_REGISTERS) last.count++;
    else blocks.push({ address: a, count: 1 });
  }
  return blocks;
}
