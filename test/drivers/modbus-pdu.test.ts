import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ModbusException,
  decodeReadRequest,
  decodeReadResponse,
  encodeExceptionResponse,
  encodeReadRequest,
  encodeReadResponse,
  planReadSpans,
  registerRaw,
  registerValue,
} from '../../drivers/modbus-pdu.js';
import { SensorError } from '../../drivers/types.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('Modbus read PDUs', () => {
  it('encodes the XY-MD02 request (RTU frame 01 04 00 01 00 01 60 0A without address and CRC)', () => {
    expect(encodeReadRequest(4, 1, 1)).toEqual(hex('04 0001 0001'));
  });

  it('encodes the spec example: read holding registers 108..110', () => {
    expect(encodeReadRequest(3, 0x6b, 3)).toEqual(hex('03 006B 0003'));
  });

  it('rejects counts and addresses the protocol cannot carry', () => {
    expect(() => encodeReadRequest(3, 0, 0)).toThrow(RangeError);
    expect(() => encodeReadRequest(3, 0, 126)).toThrow(RangeError);
    expect(() => encodeReadRequest(3, 0xffff, 2)).toThrow(RangeError);
    expect(() => encodeReadRequest(3, -1, 1)).toThrow(RangeError);
  });

  it('decodes the XY-MD02 reply 04 02 00 F5 to 24.5 °C', () => {
    const [raw] = decodeReadResponse(hex('04 02 00F5'), 4, 1);
    expect(raw).toBe(0xf5);
    expect(registerValue(raw, { scale: 0.1, signed: true })).toBe(24.5);
  });

  it('decodes the spec example reply with three registers', () => {
    expect(decodeReadResponse(hex('03 06 022B 0000 0064'), 3, 3)).toEqual([555, 0, 100]);
  });

  it('turns an exception reply into PROTOCOL naming the exception', () => {
    const err = (() => {
      try {
        decodeReadResponse(hex('84 02'), 4, 1);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(SensorError);
    expect((err as SensorError).code).toBe('PROTOCOL');
    expect((err as SensorError).message).toMatch(/0x02.*illegal data address/);
  });

  it('turns an exception reply into a PROTOCOL fault carrying the code', () => {
    let caught: unknown;
    try {
      decodeReadResponse(Buffer.from([0x84, 0x02]), 4, 1);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ModbusException);
    expect((caught as ModbusException).code).toBe('PROTOCOL');
    expect((caught as ModbusException).exceptionCode).toBe(2);
  });

  it.each([
    ['wrong function', '03 02 00F5', /function 0x3/],
    ['byte count off', '04 04 00F5', /byte count 4, expected 2/],
    ['truncated data', '04 02 00', /PDU length 3/],
    ['too short', '04', /too short/],
  ])('rejects a malformed reply (%s)', (_what, pdu, message) => {
    expect(() => decodeReadResponse(hex(pdu), 4, 1)).toThrow(message);
  });

  it('rejects a reply with the wrong byte count or function', () => {
    expect(() => decodeReadResponse(encodeReadResponse(4, [1]), 4, 2)).toThrow(/byte count/);
    expect(() => decodeReadResponse(encodeReadResponse(3, [1]), 4, 1)).toThrow(/function/);
  });

  it('round-trips responses and requests through the server-side helpers', () => {
    expect(decodeReadResponse(encodeReadResponse(3, [1, 0xffff, 0x8000]), 3, 3)).toEqual([
      1, 0xffff, 0x8000,
    ]);
    expect(decodeReadRequest(encodeReadRequest(4, 300, 7))).toEqual({
      fn: 4,
      start: 300,
      quantity: 7,
    });
    expect(decodeReadRequest(hex('06 0001 0003'))).toBeUndefined();
    expect(encodeExceptionResponse(4, 0x0b)).toEqual(hex('84 0B'));
  });
});

describe('register values', () => {
  it('reads int16 two’s complement when signed and plain uint16 when not', () => {
    expect(registerValue(0xff9c, { scale: 0.1, signed: true })).toBe(-10);
    expect(registerValue(0xff9c, { scale: 0.1, signed: false })).toBe(6543.6);
    expect(registerValue(0x8000, { scale: 1, signed: true })).toBe(-32768);
    expect(registerValue(0x7fff, { scale: 0.01, signed: true })).toBe(327.67);
  });

  it('is every word times the scale rounded to 12 significant digits, for any scale', () => {
    // The reference is the rule itself, computed through a string; registerValue takes a
    // division for scales 1/k, which must give the same double for all 65,536 words.
    const scales = [1, 0.5, 0.25, 0.2, 0.125, 0.1, 0.05, 0.01, 0.004, 0.001, 1e-4, 1e-5, 1e-6];
    const others = [1 / 3, 1 / 64, 1e-7, 0.3, 2, 10, 0.0625];
    for (const scale of [...scales, ...others]) {
      for (const signed of [true, false]) {
        const wrong: number[] = [];
        for (let raw = 0; raw <= 0xffff; raw++) {
          const n = signed && raw >= 0x8000 ? raw - 0x10000 : raw;
          const expected = Number((n * scale).toPrecision(12));
          if (!Object.is(registerValue(raw, { scale, signed }), expected)) wrong.push(raw);
        }
        expect({ scale, signed, wrong: wrong.slice(0, 5) }).toEqual({ scale, signed, wrong: [] });
      }
    }
  });

  it('reads negative temperatures as signed and large values as unsigned', () => {
    expect(registerValue(0xff90, { scale: 0.1, signed: true })).toBe(-11.2);
    expect(registerValue(0xff90, { scale: 0.1, signed: false })).toBe(6542.4);
    expect(registerValue(0x8000, { scale: 1, signed: true })).toBe(-32768);
  });

  it('inverts registerValue for in-range values and clamps the rest', () => {
    for (const v of [-40, -0.1, 0, 24.5, 85.3]) {
      expect(
        registerValue(registerRaw(v, { scale: 0.1, signed: true }), { scale: 0.1, signed: true }),
      ).toBe(v);
    }
    expect(registerRaw(-5, { scale: 1, signed: false })).toBe(0);
    expect(registerRaw(1e9, { scale: 1, signed: true })).toBe(0x7fff);
  });
});

describe('planReadSpans', () => {
  it('reads adjacent registers in one request and does not bridge gaps', () => {
    expect(planReadSpans([2, 1])).toEqual([{ start: 1, quantity: 2 }]);
    expect(planReadSpans([1, 2, 10])).toEqual([
      { start: 1, quantity: 2 },
      { start: 10, quantity: 1 },
    ]);
    expect(planReadSpans([1, 2, 10, 11, 11, 40])).toEqual([
      { start: 1, quantity: 2 },
      { start: 10, quantity: 2 },
      { start: 40, quantity: 1 },
    ]);
  });

  it('splits runs longer than 125 registers', () => {
    const many = Array.from({ length: 130 }, (_, i) => i);
    expect(planReadSpans(many).map((s) => s.quantity)).toEqual([125, 5]);
    const spans = planReadSpans(Array.from({ length: 300 }, (_, i) => i));
    expect(spans.map((s) => s.quantity)).toEqual([125, 125, 50]);
    expect(spans.map((s) => s.start)).toEqual([0, 125, 250]);
  });
});

describe('decodeReadResponse on random bytes (fuzz)', () => {
  it('returns the asked-for count of 16-bit registers or throws SensorError, nothing else', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 260 }),
        fc.constantFrom<3 | 4>(3, 4),
        fc.integer({ min: 1, max: 125 }),
        (bytes, fn, count) => {
          try {
            const regs = decodeReadResponse(Buffer.from(bytes), fn, count);
            expect(regs).toHaveLength(count);
            for (const r of regs) expect(r >>> 16).toBe(0);
          } catch (e) {
            expect(e).toBeInstanceOf(SensorError);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
