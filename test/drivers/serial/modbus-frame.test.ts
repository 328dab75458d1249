import { describe, expect, it } from 'vitest';
import {
  decodeReadResponse,
  encodeReadRequest,
  encodeReadResponse,
  registerValue,
} from '../../../drivers/modbus-pdu.js';
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
    expect(encodeRtuFrame(1, encodeReadRequest(4, 1, 1))).toEqual(hex('01 04 00 01 00 01 60 0A'));
  });

  it('decodes the datasheet reply to 24.5 °C', () => {
    const frame = decodeRtuFrame(hex('01 04 02 00 F5 79 77'));
    expect(frame.unitId).toBe(1);
    const [raw] = decodeReadResponse(frame.pdu, 4, 1);
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
    const pdu = encodeReadResponse(3, [0, 0xffff, 0x1234]);
    expect(decodeRtuFrame(encodeRtuFrame(17, pdu))).toEqual({ unitId: 17, pdu });
  });
});

// The PDU itself (exceptions, byte counts, values, spans) is in test/drivers/modbus-pdu.test.ts.
describe('Modbus RTU reply length and timing', () => {
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
