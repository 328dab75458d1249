/**
 * The life of one sampled sensor: its round generator (drivers/rounds.ts) pulled step by
 * step, each round's readings handed to emit, its health kept — until stopped. The sampler
 * runs one per sensor, all at once.
 *
 * Waiting for a slot holds little per sensor: the generator's frame, suspended at its last
 * yield, and this run's timer entry for the slot. The run pulls the generator (next(), whose
 * reaction is the reused onStep/onEnd: no second suspended frame, as `for await` would keep)
 * when the slot is due, so nothing is allocated for the wait and nothing of a wait lives
 * long enough to be promoted to V8's old generation, where every promoted byte is CPU spent
 * in full collections later (the CPU and lag targets at 10,000 sensors,
 * docs/benchmarks/sampling.md). Ticks from a cron schedule are pulled at once, and the
 * generator waits for them. The generator drops a round's readings once they are yielded.
 */
import { engineRounds, RoundEngine } from '../../drivers/rounds.js';
import type { Clock } from '../../drivers/time.js';
import { ReadingStatus, type Driver, type Reading, type SensorError } from '../../drivers/types.js';
import type { Logger } from '../ops/logger.js';
import { SensorHealthTracker } from './health.js';
import { cronTicks, IntervalTicks } from './schedule.js';
import { EARLY_MS, TimerEntry, type OneShot, type TimerQueue } from './timer-queue.js';

export interface RunSensor {
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

/** What every sensor run of one sampler shares. */
export interface RunContext {
  clock: Clock;
  /** clock.wallNow, bound once for every run. */
  wallNow: () => number;
  timers: TimerQueue;
  /** timers.oneShot, bound once for every run. */
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

export class SensorRun {
  readonly health: SensorHealthTracker;
  private readonly ticks: IntervalTicks | AsyncGenerator<number>;
  private readonly engine: RoundEngine;
  /** Only cron ticks need a signal (node-cron tasks); interval ticks end with return(). */
  private readonly cronStop: AbortController | undefined;
  private ticksSoFar = 0;
  private roundSucceeded = false;
  private failingBefore = false;
  /** The round generator while the run lasts; undefined once it has ended. */
  private rounds: AsyncGenerator<Reading[]> | undefined;
  /** Fires when the next interval slot is due: the generator is pulled then. */
  private readonly slot = new TimerEntry(() => this.next());
  /** Made when someone asks for `done` before the run has ended, not per sensor up front. */
  private ended: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(
    /** Current settings; the sampler updates index etc. on a reload without a restart. */
    public sensor: RunSensor,
    private readonly ctx: RunContext,
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
    this.engine = new RoundEngine(sensor.driver, {
      sensor: sensor.id,
      timeoutMs: sensor.timeoutMs,
      now: ctx.wallNow,
      elapsed: () => ctx.clock.now(),
      roundTimer: ctx.roundTimer,
      backoffMinMs: ctx.backoffMinMs,
      backoffMaxMs: sensor.backoffMaxMs ?? ctx.backoffMaxMs,
      onFault: (error, consecutive) => this.onFault(error, consecutive),
      onSkip: () => this.health.backoffSkip(),
    });
    this.rounds = engineRounds(this.engine, this.ticks);
    this.pull();
  }

  /** Settles once the run has ended and the driver is closed; never rejects. */
  get done(): Promise<void> {
    if (this.rounds === undefined) return Promise.resolve();
    if (this.ended === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.ended = { promise, resolve };
    }
    return this.ended.promise;
  }

  /** End the run: the round in flight ends at once; `done` settles once the driver is closed. */
  stop(): void {
    this.cronStop?.abort();
    void this.ticks.return(undefined);
    this.engine.stop();
    // A run waiting for its slot pulls now: the generator sees its ticks ended and closes.
    if (this.slot.queued) {
      this.ctx.timers.cancel(this.slot);
      this.next();
    }
  }

  /** Pull the generator when the next slot is due (interval ticks), else at once. */
  private pull(): void {
    const { ticks } = this;
    if (ticks instanceof IntervalTicks && !ticks.ended) {
      const due = ticks.nextDue();
      const { timers } = this.ctx;
      if (due > timers.now() + EARLY_MS) {
        timers.schedule(this.slot, due);
        return;
      }
    }
    this.next();
  }

  /** Ask the generator for its next round: onStep gets it, onEnd an error that ended it. */
  private next(): void {
    this.rounds?.next().then(this.onStep, this.onEnd);
  }

  private readonly onStep = (step: IteratorResult<Reading[]>): void => {
    if (step.done) {
      this.end();
      return;
    }
    if (!this.deliver(step.value)) this.pull();
  };

  private readonly onEnd = (err: unknown): void => {
    // An error ends this sensor's run, logged, and no other.
    this.ctx.logger.error({ sensor: this.sensor.id, err }, 'sensor loop ended by an error');
    this.end();
  };

  private end(): void {
    this.rounds = undefined;
    this.ended?.resolve();
  }

  private onFault(error: SensorError, consecutive: number): void {
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

  /**
   * Health bookkeeping and emit. False when every emit is done; true when one is waiting (a
   * blocking ring), and then the rest are emitted and the next round pulled after it.
   */
  private deliver(readings: Reading[]): boolean {
    if (anyMeasured(readings)) {
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
      if (pending) {
        void this.deliverRest(pending, readings, i + 1);
        return true;
      }
    }
    return false;
  }

  private async deliverRest(first: Promise<void>, readings: Reading[], from: number) {
    await first.catch((err: unknown) => this.emitFailed(err));
    for (let i = from; i < readings.length; i++) {
      const pending = this.emitOne(readings[i]);
      if (pending) await pending.catch((err: unknown) => this.emitFailed(err));
    }
    this.pull();
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

function anyMeasured(readings: Reading[]): boolean {
  for (let i = 0; i < readings.length; i++)
    if (readings[i].status !== ReadingStatus.Fault) return true;
  return false;
}

function spreadOffset(index: number, spreadMs: number, intervalMs: number): number {
  if (!(spreadMs > 0)) return 0;
  const frac = (index * GOLDEN) % 1;
  return frac * Math.min(spreadMs, intervalMs);
}
