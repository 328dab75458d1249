/** A health report built the way the pipeline builds it, from plausible component figures. */
import {
  healthReport,
  type HealthInputs,
  type HealthReport,
} from '../../../agent/publish/health.js';
import type { SensorHealth } from '../../../agent/sampling/health.js';

export function sampleSensor(over: Partial<SensorHealth> & { id: string }): SensorHealth {
  return {
    state: 'ok',
    consecutiveFailures: 0,
    achievedRateHz: 1,
    skippedSlots: 0,
    readings: 0,
    faults: 0,
    ...over,
  };
}

export function sampleHealthInputs(over: Partial<HealthInputs> = {}): HealthInputs {
  return {
    gateway: 'gw',
    now: 1_764_288_000_000,
    startedAt: 1_764_288_000_000 - 120_000,
    ring: { written: 1200, read: 1190, dropped: 3, capacity: 65_536, fill: 10 },
    publisher: {
      connected: true,
      broker: 'mqtt://broker-b:1883',
      reconnects: 2,
      connectFailures: 5,
      inflight: 1,
      published: 40,
      refusals: 0,
      splits: 0,
      setAside: 0,
      protocolVersion: 5,
      qos: 1,
      spool: {
        depth: 7,
        bytes: 4096,
        dropped: 1,
        oldestAgeMs: 2500,
        lastSeq: 47,
        lastDrop: { count: 1, firstSeq: 12, lastSeq: 12, reason: 'spool-bound' },
        diskOk: true,
        markOk: true,
        memoryDepth: 0,
        memoryBytes: 0,
        withheld: 0,
        unnumbered: 0,
        corruptMovedAside: 0,
        commits: 30,
        setAside: 0,
        deadLetters: 0,
        deadLetterBytes: 0,
        deadLettersDropped: 0,
      },
    },
    eventLoop: { p50Ms: 1.5, p99Ms: 12, maxMs: 40, meanMs: 2 },
    sensors: [
      sampleSensor({ id: 'boiler-in', readings: 600 }),
      sampleSensor({
        id: 'boiler-out',
        state: 'failing',
        readings: 590,
        faults: 9,
        consecutiveFailures: 4,
        lastError: { code: 'NACK', message: 'device did not acknowledge', at: 1_764_287_999_000 },
      }),
    ],
    workerRestarts: 1,
    rssBytes: 80 * 2 ** 20,
    healthSkipped: 0,
    ...over,
  };
}

export const sampleHealth = (over: Partial<HealthInputs> = {}): HealthReport =>
  healthReport(sampleHealthInputs(over));
