/**
 * The one schema for the agent's configuration file. The TypeScript types are derived from
 * it, and so is docs/config.schema.json (`npm run docs:config`), so the docs, the
 * editor validation and the checks never disagree.
 */
import { isIP } from 'node:net';
import { nodeCron } from '../sampling/node-cron.js';
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
} from '../../drivers/config/bounds.js';
import { quote } from '../../drivers/config/describe-value.js';
import {
  backoffMaxMs,
  roundTimeoutMs,
  samplingIntervalMs,
  topicLevelName,
} from '../../drivers/config/sensor-keys.js';
import { DEFAULT_BACKOFF_MAX_MS } from '../../drivers/rounds.js';
import { sensorLocation, sensorSchema } from '../../drivers/registry.js';

/** Where the agent connects when the config names no broker. */
const DEFAULT_BROKER_URL = 'mqtt://127.0.0.1:1883';
/** Brokers a gateway may fail over between: a cluster's nodes, not a fleet. */
const MAX_BROKER_URLS = 16;

const brokerUrl = z
  .string()
  .regex(/^(mqtts?|wss?):\/\/[^\s]+$/, 'must be an mqtt://, mqtts://, ws:// or wss:// URL')
  .refine((url) => URL.canParse(url), {
    error: (iss) => `is not a URL the MQTT client can read, got ${quote(iss.input)}`,
  });

/**
 * Bound of mqtt.clientId, UTF-8 bytes. MQTT only promises 1-23 bytes of 0-9 a-z A-Z and lets
 * a broker accept more; most do, up to the format's 65,535, but hosted brokers stop far lower
 * (AWS IoT Core at 128). Room for `edge-agent-<64-character gateway id>`.
 */
export const MAX_CLIENT_ID_BYTES = 128;
/**
 * Bound of mqtt.username, UTF-8 bytes: far under MQTT's 65,535, with room for the tokens some
 * brokers take as the user name (a JWT or signed parameters, up to a few KiB).
 */
export const MAX_USERNAME_BYTES = 4096;

/**
 * A string the agent sends in CONNECT: UTF-8 of at most `maxBytes` (past MQTT's 65,535 no
 * client can even encode it), without control characters (MQTT forbids U+0000 and a broker
 * may close the connection for the others) or unpaired surrogates (not UTF-8).
 */
const mqttString = (maxBytes: number) =>
  z
    .string()
    // For editors: JSON Schema counts characters, each at least one byte.
    .meta({ maxLength: maxBytes })
    .refine((s) => Buffer.byteLength(s, 'utf8') <= maxBytes, {
      error: (iss) =>
        `must be at most ${maxBytes} bytes of UTF-8, got ${Buffer.byteLength(String(iss.input), 'utf8')} bytes`,
    })
    .refine((s) => !/[\p{Cc}\p{Cs}]/u.test(s), {
      error:
        'must not contain control characters (MQTT does not carry them in a client id or user name)',
    });

/** Said of every key holding a path. */
const RELATIVE_PATH =
  'A relative path is resolved against the directory of the configuration file.';

const mqttFields = z.strictObject({
  url: brokerUrl
    .optional()
    .meta({ default: DEFAULT_BROKER_URL })
    .describe('The broker. Set either url or urls.'),
  urls: z
    .array(brokerUrl)
    .min(1)
    .max(MAX_BROKER_URLS)
    .optional()
    .describe(
      'Brokers of one cluster, tried in order: on connection loss the agent moves to the next one (with the reconnect backoff). Same credentials and TLS files for all; the persistent session makes the switch lossless where the cluster shares sessions. Set either url or urls.',
    ),
  clientId: mqttString(MAX_CLIENT_ID_BYTES)
    .min(1)
    .optional()
    .describe(
      `Default: edge-agent-<gateway id>, stable so the broker keeps the session. At most ${MAX_CLIENT_ID_BYTES} bytes of UTF-8: MQTT only promises 1-23 bytes of 0-9 a-z A-Z, and brokers differ beyond (AWS IoT Core stops at 128). The Sparkplug connection and the delivery check use it with -sparkplug / -check appended.`,
    ),
  username: mqttString(MAX_USERNAME_BYTES)
    .optional()
    .describe(`MQTT user name, at most ${MAX_USERNAME_BYTES} bytes of UTF-8.`),
  passwordFile: z
    .string()
    .optional()
    .describe(
      `File holding the password (trailing newline ignored; at most 65,535 bytes, MQTT's limit). ${RELATIVE_PATH}`,
    ),
  passwordCredential: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/)
    .optional()
    .describe('Name of a systemd credential ($CREDENTIALS_DIRECTORY/<name>) holding the password.'),
  caFile: z.string().optional().describe(`PEM files for TLS (mqtts://). ${RELATIVE_PATH}`),
  certFile: z
    .string()
    .optional()
    .describe(`Client certificate (PEM) for mutual TLS. ${RELATIVE_PATH}`),
  keyFile: z
    .string()
    .optional()
    .describe(`Client private key (PEM) for mutual TLS. ${RELATIVE_PATH}`),
  rejectUnauthorized: z
    .boolean()
    .default(true)
    .describe("Verify the broker's certificate. Turn off only for a lab."),
  qos: z.literal([1, 2]).default(1).describe('QoS of telemetry publishes.'),
  protocolVersion: z
    .literal([4, 5])
    .optional()
    .describe(
      '4 = MQTT 3.1.1, 5 = MQTT 5. Default: MQTT 5 (a refused publish is visible), falling back to 3.1.1 when the broker refuses 5 or closes the connection on it (under 3.1.1 a publish the ACL denies is acknowledged as if delivered).',
    ),
  deliveryCheck: z
    .boolean()
    .default(false)
    .describe(
      'MQTT 3.1.1 only: a broker acknowledges a publish its ACL denies as if delivered. When on, a second short-lived connection subscribes to the telemetry topic after each connect, and batches leave the spool only once one has come back (not delivered: kept and counted as refused). Needs read access to the telemetry topic.',
    ),
  topicPrefix: topicLevelName('topic prefix')
    .default('edge')
    .describe('First topic level: <prefix>/<gateway>/telemetry.'),
  keepaliveSec: durationSec(5, 3600).default(30).describe('MQTT keepalive.'),
  inflight: count(1, 1024).default(16).describe('Publishes awaiting PUBACK at once.'),
  reconnectMinMs: durationMs(10, HOUR_MS)
    .default(500)
    .describe('First reconnect delay; doubles up to reconnectMaxMs, with jitter.'),
  reconnectMaxMs: durationMs(10, HOUR_MS).default(30_000).describe('Longest reconnect delay.'),
});

/**
 * After parsing, `urls` always lists the brokers (one when `url` was given, the default when
 * neither was) and `url` is the first of them; so a parsed config validates again as it is
 * (both set and agreeing), while a file naming two different first brokers is refused.
 */
const mqtt = mqttFields
  .superRefine((m, ctx) => {
    if (m.url !== undefined && m.urls !== undefined && m.url !== m.urls[0]) {
      ctx.addIssue({
        code: 'custom',
        path: ['urls'],
        message: 'set either mqtt.url or mqtt.urls, not both',
      });
    }
    const seen = new Map<string, number>();
    m.urls?.forEach((url, i) => {
      const first = seen.get(url);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['urls', i],
          message: `the same broker as mqtt.urls[${first}]`,
        });
      } else seen.set(url, i);
    });
  })
  .transform((m) => {
    const urls = m.urls ?? [m.url ?? DEFAULT_BROKER_URL];
    return { ...m, url: urls[0], urls };
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
    .describe(
      `State directory for the spool (simulate's --state-dir overrides it). ${RELATIVE_PATH} Unset: $STATE_DIRECTORY (set by systemd), else ./state in the working directory.`,
    ),
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

const homeassistant = z.strictObject({
  enabled: z
    .boolean()
    .default(false)
    .describe(
      'Home Assistant MQTT discovery: one device per gateway with a sensor entity per sensor and quantity (retained `<discoveryPrefix>/device/<gateway>/config`), and a retained latest-window state topic per sensor, `<topicPrefix>/<gateway>/state/<sensor>` (docs/consumers.md). Read at start; a reload only updates the sensors.',
    ),
  discoveryPrefix: topicLevelName('discovery prefix')
    .default('homeassistant')
    .describe(
      "Home Assistant's discovery prefix (its MQTT integration's setting); the agent also listens to `<discoveryPrefix>/status` to announce again when Home Assistant restarts.",
    ),
});

/**
 * A Sparkplug B topic token (group_id, edge_node_id, host_id): the Sparkplug spec forbids
 * the MQTT separators and wildcards in them; control characters and blanks are refused too,
 * since an Ignition tag path shows them badly and they are almost always a typo.
 */
const sparkplugToken = (what: string) =>
  z
    .string()
    .min(1, `${what} must not be empty`)
    .max(64, `${what} must be at most 64 characters`)
    .refine((s) => !/[/+#\s\p{Cc}]/u.test(s), {
      error: (iss) =>
        `${what} must not contain / + # or blanks (it is a Sparkplug topic token), got ${quote(iss.input)}`,
    });

const sparkplug = z.strictObject({
  enabled: z
    .boolean()
    .default(false)
    .describe('Also publish Sparkplug B (spBv1.0/...) on its own MQTT connection to mqtt.url.'),
  groupId: sparkplugToken('sparkplug group id')
    .optional()
    .describe('Sparkplug group_id (the first topic level after spBv1.0); required when enabled.'),
  edgeNodeId: sparkplugToken('sparkplug edge node id')
    .optional()
    .describe('Sparkplug edge_node_id. Default: the gateway id.'),
  primaryHostId: sparkplugToken('sparkplug primary host id')
    .optional()
    .describe(
      'When set, publish only while spBv1.0/STATE/<primaryHostId> says the host is online (Sparkplug 3.0).',
    ),
});

/**
 * Commands over MQTT (agent/fleet/): the keys of the `fleet` section that turn them on and
 * bound them. Spread into `fleet` so the section can grow other keys beside them.
 */
const fleetCommandKeys = {
  enabled: z
    .boolean()
    .default(false)
    .describe(
      'Answer commands over MQTT: requests on `<topicPrefix>/<gateway>/cmd/<name>`, answers on the MQTT 5 response topic or `<topicPrefix>/<gateway>/reply/<name>` (docs/operations.md, Running a fleet). Rides the telemetry connection; no listening port. Read at start.',
    ),
  rateLimit: z
    .strictObject({
      perSecond: factor(0.01, 1000)
        .default(5)
        .describe('Requests per second the gateway answers, on average (token bucket refill).'),
      burst: count(1, 10_000)
        .default(20)
        .describe('Requests answered at once after a quiet spell (token bucket size).'),
    })
    .prefault({})
    .describe(
      'Per gateway. A request over the limit gets a `rate-limited` answer, at most one a second; the rest are dropped and counted in health (`commands.dropped`).',
    ),
};

/** Remote configuration (docs/remote-config.md); its settings change only in the local file. */
const remoteConfig = z.strictObject({
  enabled: z
    .boolean()
    .default(false)
    .describe(
      'Accept a whole new config signed with a trusted Ed25519 key (command config/set, needs fleet.enabled), apply it on probation and roll it back when the gateway does not come back healthy. See docs/remote-config.md.',
    ),
  trustedKeysDir: z
    .string()
    .min(1)
    .default('/etc/edge-agent/trusted-keys')
    .describe(
      `Directory of the operators' Ed25519 public keys (*.pem); refused when others than root or its owner may write it. ${RELATIVE_PATH}`,
    ),
  probationMs: durationMs(1000, HOUR_MS)
    .default(60_000)
    .describe(
      'How long a new config has to prove itself: connected to the broker and every enabled sensor reporting; otherwise the previous file comes back.',
    ),
  allowPaths: z
    .array(z.string().min(1))
    .max(64)
    .default([])
    .describe(
      `Directories where a remote config may name files (mqtt password, TLS files) besides the credentials directory. ${RELATIVE_PATH}`,
    ),
});

const fleet = z.strictObject({
  ...fleetCommandKeys,
  group: topicLevelName('fleet group')
    .optional()
    .describe('The fleet group this gateway belongs to; a config signed for this group applies.'),
  remoteConfig: remoteConfig.prefault({}),
});

export const configSchema = z.strictObject({
  gateway: z
    .strictObject({
      id: topicLevelName('gateway id').describe(
        'This gateway’s name; the second MQTT topic level.',
      ),
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
  homeassistant: homeassistant.prefault({}),
  sparkplug: sparkplug.prefault({}),
  fleet: fleet.prefault({}),
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
  const sparkplug = (root.sparkplug ?? {}) as Record<string, unknown>;
  if (sparkplug.enabled === true && sparkplug.groupId === undefined) {
    issues.push({
      path: ['sparkplug', 'groupId'],
      message: 'is required when sparkplug.enabled is true',
    });
  }
  return issues;
}

/** node-cron's check; a cron line is short, and a validator that throws means "invalid". */
function validCron(expression: string): boolean {
  if (expression.length > 200) return false;
  try {
    return nodeCron().validate(expression);
  } catch {
    return false;
  }
}

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
