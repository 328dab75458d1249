/**
 * Samples every sensor at once: one SensorRun per sensor (its round generator pulled into
 * emit), all running concurrently on the event loop. A round that is
 * waiting for a reply costs nothing, so the cycle time is the slowest sensor's latency,
 * not the sum; a slow or dead sensor only delays itself (every round has a timeout, and
 * turn-taking on a shared bus happens inside the drivers, per transfer). Slot waits and
 * round deadlines of all sensors share one TimerQueue, so sensors due together start in
 * one timer callback.
 */
import type { Reading } from '../../drivers/types.js';
import type { Logger } from '../ops/logger.js';
import { realClock, type Clock } from '../../drivers/time.js';
import type { SensorHealth } from './health.js';
import { SchedulingLag, type LagSnapshot } from './scheduling-lag.js';
import { SensorRun, type RunContext, type RunSensor } from './sensor-run.js';
import { TimerQueue } from './timer-queue.js';

export interface SampledSensor extends RunSensor {
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
  /** Backoff after failures (forwarded to each sensor's RoundEngine). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

export class Sampler {
  private readonly running = new Map<string, SensorRun>();
  private readonly runContext: RunContext;
  private readonly clock: Clock;
  private readonly lag = new SchedulingLag();
  private readonly timers: TimerQueue;
  private completedRounds = 0;
  private started = false;
  private sensors: SampledSensor[];

  constructor(private readonly options: SamplerOptions) {
    this.clock = options.clock ?? realClock;
    this.timers = new TimerQueue(this.clock);
    const clock = this.clock;
    this.runContext = {
      clock,
      wallNow: () => clock.wallNow(),
      timers: this.timers,
      roundTimer: (onTimeout) => this.timers.oneShot(onTimeout),
      logger: options.logger,
      emit: options.emit,
      alignToWallClock: options.alignToWallClock,
      startSpreadMs: options.startSpreadMs,
      backoffMinMs: options.backoffMinMs,
      backoffMaxMs: options.backoffMaxMs,
      onTick: (lagMs, completedRound) => {
        this.lag.record(lagMs);
        if (completedRound) this.completedRounds++;
      },
    };
    assertUniqueIds(options.sensors);
    this.sensors = [...options.sensors];
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    // One origin for every sensor, now and after a reload: sensors with the same interval
    // share their slots instead of each starting its grid when its loop was launched.
    this.runContext.origin ??= { now: this.clock.now(), wallNow: this.clock.wallNow() };
    for (const s of this.sensors) this.launch(s);
    this.options.logger.info({ sensors: this.sensors.length }, 'sampling started');
  }

  /** Abort every loop and wait until every generator has finished (drivers closed). */
  async stop(): Promise<void> {
    this.started = false;
    const all = [...this.running.values()];
    for (const r of all) r.stop();
    await Promise.all(all.map((r) => r.done));
    for (const r of all) this.running.delete(r.sensor.id);
    this.options.logger.info({ sensors: all.length }, 'sampling stopped');
  }

  /** Reload: start added sensors, stop removed ones, restart changed ones, keep the rest. */
  async replace(sensors: SampledSensor[]): Promise<void> {
    assertUniqueIds(sensors);
    const next = new Map(sensors.map((s) => [s.id, s]));
    const toStop: SensorRun[] = [];
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
    for (const r of toStop) r.stop();
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

  /** The running sensor `id` (its driver instance, open or being reopened), if it runs. */
  runningSensor(id: string): SampledSensor | undefined {
    return this.running.get(id)?.sensor;
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
    this.running.set(sensor.id, new SensorRun(sensor, this.runContext));
  }
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
    a.timeoutMs !== b.timeoutMs ||
    a.backoffMaxMs !== b.backoffMaxMs
  );
}

function assertUniqueIds(sensors: SampledSensor[]): void {
  const seen = new Set<string>();
  for (const s of sensors) {
    if (seen.has(s.id)) throw new Error(`duplicate sensor id "${s.id}"`);
    seen.add(s.id);
  }
}
