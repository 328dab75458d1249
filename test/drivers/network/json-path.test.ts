import { describe, expect, it } from 'vitest';
import { numericValue, parseJsonPath, valueAtPath } from '../../../drivers/network/json-path.js';

describe('parseJsonPath', () => {
  it.each([
    ['data.temperature', ['data', 'temperature']],
    ['sensors[0].t', ['sensors', 0, 't']],
    ['[2].value', [2, 'value']],
    ['a.b[1][0]', ['a', 'b', 1, 0]],
    ['StatusSNS.DS18B20.Temperature', ['StatusSNS', 'DS18B20', 'Temperature']],
    ['temp-1', ['temp-1']],
  ])('parses %s', (path, expected) => {
    expect(parseJsonPath(path)).toEqual(expected);
  });

  it.each([
    ['', /empty path/],
    ['.a', /starts with "."/],
    ['a..b', /empty key/],
    ['a.', /empty key/],
    ['a[', /missing "]"/],
    ['a[-1]', /"-1" is not a non-negative integer/],
    ['a[x]', /"x"/],
    ['a]', /unexpected "]"/],
  ])('rejects %j', (path, message) => {
    expect(() => parseJsonPath(path)).toThrow(message);
  });
});

describe('valueAtPath', () => {
  const doc = { data: { temperature: 21.5, list: [1, { t: -3 }] }, sensors: [{ t: 19 }] };

  it('walks keys and indexes', () => {
    expect(valueAtPath(doc, parseJsonPath('data.temperature'))).toEqual({
      found: true,
      value: 21.5,
    });
    expect(valueAtPath(doc, parseJsonPath('sensors[0].t'))).toEqual({ found: true, value: 19 });
    expect(valueAtPath(doc, parseJsonPath('data.list[1].t'))).toEqual({ found: true, value: -3 });
    expect(valueAtPath([5, 6], parseJsonPath('[1]'))).toEqual({ found: true, value: 6 });
  });

  it('says where the path stops', () => {
    expect(valueAtPath(doc, parseJsonPath('data.humidity'))).toEqual({
      found: false,
      reason: 'no "data.humidity"',
    });
    expect(valueAtPath(doc, parseJsonPath('sensors[3].t'))).toEqual({
      found: false,
      reason: 'sensors has 1 elements, no [3]',
    });
    expect(valueAtPath(doc, parseJsonPath('data[0]'))).toEqual({
      found: false,
      reason: 'data is not an array',
    });
    expect(valueAtPath(doc, parseJsonPath('data.temperature.x'))).toEqual({
      found: false,
      reason: 'data.temperature is not an object',
    });
    expect(valueAtPath(null, parseJsonPath('a'))).toEqual({
      found: false,
      reason: 'body is not an object',
    });
  });

  it('does not find inherited properties', () => {
    expect(valueAtPath({}, parseJsonPath('constructor')).found).toBe(false);
    expect(valueAtPath({}, parseJsonPath('__proto__')).found).toBe(false);
  });
});

describe('numericValue', () => {
  it('accepts finite numbers and strings holding exactly one number', () => {
    expect(numericValue(21.5)).toBe(21.5);
    expect(numericValue(-0.25)).toBe(-0.25);
    expect(numericValue(' 23.5 ')).toBe(23.5);
    expect(numericValue('-1e2')).toBe(-100);
  });

  it.each([
    ['n/a'],
    [''],
    ['12abc'],
    [true],
    [null],
    [[21]],
    [{ v: 1 }],
    [undefined],
    ['Infinity'],
    ['0x10'],
  ])('rejects %j', (v) => {
    expect(numericValue(v)).toBeUndefined();
  });
});
