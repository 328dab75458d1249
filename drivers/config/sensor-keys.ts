/**
 * Config keys every sensor has, whatever its driver, and the small schemas drivers build
 * their own keys from. They live beside the drivers so that a driver module can declare its
 * whole config entry without depending on the agent.
 */
import { z } from 'zod';
import { DAY_MS, durationMs, factor, HOUR_MS, MINUTE_MS } from './bounds.js';
import { QUANTITIES } from '../types.js';
import { DEFAULT_BACKOFF_MIN_MS } from '../rounds.js';

/** Names that become MQTT topic levels: no `+`, `#`, `/`, spaces. */
export const NAME_PATTERN = /^[A-Za-z0-9_-]+$/;
export const topicLevelName = (what: string) =>
  z
    .string()
    .min(1, `${what} must not be empty`)
    .max(64, `${what} must be at most 64 characters`)
    .regex(
      NAME_PATTERN,
      `${what} may only contain A-Z a-z 0-9 _ - (it becomes an MQTT topic level)`,
    );

/** `0x48`: how an I²C address or a register is shown. */
export const hex = (n: number, width = 2) => `0x${n.toString(16).padStart(width, '0')}`;

/** Ceiling of the retry backoff of a failing sensor: from the first wait up to an hour. */
export const backoffMaxMs = () => durationMs(DEFAULT_BACKOFF_MIN_MS, HOUR_MS);
/** How often a sensor may be sampled: from 10 ms to once a day (longer: use a schedule). */
export const samplingIntervalMs = () => durationMs(10, DAY_MS);
/** One sampling round, conversion and retries included. */
export const roundTimeoutMs = () => durationMs(1, 10 * MINUTE_MS);
/** A physical value (°C, %RH, hPa …). */
const physical = () => factor(-1e6, 1e6);
export const quantity = z.enum(QUANTITIES);
const range = z
  .strictObject({ min: physical(), max: physical() })
  .refine((r) => r.min < r.max, 'min must be below max');

/** Keys every sensor has, whatever its driver; spread first into each driver's schema. */
export const sensorKeys = {
  id: topicLevelName('sensor id').describe(
    'Unique sensor name; becomes the `sensor` field of the payload.',
  ),
  intervalMs: samplingIntervalMs()
    .optional()
    .describe('Sampling period; ignored when `schedule` is set.'),
  schedule: z
    .string()
    .min(1)
    .optional()
    .describe('Cron expression (node-cron, seconds field allowed), e.g. "*/5 * * * * *".'),
  timeoutMs: roundTimeoutMs()
    .optional()
    .describe('One round must finish within this time, or it counts as a TIMEOUT fault.'),
  backoffMaxMs: backoffMaxMs()
    .optional()
    .describe(
      'Longest wait between retries of this sensor while it fails; default sampling.backoffMaxMs.',
    ),
  range: range
    .optional()
    .describe(
      'Physical range `{ min, max }` (each within ±1000000): readings outside are flagged (detector "range"). Default: the chip\'s.',
    ),
  enabled: z.boolean().default(true).describe('Off switch without deleting the entry.'),
};
