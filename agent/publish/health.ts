/**
 * The health report: the one shape published on `<prefix>/<gateway>/health`, documented in
 * docs/payload.md and checked by docs/schemas/health.schema.json, which lists every field
 * (a field added here and not there fails the schema test, and the other way round).
 * Built from the components' own counters by healthReport(); Pipeline.health() returns it
 * and the metrics endpoint reads it.
 *
 * Every field is always present: a value that may not exist is null, never left out, so a
 * subscriber can tell "no error" from "an agent that does not report errors".
 */
import type { SensorErrorCode } from '../../drivers/types.js';
import type { RingCounters } from '../queue/ring-buffer.js';
import type { EventLoopSnapshot } from '../sampling/event-loop.js';
import type { SensorHealth, SensorState } from '../sampling/health.js';
import { HEALTH_SCHEMA } from './payload.js';
import type { PublisherStats } from './publisher.js';
import type { HomeAssistantStats } from '../consumers/homeassistant/bridge.js';
import type { SparkplugStats } from '../consumers/sparkplug/node.js';
import type { SpoolStats } from './spool/spool.js';
import type { GapNote } from './spool/gap-note.js';
import type { CommandCounters } from '../fleet/command-transport.js';

/** The spool's figures; the latest drop is null before any. */
export type SpoolHealth = Omit<SpoolStats, 'lastDrop'> & { lastDrop: GapNote | null };

/** The publisher's figures; reconnects and the spool have their own places in the report. */
export type MqttHealth = Omit<PublisherStats, 'spool' | 'reconnects' | 'lastError'> & {
  /** The latest connection or publish error, as logged; null when there was none. */
  lastError: string | null;
};

/** The Sparkplug node's figures (sparkplug.enabled); null when there was no error. */
export type SparkplugHealth = Omit<SparkplugStats, 'lastError'> & { lastError: string | null };

/** The Home Assistant bridge's figures (homeassistant.enabled); null when there was no error. */
export type HomeAssistantHealth = Omit<HomeAssistantStats, 'lastError'> & {
  lastError: string | null;
};

export interface SensorHealthReport {
  id: string;
  state: SensorState;
  lastError: { code: SensorErrorCode; message: string; at: number } | null;
  consecutiveFailures: number;
  achievedRateHz: number;
  skippedSlots: number;
  readings: number;
  faults: number;
}

export interface HealthReport {
  schema: typeof HEALTH_SCHEMA;
  gateway: string;
  /** When the report was built, ms since the epoch; the same in every part of a report. */
  t: number;
  /**
   * Part `part` of `parts` (1 of 1 when whole): a report the broker would not take in one
   * message is sent in parts, each with the gateway's own figures and a share of `sensors`
   * and `faults` (agent/publish/health-parts.ts).
   */
  part: number;
  parts: number;
  uptimeSec: number;
  /** Readings written into the ring, ever. */
  readings: number;
  /** Everything dropped, by where: ring overflow (readings), spool bound (batches). */
  drops: { ring: number; spool: number };
  /** Failed sampling rounds per sensor id, ever. */
  faults: Record<string, number>;
  /** Successful connects after the first one. */
  reconnects: number;
  /** Age of the oldest batch the broker has not acknowledged yet; 0 when all are. */
  oldestUnsentAgeMs: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number; mean: number };
  spool: SpoolHealth;
  ring: RingCounters;
  mqtt: MqttHealth;
  /** The Sparkplug B node's connection and session; null when sparkplug is off. */
  sparkplug: SparkplugHealth | null;
  /** The Home Assistant discovery and state topics; null when homeassistant is off. */
  homeassistant: HomeAssistantHealth | null;
  workerRestarts: number;
  sensors: SensorHealthReport[];
  rssBytes: number;
  /** Reports that could not be sent because the agent was offline. */
  healthSkipped: number;
  /** Commands over MQTT (fleet.enabled); null when they are off. */
  commands: CommandCounters | null;
  /** The running config file: its remote version (null: never set remotely) and sha256. */
  config: ConfigIdentity;
}

export interface ConfigIdentity {
  version: number | null;
  hash: string | null;
}

export interface HealthInputs {
  gateway: string;
  now: number;
  startedAt: number;
  ring: RingCounters;
  publisher: PublisherStats;
  /** Undefined when sparkplug is off. */
  sparkplug?: SparkplugStats;
  /** Undefined when homeassistant is off. */
  homeassistant?: HomeAssistantStats;
  eventLoop: EventLoopSnapshot;
  sensors: readonly SensorHealth[];
  workerRestarts: number;
  rssBytes: number;
  healthSkipped: number;
  /** Undefined when commands over MQTT are off. */
  commands?: CommandCounters;
  /** Undefined when the pipeline was started without a config file (tests, the simulator's scenario). */
  config?: ConfigIdentity;
}

export function healthReport(i: HealthInputs): HealthReport {
  const { spool, reconnects, lastError, ...mqtt } = i.publisher;
  return {
    schema: HEALTH_SCHEMA,
    gateway: i.gateway,
    t: i.now,
    part: 1,
    parts: 1,
    uptimeSec: Math.round((i.now - i.startedAt) / 1000),
    readings: i.ring.written,
    drops: { ring: i.ring.dropped, spool: spool.dropped },
    faults: Object.fromEntries(i.sensors.map((s) => [s.id, s.faults])),
    reconnects,
    oldestUnsentAgeMs: spool.oldestAgeMs,
    eventLoopDelayMs: {
      p50: i.eventLoop.p50Ms,
      p99: i.eventLoop.p99Ms,
      max: i.eventLoop.maxMs,
      mean: i.eventLoop.meanMs,
    },
    spool: { ...spool, lastDrop: spool.lastDrop ?? null },
    ring: i.ring,
    mqtt: { ...mqtt, lastError: lastError ?? null },
    sparkplug: i.sparkplug ? withLastError(i.sparkplug) : null,
    homeassistant: i.homeassistant ? withLastError(i.homeassistant) : null,
    workerRestarts: i.workerRestarts,
    sensors: i.sensors.map((s) => ({
      id: s.id,
      state: s.state,
      lastError: s.lastError ?? null,
      consecutiveFailures: s.consecutiveFailures,
      achievedRateHz: s.achievedRateHz,
      skippedSlots: s.skippedSlots,
      readings: s.readings,
      faults: s.faults,
    })),
    rssBytes: i.rssBytes,
    healthSkipped: i.healthSkipped,
    commands: i.commands ? { ...i.commands } : null,
    config: i.config ?? { version: null, hash: null },
  };
}

/** An output's figures with `lastError` always present (null when there was none). */
function withLastError<T extends { lastError?: string }>(
  s: T,
): Omit<T, 'lastError'> & { lastError: string | null } {
  const { lastError, ...rest } = s;
  return { ...rest, lastError: lastError ?? null };
}
