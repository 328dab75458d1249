/**
 * Sensors that stream one reading per line on a serial port: "  23.5\r\n", "-11.2",
 * "T=23.5". The configured pattern has one capture group holding the number. Lines that
 * start with "Err" are the device reporting a fault of its own (SensorError 'DEVICE');
 * anything else that does not match is garbage: counted, logged at debug, never a crash.
 * Lines are cut at CR, LF or CRLF; bytes are read as latin1 so no input can fail to decode;
 * a line longer than 256 characters without a terminator is dropped as garbage.
 *
 * Round semantics: measure() returns the newest line received since the previous round; if
 * none has arrived yet it waits for the next one, up to the round's timeout (TIMEOUT, or
 * PROTOCOL when only garbage came in the meantime). So a sensor printing every second and
 * sampled every second yields each line once, and a faster printer is down-sampled to the
 * freshest value rather than queued.
 */
import { z } from 'zod';
import { quote, scalarText } from '../config/describe-value.js';
import { quantity, sensorKeys } from '../config/sensor-keys.js';
import type { DriverDescriptor } from '../descriptor.js';
import { SERIAL_PATH_KEYS, serialKeys } from './config.js';
import { nullLogger, SensorError, type Driver, type Logger, type Measurement } from '../types.js';
import type { SerialLines } from './serial-lines.js';

export type AsciiLineResult =
  { kind: 'value'; value: number } | { kind: 'error'; message: string } | { kind: 'garbage' };

const ERR_LINE = /^\s*Err/i;

/** One line (terminator already removed) → value, device error, or garbage. */
export function parseAsciiLine(line: string, pattern: RegExp): AsciiLineResult {
  if (ERR_LINE.test(line)) return { kind: 'error', message: line.trim().slice(0, 80) };
  const m = pattern.exec(line);
  const text = m?.[1];
  if (text === undefined) return { kind: 'garbage' };
  const value = Number(text);
  return Number.isFinite(value) && text.trim() !== ''
    ? { kind: 'value', value }
    : { kind: 'garbage' };
}

/** Cuts a byte stream into lines at CR, LF or CRLF; bounded line length. */
export class LineSplitter {
  private partial = '';
  /** Lines dropped for exceeding maxLength. */
  overflows = 0;

  constructor(private readonly maxLength = 256) {}

  push(chunk: Buffer): string[] {
    const parts = (this.partial + chunk.toString('latin1')).split(/\r\n|\r|\n/);
    this.partial = parts.pop() ?? '';
    if (this.partial.length > this.maxLength) {
      this.overflows++;
      this.partial = '';
    }
    return parts.filter((l) => l.length > 0);
  }
}

export interface AsciiLineCounters {
  lines: number;
  values: number;
  garbage: number;
  errors: number;
}

export interface AsciiLineDriver extends Driver {
  readonly counters: Readonly<AsciiLineCounters>;
}

export function createAsciiLine(
  config: AsciiLineConfig,
  lines: SerialLines,
  logger: Logger = nullLogger,
): AsciiLineDriver {
  const line = lines.line({
    path: config.port,
    baudRate: config.baudRate,
    parity: config.parity,
    dataBits: config.dataBits,
    stopBits: config.stopBits,
  });
  const pattern = new RegExp(config.pattern);
  const log = logger.child({ sensor: config.id });
  const counters: AsciiLineCounters = { lines: 0, values: 0, garbage: 0, errors: 0 };
  const splitter = new LineSplitter();
  let latest: Exclude<AsciiLineResult, { kind: 'garbage' }> | undefined;
  let garbageSinceRound = 0;
  let wake: (() => void) | undefined;
  let unsubscribe: (() => void) | undefined;
  let acquired = false;

  const onData = (chunk: Buffer) => {
    const before = splitter.overflows;
    const got = splitter.push(chunk);
    if (splitter.overflows > before) {
      counters.garbage++;
      garbageSinceRound++;
    }
    for (const text of got) {
      counters.lines++;
      const r = parseAsciiLine(text, pattern);
      if (r.kind === 'garbage') {
        counters.garbage++;
        garbageSinceRound++;
        log.debug({ line: JSON.stringify(text.slice(0, 80)) }, 'unparsable line');
        continue;
      }
      if (r.kind === 'value') counters.values++;
      else counters.errors++;
      latest = r;
    }
    if (latest) wake?.();
  };

  const take = (): Measurement[] => {
    const r = latest!;
    latest = undefined;
    garbageSinceRound = 0;
    if (r.kind === 'error') throw new SensorError('DEVICE', `device reported "${r.message}"`);
    return [{ quantity: config.quantity, value: r.value }];
  };

  return {
    kind: 'ascii-line',
    quantities: [config.quantity],
    resource: line.resource,
    counters,
    async open(signal) {
      if (!acquired) {
        line.acquire();
        acquired = true;
        unsubscribe = line.onData(onData);
      }
      try {
        await line.ready(signal);
      } catch (err) {
        await this.close?.();
        throw err;
      }
    },
    async measure(signal) {
      if (latest) return take();
      await line.ready(signal);
      await new Promise<void>((resolve) => {
        const done = () => {
          wake = undefined;
          signal.removeEventListener('abort', done);
          resolve();
        };
        wake = done;
        signal.addEventListener('abort', done, { once: true });
        if (signal.aborted) done();
      });
      if (latest) return take();
      if (!line.isOpen) await line.ready();
      if (garbageSinceRound > 0) {
        const n = garbageSinceRound;
        garbageSinceRound = 0;
        throw new SensorError('PROTOCOL', `${n} unparsable line(s) and no reading`);
      }
      throw new SensorError('TIMEOUT', 'no line from the device in time');
    },
    async close() {
      unsubscribe?.();
      unsubscribe = undefined;
      latest = undefined;
      if (!acquired) return;
      acquired = false;
      await line.release();
    },
  };
}

/**
 * Why a configured pattern cannot work, or undefined: it must compile, and it must have a
 * capture group, since the reading is the text of the first one (a pattern without one would
 * count every line as garbage).
 */
function patternProblem(pattern: string): string | undefined {
  let groups: number;
  try {
    new RegExp(pattern);
    // A pattern or'ed with the empty one matches '' with every group present, unset.
    groups = new RegExp(`${pattern}|`).exec('')!.length - 1;
  } catch (err) {
    return `must be a valid regular expression (${(err as Error).message.split('\n')[0]})`;
  }
  return groups === 0
    ? `has no capture group; put ( ) around the number, e.g. "^T=(-?\\d+(?:\\.\\d+)?)$", got ${quote(pattern)}`
    : undefined;
}

const asciiLineSchema = z.strictObject({
  ...sensorKeys,
  ...serialKeys,
  driver: z.literal('ascii-line'),
  pattern: z
    .string()
    .default('^\\s*(?:[A-Za-z]+\\s*[=:]\\s*)?(-?\\d+(?:\\.\\d+)?)\\s*$')
    .superRefine((p, ctx) => {
      const problem = patternProblem(p);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    .describe(
      'Regular expression whose first capture group `( )` holds the number; other groups are best written non-capturing, `(?: )`.',
    ),
  quantity: quantity.default('temperature'),
});
export type AsciiLineConfig = z.output<typeof asciiLineSchema>;

/** A line device streams values: it owns its port. */
export const asciiLine: DriverDescriptor<typeof asciiLineSchema> = {
  name: 'ascii-line',
  schema: asciiLineSchema,
  pathKeys: SERIAL_PATH_KEYS,
  location: (entry) => ({ key: `serial port ${scalarText(entry.port)}`, field: 'port' }),
  create: (config, seams) => createAsciiLine(config, seams.serial),
};
