/**
 * The life of one sampled sensor: wait for its slot, run a round, hand its readings to
 * emit, keep its health — until stopped. The sampler runs one per sensor, all at once.
 *
 * A small state machine driven by callbacks rather than an async loop, so that a waiting
 * sensor holds nothing but its reused TimerQueue entry: a suspended async frame per sensor
 * would keep its last round's values and a promise alive through every wait, long enough
 * for V8 to promote them to the old generation (the RSS target at 10,000 sensors,
 * docs/benchmarks/sampling.md). The same loop as an async generator, for other consumers,
 * is sensorRounds() (drivers/readings.ts).
 */
import { SensorRounds } from '../../drivers/readings.js';
import { ReadingStatus, type Driver, type Reading, type SensorError } from '../../drivers/types.js';
import type { Logger } from '../ops/logger.js';
import type { Clock } from './clock.js';
import { SensorHealthTracker } from './health.js';
import { cronTicks, IntervalTicks } from './schedule.js';
import type { OneShot, TimerQueue } from './timer-queue.js';

export interface LoopSensor {
  id: string;
  driver: Driver;
  /** Position in the configuration; passed to emit. */
  index: number;
  intervalMs?: number;
  schedule?: string;
  timeoutMs: number;
  /** This sensor's backoff ceiling; the sampler's when absent. */
  backoffMaxMs?: number;
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
  /** Where every sensor's grid starts (Sampler.start()), so one interval means one slot. */
  origin?: { now: number; wallNow: number };
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Told the lag of every tick, and whether it marks the end of an earlier round. */
  onTick(lagMs: number, completedRound: boolean): void;
}

const DEFAULT_INTERVAL_MS = 1_000;
/** Golden-ratio spread: stable per index, even for any count, unchanged by a reload. */
const GOLDEN = 0.6180339887498949;

export class SensorLoop {
  readonly health: SensorHealthTracker;
  /** Settles once the loop has ended and the driver is closed; never rejects. */
  readonly done: Promise<void>;
  private readonly ticks: IntervalTicks | AsyncGenerator<number>;
  private readonly rounds: SensorRounds;
  /** Only cron ticks need a signal (node-cron tasks); interval ticks end with return(). */
  private readonly cronStop: AbortController | undefined;
  private stopped = false;
  private finished = false;
  /** A round (or its delivery) is under way: a stop lets it end and then finishes. */
  private busy = false;
  private resolveDone!: () => void;
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
      this.ticks = new IntervalTicks({
        intervalMs,
        clock: ctx.clock,
        timers: ctx.timers,
        alignToWallClock: ctx.alignToWallClock,
        origin: ctx.origin,
        startOffsetMs: spreadOffset(sensor.index, ctx.startSpreadMs ?? 0, intervalMs),
        onSkip: this.onSkip,
        onLag: this.onLag,
      });
    }
    this.rounds = createRounds(sensor.driver, sensor, this, ctx);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.next();
  }

  /** End the loop: the round in flight ends at once; `done` settles once the driver is closed. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.cronStop?.abort();
    void this.ticks.return(undefined);
    this.rounds.stop();
    if (!this.busy) void this.finish();
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

  /** Wait for the next slot (or cron tick), then run its round. */
  private next(): void {
    if (this.stopped) return void this.finish();
    this.busy = false;
    const { ticks } = this;
    if (ticks instanceof IntervalTicks) {
      if (!ticks.wait(this.startRound)) void this.finish();
      return;
    }
    ticks
      .next()
      .then((tick) => (tick.done ? void this.finish() : this.startRound(tick.value)), this.failed);
  }

  private readonly startRound = (wallDue: number): void => {
    if (this.stopped) return void this.finish();
    this.busy = true;
    this.rounds.run(wallDue).then(this.afterRound, this.failed);
  };

  private readonly afterRound = (readings: Reading[] | undefined): void => {
    if (this.stopped) return void this.finish();
    const blocked = readings ? this.deliver(readings) : undefined;
    if (blocked) blocked.then(() => this.next(), this.failed);
    else this.next();
  };

  /** An error ends this sensor's loop, logged, and no other. */
  private readonly failed = (err: unknown): void => {
    this.ctx.logger.error({ sensor: this.sensor.id, err }, 'sensor loop ended by an error');
    this.stopped = true;
    void this.finish();
  };

  private async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    try {
      await this.ticks.return(undefined);
      await this.rounds.close();
    } catch (err) {
      this.ctx.logger.error({ sensor: this.sensor.id, err }, 'closing the sensor failed');
    } finally {
      this.resolveDone();
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
    backoffMaxMs: sensor.backoffMaxMs ?? ctx.backoffMaxMs,
    onFault: (error, consecutive) => loop.onFault(error, consecutive),
    onSkip: () => loop.health.backoffSkip(),
  });
}

function spreadOffset(index: number, spreadMs: number, intervalMs: number): number {
  if (!(spreadMs > 0)) return 0;
  const frac = (index * GOLDEN) % 1;
  return frac * Math.min(spreadMs, intervalMs);
}
