import { describe, expect, it } from 'vitest';
import { bodyItems, splitItems, splitToFit } from '../../../agent/publish/batch-parts.js';
import { windowBody } from './bodies.js';

type Body = { windows: unknown[]; readings?: unknown[] };
const parse = (b: Uint8Array) => JSON.parse(Buffer.from(b).toString('utf8')) as Body;

describe('splitting a batch body into parts', () => {
  it('keeps every window and reading exactly once, in order, in parts of about equal size', () => {
    const body = windowBody(1, { readings: 40 });
    const whole = parse(body);
    const parts = splitItems(bodyItems(body), 4);
    expect(parts).toHaveLength(4);
    const joined = parts.map((p) => parse(p.body));
    expect(joined.flatMap((p) => p.windows)).toEqual(whole.windows);
    expect(joined.flatMap((p) => p.readings ?? [])).toEqual(whole.readings);
    // Every part keeps the batch's shape (a readings field when the batch had one).
    for (const p of joined) expect(Array.isArray(p.readings)).toBe(true);
    expect(parts.map((p) => p.items).reduce((a, b) => a + b)).toBe(42);
    const sizes = parts.map((p) => p.body.length);
    expect(Math.max(...sizes)).toBeLessThan(Math.min(...sizes) * 1.6);
  });

  it('is a pure function of the body and the part count (a replay sends the same bytes)', () => {
    const body = windowBody(2, { readings: 25 });
    const a = splitItems(bodyItems(body), 3).map((p) => Buffer.from(p.body).toString());
    const b = splitItems(bodyItems(body), 3).map((p) => Buffer.from(p.body).toString());
    expect(a).toEqual(b);
  });

  it('never makes more parts than items, and no empty part', () => {
    const body = windowBody(3); // two windows, no readings
    const parts = splitItems(bodyItems(body), 10);
    expect(parts).toHaveLength(2);
    expect(parts.map((p) => parse(p.body).windows.length)).toEqual([1, 1]);
    expect(parse(parts[0].body).readings).toBeUndefined();
  });

  it('splitToFit: the fewest parts under the limit, or fits=false when one item is larger', () => {
    const body = windowBody(4, { readings: 200 });
    const fitted = splitToFit(body, 2000);
    expect(fitted.fits).toBe(true);
    for (const p of fitted.bodies) expect(p.body.length).toBeLessThanOrEqual(2000);
    expect(fitted.bodies.length).toBeGreaterThanOrEqual(Math.ceil(body.length / 2000));
    const tooSmall = splitToFit(body, 100); // a window alone is ~300 bytes
    expect(tooSmall.fits).toBe(false);
    expect(tooSmall.largest).toBeGreaterThan(100);
  });
});
