/** Config keys of sensors on a serial line. */
import { z } from 'zod';
import { count } from '../config/bounds.js';

/** Keys of serialKeys that hold a path. */
export const SERIAL_PATH_KEYS = ['port'] as const;

export const serialKeys = {
  port: z
    .string()
    .min(1, 'must name a serial device, e.g. /dev/ttyUSB0')
    .describe(
      'Serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/…; a relative path is resolved against the directory of the configuration file.',
    ),
  baudRate: count(300, 4_000_000).default(9600).describe('Line speed in bit/s.'),
  parity: z
    .enum(['none', 'even', 'odd'])
    .default('none')
    .describe('Parity (XY-MD02 sources disagree between 8N1 and 8E1).'),
  dataBits: z.literal([7, 8]).default(8).describe('Data bits.'),
  stopBits: z.literal([1, 2]).default(1).describe('Stop bits.'),
};
