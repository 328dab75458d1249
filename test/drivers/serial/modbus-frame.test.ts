import { describe, expect, it } from 'vitest';
import {
  ModbusException,
  buildReadRequest,
  buildReadResponse,
  parseReadResponse,
  planReadSpans,
  registerValue,
} from '../../../drivers/serial/modbus-pdu.js';
import {
  characterTimeMs,
  crc16Modbus,
  decodeRtuFrame,
  encodeRtuFrame,
  interFrameSilenceMs,
  readReplyLength,
} from '../../../drivers/serial/modbus-rtu-frame.js';
import { SensorError } from '../../../drivers/types.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('CRC-16/MODBUS', () => {
  it('gives the catalogue check value for "123456789"', () => {
    expect(crc16Modbus(Buffer.from('123456789', 'ascii'))).toBe(0x4b37);
  });

  it('frames the XY-MD02 temperature request byte for byte', () => {
    expect(encodeRtuFrame(1, buildReadRequest(4, 1, 1))).toEqual(hex('01 04 00 01 00 01 60 0A'));
  });

  it('decodes the datasheet reply to 24.5 °C', () => {
    const frame = decodeRtuFrame(hex('01 04 02 00 F5 79 77'));
    expect(frame.unitId).toBe(1);
    const [raw] = parseReadResponse(frame.pdu, 4, 1);
    expect(raw).toBe(0xf5);
    expect(registerValue(raw, { scale: 0.1, signed: true })).toBe(24.5);
  });

  it('rejects a reply whose CRC is off by one bit', () => {
    const bad = hex('01 04 02 00 F5 79 76');
    expect(() => decodeRtuFrame(bad)).toThrow(SensorError);
    try {
      decodeRtuFrame(bad);
    } catch (e) {
      expect((e as SensorError).code).toBe('CRC');
    }
  });

  it('round-trips any frame it encodes', () => {
    const pdu = buildReadResponse(3, [0, 0xffff, 0x1234]);
    expect(decodeRtuFrame(encodeRtuFrame(17, pdu))).toEqual({ unitId: 17, pdu });
  });
});

describe('Modbus PDU', () => {
  it('turns an exception reply into a PROTOCOL fault carrying the code', () => {
    const pdu = decodeRtuFrame(encodeRtuFrame(1, Buffer.from([0x84, 0x02]))).pdu;
    let caught: unknown;
    try {
      parseReadResponse(pdu, 4, 1);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ModbusException);
    expect((caught as ModbusException).code).toBe('PROTOCOL');
    expect((caught as ModbusException).exceptionCode).toBe(2);
  });

  it('rejects a reply with the wrong byte count or function', () => {
    expect(() => parseReadResponse(buildReadResponse(4, [1]), 4, 2)).toThrow(/byte count/);
    expect(() => parseReadResponse(buildReadResponse(3, [1]), 4, 1)).toThrow(/function/);
  });

  it('reads negative temperatures as signed and large values as unsigned', () => {
    expect(registerValue(0xff90, { scale: 0.1, signed: true })).toBe(-11.2);
    expect(registerValue(0xff90, { scale: 0.1, signed: false })).toBe(6542.4);
    expect(registerValue(0x8000, { scale: 1, signed: true })).toBe(-32768);
  });

  it('reads contiguous registers in one request and leaves gaps alone', () => {
    expect(planReadSpans([2, 1])).toEqual([{ start: 1, quantity: 2 }]);
    expect(planReadSpans([1, 2, 10])).toEqual([
      { start: 1, quantity: 2 },
      { start: 10, quantity: 1 },
    ]);
    const many = Array.from({ length: 130 }, (_, i) => i);
    expect(planReadSpans(many).map((s) => s.quantity)).toEqual([125, 5]);
  });

  it('knows the reply length from the first bytes', () => {
    expect(readReplyLength(hex('01'))).toBeUndefined();
    expect(readReplyLength(hex('01 84'))).toBe(5);
    expect(readReplyLength(hex('01 04'))).toBeUndefined();
    expect(readReplyLength(hex('01 04 04'))).toBe(9);
  });

  it('times characters by their bits: 10 for 8N1, 11 for 8E1', () => {
    expect(characterTimeMs({ baudRate: 9600 })).toBeCloseTo(10_000 / 9600, 9);
    expect(characterTimeMs({ baudRate: 9600, parity: 'even' })).toBeCloseTo(11_000 / 9600, 9);
    expect(interFrameSilenceMs({ baudRate: 9600 })).toBeCloseTo(3.5 * (10_000 / 9600), 9);
    expect(interFrameSilenceMs({ baudRate: 115_200 })).toBe(1.75);
  });
});
