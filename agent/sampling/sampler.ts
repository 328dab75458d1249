/**
 * Samples every sensor at once: one async loop per sensor, each pulling its own
 * sensorReadings() generator, all running concurrently on the event loop. A round that is
 * waiting for a reply costs nothing, so the cycle time is the slowest sensor's latency,
 * not the sum; a slow or dead sensor only delays itself (every round has a timeout, and
 * turn-taking on a shared bus happens inside the drivers, per transfer).
 */
import { sensorReadings } from '../../drivers/readings.js';
import { ReadingStatus, type Driver, type Reading } from '../../drivers/types.js';
import type { Logger } from '../ops/logger.js';
import { realClock, type Clock } from './clock.js';
import { guardDriver } from './guard.js';
import { SensorHealthTracker, type SensorHealth } from './health.js';
import { cronTicks, intervalTicks } from './schedule.js';
import { SchedulingLag, type LagSnapshot } from './scheduling-lag.js';

export type { SensorHealth, SensorState } from './health.js';

export interface SampledSensor {
  id: string;
  /** Position in the configuration; passed to emit. */
  index: number;
  driver: Driver;
  /** Sample every intervalMs (drift-free) … */
  intervalMs?: number;
  /** … or on a cron expression (seconds field allowed). */
  schedule?: string;
  timeoutMs: number;
  /**
   * Fingerprint of the sensor's configuration. When given, replace() compares it instead
   * of the driver instance to decide whether the sensor changed.
   */
  configKey?: string;
}

export interface SamplerOptions {
  sensors: SampledSensor[];
  emit: (reading: Reading, sensorIndex: number) => void | Promise<void>;
  logger: Logger;
  clock?: Clock;
  alignToWallClock?: boolean;
  /** Spread first samples over this many ms so thousands of sensors do not fire at once. */
  startSpreadMs?: number;
  /** Backoff after failures (forwarded to sensorReadings). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

const DEFAULT_INTERVAL_MS = 1_000;
/** Golden-ratio spread: stable per index, even for any count, unchanged by a reload. */
const GOLDEN = 0.6180339887498949;

interface Running {
  sensor: SampledSensor;
  abort: AbortController;
  done: Promise<void>;
  health: SensorHealthTracker;
}

export class Sampler {
  private readonly running = new Map<string, Running>();
  private readonly clock: Clock;
  private readonly lag = new SchedulingLag();
  private completedRounds = 0;
  private started = false;
  private sensors: SampledSensor[];

  constructor(private readonly options: SamplerOptions) {
    this.clock = options.clock ?? realClock;
    assertUniqueIds(options.sensors);
    this.sensors = [...options.sensors];
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    for (const s of this.sensors) this.launch(s);
    this.options.logger.info({ sensors: this.sensors.length }, 'sampling started');
  }

  /** Abort every loop and wait until every generator has finished (drivers closed). */
  async stop(): Promise<void> {
    this.started = false;
    const all = [...this.running.values()];
    for (const r of all) r.abort.abort();
    await Promise.all(all.map((r) => r.done));
    for (const r of all) this.running.delete(r.sensor.id);
    this.options.logger.info({ sensors: all.length }, 'sampling stopped');
  }

  /** Reload: start added sensors, stop removed ones, restart changed ones, keep the rest. */
  async replace(sensors: SampledSensor[]): Promise<void> {
    assertUniqueIds(sensors);
    const next = new Map(sensors.map((s) => [s.id, s]));
    const toStop: Running[] = [];
    const toStart: SampledSensor[] = [];
    for (const [id, r] of this.running) {
      const wanted = next.get(id);
      if (!wanted) toStop.push(r);
      else if (changed(r.sensor, wanted)) {
        toStop.push(r);
        toStart.push(wanted);
      }
    }
    for (const s of sensors) if (!this.running.has(s.id)) toStart.push(s);
    for (const r of toStop) r.abort.abort();
    await Promise.all(toStop.map((r) => r.done));
    for (const r of toStop) this.running.delete(r.sensor.id);
    // Keep running entries current (e.g. a new index) without restarting them; the running
    // loop keeps the driver instance it opened.
    for (const [id, r] of this.running) {
      const wanted = next.get(id);
      if (wanted) r.sensor = { ...wanted, driver: r.sensor.driver };
    }
    this.sensors = [...sensors];
    if (this.started) for (const s of toStart) if (!this.running.has(s.id)) this.launch(s);
    const restarted = toStop.filter((r) => next.has(r.sensor.id)).length;
    this.options.logger.info(
      {
        removed: toStop.length - restarted,
        restarted,
        added: toStart.length - restarted,
        kept: sensors.length - toStart.length,
      },
      'sensors reloaded',
    );
  }

  health(): SensorHealth[] {
    const now = this.clock.now();
    const out: SensorHealth[] = [];
    for (const s of this.sensors) {
      const r = this.running.get(s.id);
      if (r) out.push(r.health.snapshot(now));
    }
    return out;
  }

  /** Completed rounds (and ticks passed over in backoff), ever increasing: the watchdog's proof of life. */
  progress(): number {
    return this.completedRounds;
  }

  /** Scheduling lag over every sensor since the last reset. */
  schedulingLag(options: { reset?: boolean } = {}): LagSnapshot {
    const snap = this.lag.snapshot();
    if (options.reset) this.lag.reset();
    return snap;
  }

  private launch(sensor: SampledSensor): void {
    const abort = new AbortController();
    const intervalMs = sensor.intervalMs ?? DEFAULT_INTERVAL_MS;
    const health = new SensorHealthTracker(sensor.id, Math.max(10_000, 10 * intervalMs));
    const entry: Running = { sensor, abort, health, done: Promise.resolve() };
    entry.done = this.run(entry, intervalMs).catch((err: unknown) => {
      this.options.logger.error({ sensor: sensor.id, err }, 'sensor loop ended by an error');
    });
    this.running.set(sensor.id, entry);
  }

  private async run(entry: Running, intervalMs: number): Promise<void> {
    const { sensor, abort, health } = entry;
    const { logger } = this.options;
    const signal = abort.signal;
    const onSkip = (skipped: number) => health.overrun(skipped, this.clock.now());
    // A tick is handed out only once the previous round is over (readings.ts pulls the next
    // tick after a round), so each tick after the first marks a completed round.
    let roundSucceeded = false;
    let ticksSoFar = 0;
    const onLag = (lagMs: number) => {
      this.lag.record(lagMs);
      if (ticksSoFar++ > 0) this.completedRounds++;
      roundSucceeded = false;
    };
    const ticks = sensor.schedule
      ? cronTicks(sensor.schedule, { signal, onSkip, onLag })
      : intervalTicks({
          intervalMs,
          clock: this.clock,
          signal,
          alignToWallClock: this.options.alignToWallClock,
          startOffsetMs: spreadOffset(sensor.index, this.options.startSpreadMs ?? 0, intervalMs),
          onSkip,
          onLag,
        });

    const readings = sensorReadings(guardDriver(sensor.driver, { timeoutMs: sensor.timeoutMs }), {
      sensor: sensor.id,
      ticks,
      timeoutMs: sensor.timeoutMs,
      signal,
      now: () => this.clock.wallNow(),
      backoffMinMs: this.options.backoffMinMs,
      backoffMaxMs: this.options.backoffMaxMs,
      onFault: (error, consecutive) => {
        health.fault(error, consecutive, this.clock.wallNow());
        // Log the transitions, not every failed round of a sensor that stays down.
        if (consecutive === 1 || consecutive === 3) {
          logger.warn(
            { sensor: sensor.id, code: error.code, consecutive, err: error.message },
            'sensor round failed',
          );
        }
      },
      onSkip: () => health.backoffSkip(),
    });

    let failingBefore = false;
    for await (const reading of readings) {
      if (reading.status !== ReadingStatus.Fault) {
        if (!roundSucceeded) {
          roundSucceeded = true;
          if (failingBefore) logger.info({ sensor: sensor.id }, 'sensor recovered');
          health.roundOk(this.clock.now());
        }
        health.reading();
        failingBefore = false;
      } else {
        failingBefore = true;
      }
      try {
        await this.options.emit(reading, sensor.index);
      } catch (err) {
        logger.error({ sensor: sensor.id, err }, 'emit failed; reading lost');
      }
    }
  }
}

function spreadOffset(index: number, spreadMs: number, intervalMs: number): number {
  if (!(spreadMs > 0)) return 0;
  const frac = (index * GOLDEN) % 1;
  return frac * Math.min(spreadMs, intervalMs);
}

function changed(a: SampledSensor, b: SampledSensor): boolean {
  const sameDriver =
    a.configKey !== undefined || b.configKey !== undefined
      ? a.configKey === b.configKey
      : a.driver === b.driver;
  return (
    !sameDriver ||
    a.intervalMs !== b.intervalMs ||
    a.schedule !== b.schedule ||
    a.timeoutMs !== b.timeoutMs
  );
}

function assertUniqueIds(sensors: SampledSensor[]): void {
  const seen = new Set<string>();
  for (const s of sensors) {
    if (seen.has(s.id)) throw new Error(`duplicate sensor id "${s.id}"`);
    seen.add(s.id);
  }
}
