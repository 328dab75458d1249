/**
 * The life of one sampled sensor: pull a tick, run a round, hand its readings to emit,
 * keep its health — until stopped. The sampler runs one per sensor, all at once.
 *
 * A class with methods rather than closures and async generators: at 10,000 sensors every
 * closure, context and AbortSignal kept per sensor costs megabytes, and every suspended
 * frame keeps its last values alive across the one-second wait, into the old generation.
 * The same loop as a generator, for other consumers, is sensorRounds() (drivers/readings.ts).
 */
import { SensorRounds } from '../../drivers/readings.js';
import { ReadingStatus, type Driver, type Reading, type SensorError } from '../../drivers/types.js';
import type { Logger } from '../ops/logger.js';
import type { Clock } from './clock.js';
import { SensorHealthTracker } from './health.js';
import { cronTicks, intervalTicks, type TickSource } from './schedule.js';
import type { OneShot, TimerQueue } from './timer-queue.js';

export interface LoopSensor {
  id: string;
  driver: Driver;
  /** Position in the configuration; passed to emit. */
  index: number;
  intervalMs?: number;
  schedule?: string;
  timeoutMs: number;
}

/** What every loop of one sampler shares. */
export interface LoopContext {
  clock: Clock;
  /** clock.wallNow, bound once for every loop. */
  wallNow: () => number;
  timers: TimerQueue;
  /** timers.oneShot, bound once for every loop. */
  roundTimer: (onTimeout: () => void) => OneShot;
  logger: Logger;
  emit: (reading: Reading, sensorIndex: number) => void | Promise<void>;
  alignToWallClock?: boolean;
  startSpreadMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Told the lag of every tick, and whether it marks the end of an earlier round. */
  onTick(lagMs: number, completedRound: boolean): void;
}

export const DEFAULT_INTERVAL_MS = 1_000;
/** Golden-ratio spread: stable per index, even for any count, unchanged by a reload. */
const GOLDEN = 0.6180339887498949;

export class SensorLoop {
  readonly health: SensorHealthTracker;
  readonly done: Promise<void>;
  private readonly ticks: TickSource | AsyncGenerator<number>;
  private readonly rounds: SensorRounds;
  /** Only cron ticks need a signal (node-cron tasks); interval ticks end with return(). */
  private readonly cronStop: AbortController | undefined;
  private stopped = false;
  private ticksSoFar = 0;
  private roundSucceeded = false;
  private failingBefore = false;

  constructor(
    /** Current settings; the sampler updates index etc. on a reload without a restart. */
    public sensor: LoopSensor,
    private readonly ctx: LoopContext,
  ) {
    const intervalMs = sensor.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.health = new SensorHealthTracker(sensor.id, Math.max(10_000, 10 * intervalMs));
    if (sensor.schedule) {
      this.cronStop = new AbortController();
      this.ticks = cronTicks(sensor.schedule, {
        signal: this.cronStop.signal,
        onSkip: this.onSkip,
        onLag: this.onLag,
      });
    } else {
      this.ticks = intervalTicks({
        intervalMs,
        clock: ctx.clock,
        timers: ctx.timers,
        alignToWallClock: ctx.alignToWallClock,
        startOffsetMs: spreadOffset(sensor.index, ctx.startSpreadMs ?? 0, intervalMs),
        onSkip: this.onSkip,
        onLag: this.onLag,
      });
    }
    this.rounds = createRounds(sensor.driver, sensor, this, ctx);
    this.done = this.run();
  }

  /** End the loop: the round in flight ends at once; `done` settles once the driver is closed. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.cronStop?.abort();
    void this.ticks.return(undefined);
    this.rounds.stop();
  }

  onFault(error: SensorError, consecutive: number): void {
    const { ctx } = this;
    this.health.fault(error, consecutive, ctx.clock.wallNow());
    // Log the transitions, not every failed round of a sensor that stays down.
    if (consecutive === 1 || consecutive === 3) {
      ctx.logger.warn(
        { sensor: this.sensor.id, code: error.code, consecutive, err: error.message },
        'sensor round failed',
      );
    }
  }

  private readonly onSkip = (skipped: number): void => {
    this.health.overrun(skipped, this.ctx.clock.now());
  };

  // A tick is handed out only once the previous round is over, so each tick after the
  // first marks a completed round.
  private readonly onLag = (lagMs: number): void => {
    this.ctx.onTick(lagMs, this.ticksSoFar++ > 0);
    this.roundSucceeded = false;
  };

  /** Never rejects: an error ends this sensor's loop, logged, and no other. */
  private async run(): Promise<void> {
    try {
      for (;;) {
        const tick = await this.ticks.next();
        if (tick.done || this.stopped) return;
        const readings = await this.rounds.run(tick.value);
        if (this.stopped) return;
        if (readings) {
          const blocked = this.deliver(readings);
          if (blocked) await blocked;
        }
      }
    } catch (err) {
      this.ctx.logger.error({ sensor: this.sensor.id, err }, 'sensor loop ended by an error');
    } finally {
      await this.ticks.return(undefined);
      await this.rounds.close();
    }
  }

  /** Health bookkeeping and emit; a promise only when an emit is waiting (a blocking ring). */
  private deliver(readings: Reading[]): Promise<void> | undefined {
    if (readings.some((r) => r.status !== ReadingStatus.Fault)) {
      if (!this.roundSucceeded) {
        this.roundSucceeded = true;
        if (this.failingBefore)
          this.ctx.logger.info({ sensor: this.sensor.id }, 'sensor recovered');
        this.health.roundOk(this.ctx.clock.now());
      }
      this.failingBefore = false;
    } else {
      this.failingBefore = true;
    }
    for (let i = 0; i < readings.length; i++) {
      const pending = this.emitOne(readings[i]);
      if (pending) return this.deliverRest(pending, readings, i + 1);
    }
    return undefined;
  }

  private async deliverRest(first: Promise<void>, readings: Reading[], from: number) {
    await first.catch((err: unknown) => this.emitFailed(err));
    for (let i = from; i < readings.length; i++) {
      const pending = this.emitOne(readings[i]);
      if (pending) await pending.catch((err: unknown) => this.emitFailed(err));
    }
  }

  private emitOne(reading: Reading): Promise<void> | undefined {
    if (reading.status !== ReadingStatus.Fault) this.health.reading();
    try {
      return this.ctx.emit(reading, this.sensor.index) ?? undefined;
    } catch (err) {
      this.emitFailed(err);
      return undefined;
    }
  }

  private emitFailed(err: unknown): void {
    this.ctx.logger.error({ sensor: this.sensor.id, err }, 'emit failed; reading lost');
  }
}

function createRounds(
  driver: Driver,
  sensor: LoopSensor,
  loop: SensorLoop,
  ctx: LoopContext,
): SensorRounds {
  return new SensorRounds(driver, {
    sensor: sensor.id,
    timeoutMs: sensor.timeoutMs,
    now: ctx.wallNow,
    roundTimer: ctx.roundTimer,
    backoffMinMs: ctx.backoffMinMs,
    backoffMaxMs: ctx.backoffMaxMs,
    onFault: (error, consecutive) => loop.onFault(error, consecutive),
    onSkip: () => loop.health.backoffSkip(),
  });
}

function spreadOffset(index: number, spreadMs: number, intervalMs: number): number {
  if (!(spreadMs > 0)) return 0;
  const frac = (index * GOLDEN) % 1;
  return frac * Math.min(spreadMs, intervalMs);
}
