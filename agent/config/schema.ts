/**
 * The one schema for the agent's configuration file. The TypeScript types are derived from
 * it, and so is docs/config.schema.json (`npm run docs:config`), so the docs, the
 * editor validation and the checks never disagree.
 */
import { isIP } from 'node:net';
import cron from 'node-cron';
import { z } from 'zod';
import {
  byteSize,
  count,
  DAY_MS,
  durationMs,
  durationSec,
  factor,
  GIB,
  HOUR_MS,
  KIB,
  MIB,
  MINUTE_MS,
} from './bounds.js';
import { quote, scalarText } from './describe-value.js';
import { QUANTITIES } from '../../drivers/types.js';
import { parseJsonPath } from '../../drivers/network/json-path.js';
import { DEFAULT_BACKOFF_MAX_MS, DEFAULT_BACKOFF_MIN_MS } from '../../drivers/readings.js';

/** Names that become MQTT topic levels: no `+`, `#`, `/`, spaces. */
export const NAME_PATTERN = /^[A-Za-z0-9_-]+$/;
const name = (what: string) =>
  z
    .string()
    .min(1, `${what} must not be empty`)
    .max(64, `${what} must be at most 64 characters`)
    .regex(
      NAME_PATTERN,
      `${what} may only contain A-Z a-z 0-9 _ - (it becomes an MQTT topic level)`,
    );

const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;
/** An I²C address, restricted to the range a chip can be strapped to. */
const i2cAddress = (min: number, max: number) =>
  z
    .number({ error: `must be an I²C address (number ${hex(min)}..${hex(max)})` })
    .int({ error: 'must be a whole number', abort: true })
    .refine((a) => a >= min && a <= max, {
      error: (iss) =>
        `must be ${hex(min)}..${hex(max)}, got ${typeof iss.input === 'number' ? hex(iss.input) : quote(iss.input)}`,
    })
    .describe(`I²C address ${hex(min)}..${hex(max)}`);

/** Ceiling of the retry backoff of a failing sensor: from the first wait up to an hour. */
const backoffMaxMs = () => durationMs(DEFAULT_BACKOFF_MIN_MS, HOUR_MS);
/** How often a sensor may be sampled: from 10 ms to once a day (longer: use a schedule). */
const samplingIntervalMs = () => durationMs(10, DAY_MS);
/** One sampling round, conversion and retries included. */
const roundTimeoutMs = () => durationMs(1, 10 * MINUTE_MS);
/** A physical value (°C, %RH, hPa …). */
const physical = () => factor(-1e6, 1e6);
const quantity = z.enum(QUANTITIES);
const range = z
  .strictObject({ min: physical(), max: physical() })
  .refine((r) => r.min < r.max, 'min must be below max');

/** Keys every sensor has, whatever its driver. */
const sensorCommon = {
  id: name('sensor id').describe('Unique sensor name; becomes the `sensor` field of the payload.'),
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

const i2cCommon = {
  bus: count(0, 255).default(1).describe('I²C bus number (/dev/i2c-N).'),
};

const tmp102 = z.strictObject({
  ...sensorCommon,
  ...i2cCommon,
  driver: z.literal('tmp102'),
  address: i2cAddress(0x48, 0x4b).default(0x48),
  extended: z
    .boolean()
    .default(false)
    .describe('Extended 13-bit mode (EM bit): range up to 150 \u00b0C.'),
});
const mcp9808 = z.strictObject({
  ...sensorCommon,
  ...i2cCommon,
  driver: z.literal('mcp9808'),
  address: i2cAddress(0x18, 0x1f).default(0x18),
  resolution: count(0, 3)
    .default(3)
    .describe(
      'Resolution register 0..3 = 0.5 / 0.25 / 0.125 / 0.0625 \u00b0C (30 / 65 / 130 / 250 ms).',
    ),
});
const lm75 = z.strictObject({
  ...sensorCommon,
  ...i2cCommon,
  driver: z.literal('lm75'),
  address: i2cAddress(0x48, 0x4f).default(0x48),
  resolutionBits: z
    .literal([9, 11])
    .default(9)
    .describe('9 bits (LM75, 0.5 \u00b0C) or 11 bits (LM75A, 0.125 \u00b0C).'),
});
const sht3x = z.strictObject({
  ...sensorCommon,
  ...i2cCommon,
  driver: z.literal('sht3x'),
  address: i2cAddress(0x44, 0x45).default(0x44),
});
const bme280 = z.strictObject({
  ...sensorCommon,
  ...i2cCommon,
  driver: z.literal('bme280'),
  address: i2cAddress(0x76, 0x77).default(0x76),
  quantities: z
    .array(quantity)
    .min(1)
    .default(['temperature'])
    .describe('Temperature is always reported; pressure and humidity are optional.'),
});
const si7021 = z.strictObject({
  ...sensorCommon,
  ...i2cCommon,
  driver: z.literal('si7021'),
  address: i2cAddress(0x40, 0x40).default(0x40),
  quantities: z
    .array(quantity)
    .min(1)
    .default(['temperature'])
    .describe('Quantities to report: temperature and/or humidity.'),
});

/** How one Modbus register maps to a quantity. */
const modbusRegister = z.strictObject({
  quantity,
  address: count(0, 0xffff).describe('Register address (0-based, as on the wire).'),
  scale: factor(-1e6, 1e6)
    .refine((v) => v !== 0, { error: 'must not be 0 (every value would read 0)' })
    .default(0.1)
    .describe('Value = raw × scale.'),
  signed: z.boolean().default(true).describe('Raw register is int16 (true) or uint16.'),
});
/** XY-MD02 and most RS-485 temperature/humidity modules. */
const XY_MD02_REGISTERS = [
  { quantity: 'temperature' as const, address: 1, scale: 0.1, signed: true },
  { quantity: 'humidity' as const, address: 2, scale: 0.1, signed: true },
];
const modbusCommon = {
  unitId: count(1, 247).default(1).describe('Modbus slave / unit id.'),
  function: z
    .literal([3, 4])
    .default(4)
    .describe('3 = read holding registers, 4 = read input registers.'),
  registers: z
    .array(modbusRegister)
    .min(1)
    .default(XY_MD02_REGISTERS)
    .describe('Registers to read; default: XY-MD02 (temperature 0x0001, humidity 0x0002, ×0.1).'),
};
const serialCommon = {
  port: z
    .string()
    .min(1, 'must name a serial device, e.g. /dev/ttyUSB0')
    .describe('Serial device, e.g. /dev/ttyUSB0.'),
  baudRate: count(300, 4_000_000).default(9600).describe('Line speed in bit/s.'),
  parity: z
    .enum(['none', 'even', 'odd'])
    .default('none')
    .describe('Parity (XY-MD02 sources disagree between 8N1 and 8E1).'),
  dataBits: z.literal([7, 8]).default(8).describe('Data bits.'),
  stopBits: z.literal([1, 2]).default(1).describe('Stop bits.'),
};
const modbusRtu = z.strictObject({
  ...sensorCommon,
  ...serialCommon,
  ...modbusCommon,
  driver: z.literal('modbus-rtu'),
});
const asciiLine = z.strictObject({
  ...sensorCommon,
  ...serialCommon,
  driver: z.literal('ascii-line'),
  pattern: z
    .string()
    .default('^\\s*(?:[A-Za-z]+\\s*[=:]\\s*)?(-?\\d+(?:\\.\\d+)?)\\s*$')
    .refine(
      (p) => {
        try {
          new RegExp(p);
          return true;
        } catch {
          return false;
        }
      },
      { error: 'must be a valid regular expression' },
    )
    .describe('Regular expression with one capture group holding the number.'),
  quantity: quantity.default('temperature'),
});
const ds18b20 = z.strictObject({
  ...sensorCommon,
  driver: z.literal('ds18b20'),
  deviceId: z
    .string()
    .regex(/^[0-9a-f]{2}-[0-9a-f]{12}$/, 'must look like 28-0316a2795aff')
    .describe('1-Wire id as it appears in sysfs, e.g. 28-0316a2795aff.'),
  w1Root: z.string().default('/sys/bus/w1/devices').describe('sysfs root of the w1 bus.'),
});
const modbusTcp = z.strictObject({
  ...sensorCommon,
  ...modbusCommon,
  driver: z.literal('modbus-tcp'),
  host: z.string().min(1).describe('Modbus TCP device or gateway.'),
  port: count(1, 65535).default(502).describe('Modbus TCP port.'),
});
const httpJson = z.strictObject({
  ...sensorCommon,
  driver: z.literal('http-json'),
  url: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
    .describe('URL answering with a JSON body.'),
  path: z
    .string()
    .min(1)
    .superRefine((p, ctx) => {
      try {
        parseJsonPath(p);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    })
    .describe(
      'Dotted path to the number in the JSON body, e.g. "data.temperature" or "sensors[0].t".',
    ),
  quantity: quantity.default('temperature'),
});

export const SENSOR_SCHEMAS = {
  tmp102,
  mcp9808,
  lm75,
  sht3x,
  bme280,
  si7021,
  'modbus-rtu': modbusRtu,
  'ascii-line': asciiLine,
  ds18b20,
  'modbus-tcp': modbusTcp,
  'http-json': httpJson,
} as const;
export type DriverName = keyof typeof SENSOR_SCHEMAS;
export const DRIVER_NAMES = Object.keys(SENSOR_SCHEMAS) as DriverName[];

export const sensorSchema = z.discriminatedUnion('driver', [
  tmp102,
  mcp9808,
  lm75,
  sht3x,
  bme280,
  si7021,
  modbusRtu,
  asciiLine,
  ds18b20,
  modbusTcp,
  httpJson,
]);
export type SensorConfig = z.infer<typeof sensorSchema>;
export type SensorConfigOf<D extends DriverName> = Extract<SensorConfig, { driver: D }>;

const mqtt = z.strictObject({
  url: z
    .string()
    .regex(/^(mqtts?|wss?):\/\/[^\s]+$/, 'must be an mqtt://, mqtts://, ws:// or wss:// URL')
    .refine((url) => URL.canParse(url), {
      error: (iss) => `is not a URL the MQTT client can read, got ${quote(iss.input)}`,
    })
    .default('mqtt://127.0.0.1:1883'),
  clientId: z
    .string()
    .min(1)
    .optional()
    .describe('Default: edge-agent-<gateway id>, stable so the broker keeps the session.'),
  username: z.string().optional().describe('MQTT user name.'),
  passwordFile: z
    .string()
    .optional()
    .describe('File holding the password (trailing newline ignored).'),
  passwordCredential: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/)
    .optional()
    .describe('Name of a systemd credential ($CREDENTIALS_DIRECTORY/<name>) holding the password.'),
  caFile: z.string().optional().describe('PEM files for TLS (mqtts://).'),
  certFile: z.string().optional().describe('Client certificate (PEM) for mutual TLS.'),
  keyFile: z.string().optional().describe('Client private key (PEM) for mutual TLS.'),
  rejectUnauthorized: z
    .boolean()
    .default(true)
    .describe("Verify the broker's certificate. Turn off only for a lab."),
  qos: z.literal([1, 2]).default(1).describe('QoS of telemetry publishes.'),
  protocolVersion: z
    .literal([4, 5])
    .optional()
    .describe(
      '4 = MQTT 3.1.1, 5 = MQTT 5. Default: MQTT 5 (a refused publish is visible), falling back to 3.1.1 when the broker refuses 5 (under 3.1.1 a publish the ACL denies is acknowledged as if delivered).',
    ),
  deliveryCheck: z
    .boolean()
    .default(false)
    .describe(
      'MQTT 3.1.1 only: a broker acknowledges a publish its ACL denies as if delivered. When on, a second short-lived connection subscribes to the telemetry topic after each connect, and batches leave the spool only once one has come back (not delivered: kept and counted as refused). Needs read access to the telemetry topic.',
    ),
  topicPrefix: name('topic prefix')
    .default('edge')
    .describe('First topic level: <prefix>/<gateway>/telemetry.'),
  keepaliveSec: durationSec(5, 3600).default(30).describe('MQTT keepalive.'),
  inflight: count(1, 1024).default(16).describe('Publishes awaiting PUBACK at once.'),
  reconnectMinMs: durationMs(10, HOUR_MS)
    .default(500)
    .describe('First reconnect delay; doubles up to reconnectMaxMs, with jitter.'),
  reconnectMaxMs: durationMs(10, HOUR_MS).default(30_000).describe('Longest reconnect delay.'),
});

const buffer = z.strictObject({
  // 24 bytes a reading: at most 96 MiB of shared memory, a fifth of a 512 MB Pi.
  capacity: count(16, 1 << 22)
    .refine((n) => (n & (n - 1)) === 0, {
      error: (iss) => `must be a power of two, got ${String(iss.input)}`,
    })
    .default(65_536)
    .describe('Ring capacity in readings; must be a power of two.'),
  overflow: z
    .enum(['drop-oldest', 'drop-newest', 'block'])
    .default('drop-oldest')
    .describe(
      'When the ring is full: drop the oldest or newest reading (counted), or make sampling wait.',
    ),
});

const aggregation = z.strictObject({
  windowMs: durationMs(100, DAY_MS)
    .default(10_000)
    .describe('Tumbling window length; windows are aligned to the wall clock.'),
  stuckCount: count(2, 1_000_000)
    .default(30)
    .describe('The same raw value this many times in a row is flagged "stuck".'),
  spikeZ: factor(0.1, 1000)
    .default(8)
    .describe('Robust z-score (against the MAD) above which a reading is a spike.'),
  spikeHistory: count(5, 1000)
    .default(31)
    .describe('Recent readings kept per series for the spike detector.'),
  graceMs: durationMs(0, HOUR_MS)
    .optional()
    .describe(
      'How long after its end an open window waits for late readings before it closes. Default: min(windowMs, 2000).',
    ),
  coalesceMs: durationMs(0, HOUR_MS)
    .optional()
    .describe(
      "How long closed windows wait for the other sensors' windows of the same period, so they travel in one batch. Raise it when a slow sensor's windows arrive in the next batch. Default: min(windowMs / 4, 500).",
    ),
});

const batch = z.strictObject({
  maxBytes: byteSize(KIB, 16 * MIB)
    .default(256 * 1024)
    .describe('A batch is split before it exceeds this many bytes of JSON.'),
  maxDelayMs: durationMs(100, HOUR_MS)
    .default(10_000)
    .describe('Publish at least this often, even within a window.'),
  raw: z.boolean().default(false).describe('Include every raw reading in `readings`.'),
});

const spool = z.strictObject({
  dir: z
    .string()
    .optional()
    .describe('State directory for the spool; default --state-dir, $STATE_DIRECTORY or ./state.'),
  maxBytes: byteSize(64 * KIB, 64 * GIB)
    .default(256 * 1024 * 1024)
    .describe('Spool size bound; when full the oldest batches are dropped and counted.'),
  maxAgeSec: durationSec(60, 365 * 24 * 3600)
    .default(7 * 24 * 3600)
    .describe('Batches older than this are dropped (counted) instead of published.'),
  memoryMaxBytes: byteSize(64 * KIB, GIB)
    .default(8 * MIB)
    .describe(
      'Bound on the batches held in memory while the spool disk fails (full, read-only, corrupt); when full the oldest are dropped and counted.',
    ),
  synchronous: z
    .enum(['full', 'normal'])
    .default('full')
    .describe(
      'full: every batch is fsynced, so a power cut cannot roll back a batch or reuse its seq. normal: faster, still safe against a crash of the agent, not against power loss.',
    ),
});

const health = z.strictObject({
  schedule: z
    .string()
    .default('*/30 * * * * *')
    .describe('node-cron expression for the health report.'),
});

const sampling = z.strictObject({
  intervalMs: samplingIntervalMs()
    .default(1000)
    .describe('Default period of sensors without intervalMs/schedule.'),
  alignToWallClock: z
    .boolean()
    .default(false)
    .describe("Align interval slots to the wall clock (like Telegraf's round_interval)."),
  startSpreadMs: durationMs(0, HOUR_MS)
    .default(0)
    .describe('Spread the first sample of each sensor over this many ms.'),
  timeoutMs: roundTimeoutMs().default(2000).describe('Default per-round timeout.'),
  backoffMaxMs: backoffMaxMs()
    .default(DEFAULT_BACKOFF_MAX_MS)
    .describe(
      'Longest wait between retries of a failing sensor (the backoff doubles from 250 ms up to this).',
    ),
});

const log = z.strictObject({
  level: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('Log level (pino; JSON on stdout for journald).'),
});

const metrics = z.strictObject({
  enabled: z
    .boolean()
    .default(false)
    .describe('Serve Prometheus metrics (off: no listening port).'),
  // An address, not a name: a bind address that needs DNS fails at start-up, not here.
  host: z
    .string()
    .refine((h) => h === 'localhost' || isIP(h) !== 0, {
      error: (iss) =>
        `must be an IP address of this machine to listen on (127.0.0.1, ::1, 0.0.0.0) or localhost, got ${quote(iss.input)}`,
    })
    .default('127.0.0.1')
    .describe(
      'IP address to bind the metrics endpoint to (127.0.0.1, ::1, 0.0.0.0), or localhost.',
    ),
  port: count(1, 65535).default(9464).describe('Metrics port.'),
});

export const configSchema = z.strictObject({
  gateway: z
    .strictObject({
      id: name('gateway id').describe('This gateway’s name; the second MQTT topic level.'),
    })
    .describe('Who this agent is.'),
  mqtt: mqtt.prefault({}),
  buffer: buffer.prefault({}),
  aggregation: aggregation.prefault({}),
  batch: batch.prefault({}),
  spool: spool.prefault({}),
  health: health.prefault({}),
  sampling: sampling.prefault({}),
  log: log.prefault({}),
  metrics: metrics.prefault({}),
  sensors: z.array(sensorSchema).default([]),
});

/** A problem found across fields; `path` as zod gives it. */
export interface CrossIssue {
  path: (string | number)[];
  message: string;
}

/**
 * Checks that span several entries (duplicate ids, two sensors on one address, …). They run
 * on the raw input too when the schema fails elsewhere, so the user sees every problem at once.
 */
export function crossChecks(input: unknown): CrossIssue[] {
  const issues: CrossIssue[] = [];
  const root = (input ?? {}) as Record<string, unknown>;
  const sensors = Array.isArray(root.sensors) ? (root.sensors as unknown[]) : [];
  const seenIds = new Map<string, number>();
  const seenAt = new Map<string, number>();
  sensors.forEach((raw, i) => {
    if (raw === null || typeof raw !== 'object') return;
    const s = raw as Record<string, unknown>;
    if (typeof s.id === 'string') {
      const first = seenIds.get(s.id);
      if (first !== undefined) {
        issues.push({
          path: ['sensors', i, 'id'],
          message: `duplicate sensor id ${quote(s.id)} (also sensors[${first}].id)`,
        });
      } else seenIds.set(s.id, i);
    }
    const where = sensorLocation(s);
    if (where) {
      const other = seenAt.get(where.key);
      if (other !== undefined) {
        issues.push({
          path: ['sensors', i, where.field],
          message: `same ${where.key} as sensors[${other}]`,
        });
      } else seenAt.set(where.key, i);
    }
    if (typeof s.schedule === 'string' && !validCron(s.schedule)) {
      issues.push({
        path: ['sensors', i, 'schedule'],
        message: `not a valid cron expression: ${quote(s.schedule)}`,
      });
    }
    if (s.intervalMs !== undefined && s.schedule !== undefined) {
      issues.push({
        path: ['sensors', i, 'schedule'],
        message: 'set either intervalMs or schedule, not both',
      });
    }
  });
  const health = (root.health ?? {}) as Record<string, unknown>;
  if (typeof health.schedule === 'string' && !validCron(health.schedule)) {
    issues.push({
      path: ['health', 'schedule'],
      message: `not a valid cron expression: ${quote(health.schedule)}`,
    });
  }
  const mqtt = (root.mqtt ?? {}) as Record<string, unknown>;
  if (mqtt.passwordFile !== undefined && mqtt.passwordCredential !== undefined) {
    issues.push({
      path: ['mqtt', 'passwordCredential'],
      message: 'set either passwordFile or passwordCredential, not both',
    });
  }
  if (
    typeof mqtt.reconnectMinMs === 'number' &&
    typeof mqtt.reconnectMaxMs === 'number' &&
    mqtt.reconnectMinMs > mqtt.reconnectMaxMs
  ) {
    issues.push({
      path: ['mqtt', 'reconnectMinMs'],
      message: 'must not exceed mqtt.reconnectMaxMs',
    });
  }
  return issues;
}

/** node-cron's check; a cron line is short, and a validator that throws means "invalid". */
function validCron(expression: string): boolean {
  if (expression.length > 200) return false;
  try {
    return cron.validate(expression);
  } catch {
    return false;
  }
}

const I2C_DEFAULT_ADDRESS: Record<string, number> = {
  tmp102: 0x48,
  mcp9808: 0x18,
  lm75: 0x48,
  sht3x: 0x44,
  bme280: 0x76,
  si7021: 0x40,
};

/** Where a sensor physically sits, for the "two sensors on one address" check. */
export function sensorLocation(
  s: Record<string, unknown>,
): { key: string; field: string } | undefined {
  const d = s.driver;
  if (typeof d === 'string' && d in I2C_DEFAULT_ADDRESS) {
    const address = s.address ?? I2C_DEFAULT_ADDRESS[d];
    return typeof address === 'number'
      ? { key: `I²C bus ${scalarText(s.bus ?? 1)} address ${hex(address)}`, field: 'address' }
      : undefined;
  }
  // One Modbus unit may hold several sensors at different registers (a multi-channel
  // module, or a TCP gateway): only the same registers of the same unit clash.
  const registers = Array.isArray(s.registers)
    ? (s.registers as unknown[])
        .map((r) =>
          scalarText(
            r !== null && typeof r === 'object' ? (r as Record<string, unknown>).address : r,
          ),
        )
        .join(',')
    : '1,2';
  const fn = scalarText(s.function ?? 4);
  if (d === 'modbus-rtu') {
    return {
      key: `serial port ${scalarText(s.port)} unit ${scalarText(s.unitId ?? 1)} registers ${registers} (function ${fn})`,
      field: 'unitId',
    };
  }
  if (d === 'ascii-line') return { key: `serial port ${scalarText(s.port)}`, field: 'port' };
  if (d === 'modbus-tcp') {
    return {
      key: `Modbus TCP ${scalarText(s.host)}:${scalarText(s.port ?? 502)} unit ${scalarText(s.unitId ?? 1)} registers ${registers} (function ${fn})`,
      field: 'unitId',
    };
  }
  if (d === 'ds18b20') {
    return { key: `1-Wire device ${scalarText(s.deviceId)}`, field: 'deviceId' };
  }
  return undefined;
}

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
