/**
 * Modbus PDU helpers shared by RTU (drivers/serial/modbus-rtu.ts), Modbus TCP and the
 * simulators: build and parse "read holding / input registers" (0x03 / 0x04) requests and
 * replies, exception replies, and the register → value mapping from the config.
 *
 * Modbus Application Protocol v1.1b3:
 * - request  PDU: fn(1) start(2, big-endian) quantity(2, 1..125)
 * - response PDU: fn(1) byteCount(1) = 2·quantity, registers(2 each, big-endian)
 * - exception PDU: fn | 0x80 (1), exception code (1): 01 illegal function, 02 illegal data
 *   address, 03 illegal data value, 04 server device failure, 06 busy, 0B gateway target
 *   failed to respond.
 */
import { SensorError, type Quantity } from '../types.js';

export type ModbusReadFunction = 3 | 4;
/** Modbus allows at most 125 registers in one read. */
export const MAX_READ_REGISTERS = 125;

export const EXCEPTION_NAMES: Readonly<Record<number, string>> = {
  0x01: 'illegal function',
  0x02: 'illegal data address',
  0x03: 'illegal data value',
  0x04: 'server device failure',
  0x05: 'acknowledge',
  0x06: 'server device busy',
  0x0a: 'gateway path unavailable',
  0x0b: 'gateway target failed to respond',
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

export interface ReadRequest {
  fn: number;
  start: number;
  quantity: number;
}

export function buildReadRequest(fn: ModbusReadFunction, start: number, quantity: number): Buffer {
  if (!Number.isInteger(start) || start < 0 || start > 0xffff)
    throw new RangeError(`register address out of range: ${start}`);
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > MAX_READ_REGISTERS)
    throw new RangeError(`register quantity must be 1..${MAX_READ_REGISTERS}: ${quantity}`);
  const pdu = Buffer.alloc(5);
  pdu[0] = fn;
  pdu.writeUInt16BE(start, 1);
  pdu.writeUInt16BE(quantity, 3);
  return pdu;
}

/** Server side (simulators): undefined when the PDU is not a well-formed read request. */
export function parseReadRequest(pdu: Uint8Array): ReadRequest | undefined {
  if (pdu.length !== 5) return undefined;
  const b = Buffer.from(pdu.buffer, pdu.byteOffset, pdu.byteLength);
  return { fn: b[0], start: b.readUInt16BE(1), quantity: b.readUInt16BE(3) };
}

/** Server side: a read reply carrying these raw 16-bit register values. */
export function buildReadResponse(fn: number, registers: readonly number[]): Buffer {
  const pdu = Buffer.alloc(2 + registers.length * 2);
  pdu[0] = fn;
  pdu[1] = registers.length * 2;
  registers.forEach((r, i) => pdu.writeUInt16BE(r & 0xffff, 2 + i * 2));
  return pdu;
}

export function buildExceptionResponse(fn: number, exceptionCode: number): Buffer {
  return Buffer.from([(fn | 0x80) & 0xff, exceptionCode & 0xff]);
}

/**
 * Client side: the raw register values of a reply to `buildReadRequest(fn, _, quantity)`.
 * Throws ModbusException for an exception reply and SensorError('PROTOCOL') for anything
 * malformed (wrong function, wrong byte count, truncated).
 */
export function parseReadResponse(
  pdu: Uint8Array,
  fn: ModbusReadFunction,
  quantity: number,
): number[] {
  if (pdu.length < 2) throw new SensorError('PROTOCOL', `reply PDU too short (${pdu.length} B)`);
  if (pdu[0] === (fn | 0x80)) throw new ModbusException(fn, pdu[1]);
  if (pdu[0] !== fn)
    throw new SensorError('PROTOCOL', `reply to function ${fn} has function ${pdu[0]}`);
  const byteCount = pdu[1];
  if (byteCount !== quantity * 2 || pdu.length !== 2 + byteCount) {
    throw new SensorError(
      'PROTOCOL',
      `reply byte count ${byteCount} (PDU ${pdu.length} B) for ${quantity} registers`,
    );
  }
  const out: number[] = [];
  for (let i = 0; i < quantity; i++) out.push((pdu[2 + 2 * i] << 8) | pdu[3 + 2 * i]);
  return out;
}

/** How one register maps to a quantity (config.registers[]). */
export interface RegisterMap {
  quantity: Quantity;
  address: number;
  scale: number;
  signed: boolean;
}

/**
 * Raw 16-bit register → engineering value. Rounded to 10 significant digits so that
 * 245 · 0.1 is 24.5, not 24.500000000000004.
 */
export function registerValue(raw: number, map: Pick<RegisterMap, 'scale' | 'signed'>): number {
  const word = raw & 0xffff;
  const n = map.signed && word >= 0x8000 ? word - 0x10000 : word;
  return Number((n * map.scale).toPrecision(10));
}

/** One read request covering some of the configured registers. */
export interface ReadSpan {
  start: number;
  quantity: number;
}

/**
 * Groups the configured register addresses into as few reads as possible without reading
 * registers nobody asked for (a gap may be an illegal address on the device): contiguous
 * runs, each at most 125 registers.
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
