/**
 * Every numeric key of the config is bounded here, in one place: a whole number (or, for a
 * few factors, any number) within [min, max], with one message naming the range in human
 * units when it is not. The bounds keep values below what breaks underneath (Node timers
 * hold at most 2^31 - 1 ms; larger delays fire after 1 ms) and within what makes sense on a
 * gateway. The unit travels into the JSON Schema as `x-unit`, so the docs can show it.
 */
import { z } from 'zod';

/** The longest delay setTimeout/setInterval honour; anything above fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

export const SECOND_MS = 1000;
export const MINUTE_MS = 60 * SECOND_MS;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;
export const KIB = 1024;
export const MIB = 1024 * KIB;
export const GIB = 1024 * MIB;

export type Unit = 'ms' | 's' | 'bytes' | 'count';

const TIME_STEPS: Array<[number, string]> = [
  [DAY_MS, 'd'],
  [HOUR_MS, 'h'],
  [MINUTE_MS, 'min'],
  [SECOND_MS, 's'],
  [1, 'ms'],
];
const BYTE_STEPS: Array<[number, string]> = [
  [GIB, 'GiB'],
  [MIB, 'MiB'],
  [KIB, 'KiB'],
  [1, 'bytes'],
];

/** `3600000` ms → "1 h", `268435456` bytes → "256 MiB"; the largest unit that divides it. */
export function humanize(value: number, unit: Unit): string {
  if (unit === 'count') return String(value);
  const steps = unit === 'bytes' ? BYTE_STEPS : TIME_STEPS;
  const inMs = unit === 's' ? value * SECOND_MS : value;
  if (inMs === 0) return unit === 'bytes' ? '0 bytes' : `0 ${unit}`;
  const [size, name] = steps.find(([size]) => inMs % size === 0) ?? steps[steps.length - 1];
  return `${inMs / size} ${name}`;
}

const shown = (value: number, unit: Unit) =>
  unit === 'count' ? String(value) : `${value} (${humanize(value, unit)})`;

function bounded(unit: Unit, min: number, max: number, whole: boolean) {
  if (!(min <= max)) throw new RangeError(`bounds: min ${min} above max ${max}`);
  if (unit === 'ms' && max > MAX_TIMER_MS) {
    throw new RangeError(`bounds: ${max} ms does not fit a Node timer`);
  }
  if (unit === 's' && max * SECOND_MS > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(`bounds: ${max} s is too large`);
  }
  let schema = z.number();
  // abort: a fractional -5.5 gets "whole number" only, not also "at least …".
  if (whole) {
    schema = schema.int({
      error: (iss) => `must be a whole number, got ${String(iss.input)}`,
      abort: true,
    });
  }
  return schema
    .min(min, { error: (iss) => `must be at least ${shown(min, unit)}, got ${String(iss.input)}` })
    .max(max, { error: (iss) => `must be at most ${shown(max, unit)}, got ${String(iss.input)}` })
    .meta({ 'x-unit': unit });
}

/** Milliseconds, whole, min..max (max at most MAX_TIMER_MS). */
export const durationMs = (min: number, max: number) => bounded('ms', min, max, true);
/** Seconds, whole. */
export const durationSec = (min: number, max: number) => bounded('s', min, max, true);
/** A size in bytes, whole. */
export const byteSize = (min: number, max: number) => bounded('bytes', min, max, true);
/** A whole count (readings, entries, a port number …). */
export const count = (min: number, max: number) => bounded('count', min, max, true);
/** A plain number (a factor, a threshold). */
export const factor = (min: number, max: number) => bounded('count', min, max, false);
