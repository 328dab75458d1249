/**
 * Modbus PDU (protocol data unit), shared by RTU (drivers/serial/modbus-rtu.ts: address +
 * CRC around it), Modbus TCP (drivers/network/modbus-tcp.ts: MBAP header in front of it) and
 * both simulators: build and parse "read holding / input registers" (0x03 / 0x04) requests
 * and replies, exception replies, the register ↔ value mapping from the config, and the plan
 * of which contiguous spans to read.
 *
 * Modbus Application Protocol Specification V1.1b3:
 * - request  PDU: fn(1) start address(2, big-endian) quantity(2, big-endian), quantity 1..125.
 * - response PDU: fn(1) byte count(1) = 2·quantity, then the registers, each 2 bytes BE.
 * - exception PDU: fn | 0x80 (1), exception code (1): 01 illegal function, 02 illegal data
 *   address, 03 illegal data value, 04 server device failure, 05 acknowledge, 06 server
 *   busy, 0A gateway path unavailable, 0B gateway target device failed to respond.
 */
import { SensorError, type Quantity } from './types.js';

/** 0x03 Read Holding Registers, 0x04 Read Input Registers. */
export type ModbusReadFunction = 3 | 4;
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

/** An exception reply from the device: a PROTOCOL fault that keeps the exception code. */
export class ModbusException extends SensorError {
  constructor(
    readonly functionCode: number,
    readonly exceptionCode: number,
  ) {
    const name = EXCEPTION_NAMES[exceptionCode] ?? 'unknown exception';
    super(
      'PROTOCOL',
      `Modbus exception 0x${exceptionCode.toString(16).padStart(2, '0')} (${name}) to function 0x${functionCode.toString(16).padStart(2, '0')}`,
    );
    this.name = 'ModbusException';
  }
}

/** A read request as a server sees it. */
export interface ReadRequest {
  fn: ModbusReadFunction;
  start: number;
  quantity: number;
}

/** Client side: PDU of a 0x03 / 0x04 read request. */
export function encodeReadRequest(fn: ModbusReadFunction, start: number, quantity: number): Buffer {
  if (!Number.isInteger(start) || start < 0 || start > 0xffff)
    throw new RangeError(`register address ${start} out of 0..65535`);
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > MAX_READ_REGISTERS)
    throw new RangeError(`register count ${quantity} out of 1..${MAX_READ_REGISTERS}`);
  if (start + quantity > 0x10000) throw new RangeError('register range passes 65535');
  // allocUnsafe: a view on Node's shared 8 KB pool, not an ArrayBuffer of its own per sensor.
  const pdu = Buffer.allocUnsafe(5);
  pdu[0] = fn;
  pdu.writeUInt16BE(start, 1);
  pdu.writeUInt16BE(quantity, 3);
  return pdu;
}

/** Server side (simulators): undefined when the PDU is not a well-formed 0x03 / 0x04 request. */
export function decodeReadRequest(pdu: Uint8Array): ReadRequest | undefined {
  if (pdu.length !== 5 || (pdu[0] !== 3 && pdu[0] !== 4)) return undefined;
  return { fn: pdu[0], start: (pdu[1] << 8) | pdu[2], quantity: (pdu[3] << 8) | pdu[4] };
}

/** Server side: a read reply carrying these raw 16-bit register values. */
export function encodeReadResponse(fn: ModbusReadFunction, registers: readonly number[]): Buffer {
  const pdu = Buffer.alloc(2 + 2 * registers.length);
  pdu[0] = fn;
  pdu[1] = 2 * registers.length;
  registers.forEach((r, i) => pdu.writeUInt16BE(r & 0xffff, 2 + 2 * i));
  return pdu;
}

/** Server side: PDU of an exception reply. */
export function encodeExceptionResponse(fn: number, exceptionCode: number): Buffer {
  return Buffer.from([(fn | 0x80) & 0xff, exceptionCode & 0xff]);
}

/**
 * Client side: the raw register values of a reply to `encodeReadRequest(fn, _, quantity)`.
 * Throws ModbusException (a SensorError('PROTOCOL') carrying the code) for an exception
 * reply and SensorError('PROTOCOL') saying what was wrong for anything malformed (wrong
 * function, wrong byte count, truncated).
 */
export function decodeReadResponse(
  pdu: Uint8Array,
  fn: ModbusReadFunction,
  quantity: number,
): number[] {
  if (pdu.length < 2)
    throw new SensorError('PROTOCOL', `response PDU too short (${pdu.length} bytes)`);
  if (pdu[0] === (fn | 0x80)) throw new ModbusException(fn, pdu[1]);
  if (pdu[0] !== fn)
    throw new SensorError(
      'PROTOCOL',
      `response function 0x${pdu[0].toString(16)} to request 0x0${fn}`,
    );
  const byteCount = pdu[1];
  if (byteCount !== 2 * quantity)
    throw new SensorError('PROTOCOL', `byte count ${byteCount}, expected ${2 * quantity}`);
  if (pdu.length !== 2 + byteCount)
    throw new SensorError('PROTOCOL', `PDU length ${pdu.length}, byte count says ${2 + byteCount}`);
  const out: number[] = [];
  for (let i = 0; i < quantity; i++) out.push((pdu[2 + 2 * i] << 8) | pdu[3 + 2 * i]);
  return out;
}

/** How one register maps to a quantity (config.registers[], same model for RTU and TCP). */
export interface RegisterMap {
  quantity: Quantity;
  address: number;
  scale: number;
  signed: boolean;
}

/**
 * Raw 16-bit register → engineering value: int16 when signed, times scale. Rounded to 12
 * significant digits so that 245 · 0.1 is 24.5, not 24.500000000000004. A scale of 1/k
 * with k a divisor of 10^6 (1, 0.5, 0.1, 0.01, …) divides by k instead: n / k then has at
 * most 11 significant digits, so the division's nearest double is that same value, without
 * formatting a string (every register of every round goes through here).
 */
export function registerValue(raw: number, map: Pick<RegisterMap, 'scale' | 'signed'>): number {
  const word = raw & 0xffff;
  const n = map.signed && word >= 0x8000 ? word - 0x10000 : word;
  const inverse = 1 / map.scale;
  const k = Math.round(inverse);
  if (k >= 1 && 1e6 % k === 0 && Math.abs(inverse - k) <= 1e-9 * k) return n / k;
  return Number((n * map.scale).toPrecision(12));
}

/** Engineering value → raw register (inverse of registerValue, for simulators); clamps. */
export function registerRaw(value: number, map: Pick<RegisterMap, 'scale' | 'signed'>): number {
  const n = Math.round(value / map.scale);
  const lo = map.signed ? -0x8000 : 0;
  const hi = map.signed ? 0x7fff : 0xffff;
  return Math.min(hi, Math.max(lo, n)) & 0xffff;
}

/** One read request covering some of the configured registers. */
export interface ReadSpan {
  start: number;
  quantity: number;
}

/**
 * Groups the configured register addresses into as few reads as possible without reading
 * registers nobody asked for (devices answer "illegal data address" for unmapped ones, so
 * gaps are not bridged): contiguous runs, each at most 125 registers.
 */
export function planReadSpans(addresses: readonly number[]): ReadSpan[] {
  const sorted = [...new Set(addresses)].sort((a, b) => a - b);
  const spans: ReadSpan[] = [];
  for (const a of sorted) {
    const last = spans[spans.length - 1];
    if (last && a === last.start + last.quantity && last.quantity < MAX_READ_REGISTERS)
      last.quantity++;
    else spans.push({ start: a, quantity: 1 });
  }
  return spans;
}
