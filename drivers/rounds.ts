/**
 * The round engine: turns a Driver into an async generator of Readings, the same way for
 * every driver and for every consumer (the agent's sampler, the driver tests): one round per
 * tick, each round bounded by a timeout, failures turned into Fault readings (value NaN,
 * counted by the worker) with backoff, and the device closed and reopened after repeated
 * failures. Nothing a device does makes an exception escape the generator.
 */
import {
  ReadingStatus,
  SensorError,
  type Driver,
  type MeasureSink,
  type Measurement,
  type Reading,
  type SensorErrorCode,
} from './types.js';

/** Backoff after failures when the caller sets none: 250 ms doubling up to 30 s. */
export const DEFAULT_BACKOFF_MIN_MS = 250;
export const DEFAULT_BACKOFF_MAX_MS = 30_000;

export interface RoundEngineOptions {
  sensor: string;
  timeoutMs: number;
  /** The sensor's signal: aborting it ends the round in flight and every later one (as stop()). */
  signal?: AbortSignal;
  /** Backoff after failures: min · 2^(n-1), capped at max (config sampling.backoffMaxMs). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Consecutive failures after which the device is closed and reopened. */
  reopenAfter?: number;
  /** Upper bound of close(): a device that never finishes closing must not block a reload. */
  closeTimeoutMs?: number;
  /** Wall clock that labels readings, replaceable in tests. */
  now?: () => number;
  /**
   * Monotonic clock the backoff waits by, so a step of the wall clock neither holds a sensor
   * back for an hour nor ends its backoff early. Default: `now` when given (a test clock),
   * else performance.now.
   */
  elapsed?: () => number;
  /** Told about every failed round (health report, logs). */
  onFault?: (error: SensorError, consecutive: number) => void;
  /** Told about every tick skipped because the sensor is backing off. */
  onSkip?: (dueAt: number) => void;
  /**
   * Makes the round deadline timer (one per sensor, reused every round); setTimeout when
   * absent. The sampler passes its shared TimerQueue's.
   */
  roundTimer?: (onTimeout: () => void) => RoundTimer;
}

export interface SensorRoundsOptions extends RoundEngineOptions {
  signal: AbortSignal;
  /** Each value is the wall-clock time (ms) at which a sample is due; the generator ends with it. */
  ticks: Ticks;
}

/** A reusable one-shot timer: start() arms it for ms from now, stop() disarms it. */
export interface RoundTimer {
  start(ms: number): void;
  stop(): void;
}

function setTimeoutRoundTimer(onTimeout: () => void): RoundTimer {
  let timer: NodeJS.Timeout | undefined;
  return {
    start(ms) {
      timer = setTimeout(onTimeout, ms);
    },
    stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}

type RoundResolve = (readings: Reading[] | undefined | Promise<Reading[]>) => void;

/** new Promise(captureResolve) leaves the promise's resolve here, without a closure per call. */
let captured: RoundResolve | undefined;
function captureResolve(resolve: RoundResolve): void {
  captured = resolve;
}

export function toSensorError(err: unknown, fallback: SensorErrorCode = 'PROTOCOL'): SensorError {
  if (err instanceof SensorError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  const code = e?.code;
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError')
    return new SensorError('TIMEOUT', 'no answer in time', { cause: err });
  if (code === 'EIO' || code === 'EREMOTEIO')
    return new SensorError('EIO', `bus error ${code}`, { cause: err });
  if (code === 'ENXIO')
    return new SensorError('NACK', 'device did not acknowledge', { cause: err });
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ENOENT' || code === 'EPIPE') {
    return new SensorError('DISCONNECTED', `${code}: ${e?.message ?? ''}`.trim(), { cause: err });
  }
  return new SensorError(fallback, e?.message ?? String(err), { cause: err });
}

const timeoutError = () => new DOMException('no answer in time', 'TimeoutError');

/**
 * The signal of one round: aborted with the sensor's signal or after timeoutMs. A plain
 * controller and timer, both released when the round ends, so a round leaves nothing for
 * the GC to find later; AbortSignal.any(AbortSignal.timeout()) keeps its timeout signals
 * alive until GC, costs more CPU per round, and can collect an unreferenced timeout signal
 * before it fires.
 */
export function roundSignal(
  parent: AbortSignal,
  timeoutMs: number,
): { signal: AbortSignal; done(): void } {
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(parent.reason);
  if (parent.aborted) ctl.abort(parent.reason);
  else parent.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => ctl.abort(timeoutError()), timeoutMs);
  return {
    signal: ctl.signal,
    done: () => {
      clearTimeout(timer);
      parent.removeEventListener('abort', onAbort);
    },
  };
}

/**
 * Round signals are lent to rounds and taken back when a round ends cleanly, shared by all
 * sensors: an AbortController per round would be 10,000 a second at 10,000 sensors, and
 * one per sensor ~1 KB each (every Node 20 AbortSignal gets a hidden class of its own), so
 * only the rounds in flight hold one. A signal that aborted is never lent again; one serves
 * at most MAX_USES rounds, which bounds what a driver that forgets to remove its abort
 * listeners can pile up on it (a test checks that none of ours does).
 *
 * A lease is also the sink its round's measurement settles through (measureInto(), or the
 * two handlers of measure()'s promise, made once per lease rather than per round or per
 * sensor). It names the engine and the round it serves until the first of them runs; a
 * round that ended before its measure settled has an aborted signal, so its lease is never
 * lent again and its late answer reaches no round.
 */
class Lease implements MeasureSink {
  readonly ctl = new AbortController();
  /** ctl.signal, read once: the getter checks its receiver on every read. */
  readonly signal = this.ctl.signal;
  uses = 0;
  private engine: RoundEngine | undefined;
  private round: RoundResolve | undefined;

  /** Serve `round` of `engine` until the first of measured/failed runs. */
  serve(engine: RoundEngine, round: RoundResolve): void {
    this.engine = engine;
    this.round = round;
  }

  readonly measured = (value: Measurement[]): void => {
    const { engine, round } = this;
    this.engine = this.round = undefined;
    if (engine && round) engine.measured(round, value);
  };

  readonly failed = (err: unknown): void => {
    const { engine, round } = this;
    this.engine = this.round = undefined;
    if (engine && round) engine.measureFailed(round, err);
  };
}
const MAX_USES = 256;
const MAX_FREE = 4096;
const freeLeases: Lease[] = [];

function lease(): Lease {
  const l = freeLeases.pop() ?? new Lease();
  l.uses++;
  return l;
}

function giveBack(l: Lease): void {
  if (!l.signal.aborted && l.uses < MAX_USES && freeLeases.length < MAX_FREE) {
    freeLeases.push(l);
  }
}

/**
 * The rounds of one sensor, the same way for every driver: each bounded by the timeout
 * (the round ends then even if the driver ignores its signal), failures turned into Fault
 * readings with backoff, the device closed and reopened after repeated failures. Per-round
 * state is reused, so a round allocates little beyond its promises and readings.
 */
export class RoundEngine {
  private readonly now: () => number;
  private readonly elapsed: () => number;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly reopenAfter: number;
  private readonly timer: RoundTimer;
  /** The signal of the round in flight. */
  private lease: Lease | undefined;
  /** Settles the round in flight; undefined between rounds. Also names the round. */
  private resolveRound: RoundResolve | undefined;

  private opened = false;
  private failures = 0;
  private retryAt = 0;
  private measuredAt = 0;
  private ended = false;
  private onStop: (() => void) | undefined;

  constructor(
    private readonly driver: Driver,
    private readonly opts: RoundEngineOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.elapsed = opts.elapsed ?? opts.now ?? (() => performance.now());
    this.minMs = opts.backoffMinMs ?? DEFAULT_BACKOFF_MIN_MS;
    // The ceiling is never below the first wait, whatever a caller passes.
    this.maxMs = Math.max(this.minMs, opts.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS);
    this.reopenAfter = opts.reopenAfter ?? 3;
    this.timer = (opts.roundTimer ?? setTimeoutRoundTimer)(() => this.onTimeout());
    // One listener for the sensor's life, not one per round (the sampler calls stop()).
    const { signal } = opts;
    if (signal?.aborted) this.stop(signal.reason);
    else if (signal) {
      this.onStop = () => this.stop(signal.reason);
      signal.addEventListener('abort', this.onStop, { once: true });
    }
  }

  /** stop() has been called (or the sensor's signal aborted). */
  get stopped(): boolean {
    return this.ended;
  }

  /** End the round in flight at once (no fault) and every later one. */
  stop(reason: unknown = new DOMException('sensor stopped', 'AbortError')): void {
    if (this.ended) return;
    this.ended = true;
    this.endRound(reason);
  }

  /**
   * One round for the tick due at `due`: its readings (Fault readings when it failed), or
   * undefined when the sensor is backing off or has been stopped. Never throws.
   */
  async run(due: number): Promise<Reading[] | undefined> {
    return this.round(due);
  }

  /**
   * run() without its own promise, for the round generator: undefined at once when no round
   * runs (backing off, or stopped), else the round's promise, which never rejects.
   */
  round(due: number): Promise<Reading[] | undefined> | undefined {
    if (this.ended) return undefined;
    if (this.failures > 0 && this.elapsed() < this.retryAt) {
      this.opts.onSkip?.(due);
      return undefined;
    }
    return this.bounded();
  }

  /** Close the device if open (bounded by closeTimeoutMs); call once the rounds are over. */
  async close(): Promise<void> {
    if (this.onStop) this.opts.signal?.removeEventListener('abort', this.onStop);
    this.timer.stop();
    if (this.opened) {
      this.opened = false;
      await this.closeDevice();
    }
  }

  /**
   * open() if needed, then measure(), ended by the deadline or the sensor's stop at the
   * latest: the round's readings, or Fault readings once it failed, or undefined when the
   * sensor was stopped. A round allocates its promise (and measure()'s reaction, for a
   * driver without measureInto()); it settles through its lease.
   */
  private bounded(): Promise<Reading[] | undefined> {
    const held = lease();
    this.lease = held;
    const round = new Promise<Reading[] | undefined>(captureResolve);
    const resolve = captured!;
    captured = undefined;
    this.resolveRound = resolve;
    held.serve(this, resolve);
    this.timer.start(this.opts.timeoutMs);
    const { driver } = this;
    try {
      if (this.opened && driver.measureInto) {
        this.measuredAt = this.now();
        driver.measureInto(held.signal, held);
      } else {
        const measuring = this.opened
          ? this.measureNow(held.signal)
          : this.openThenMeasure(held.signal);
        measuring.then(held.measured, held.failed);
      }
    } catch (err) {
      held.failed(err);
    }
    return round;
  }

  /** @internal The measure() of round `round` answered (see Lease). */
  measured(round: RoundResolve, value: Measurement[]): void {
    if (round === this.resolveRound) this.settle(value);
  }

  /** @internal The measure() of round `round` failed (see Lease). */
  measureFailed(round: RoundResolve, err: unknown): void {
    if (round === this.resolveRound) this.endRound(err);
  }

  private measureNow(signal: AbortSignal): Promise<Measurement[]> {
    this.measuredAt = this.now();
    return this.driver.measure(signal);
  }

  /** The round in flight measured: hand out its readings. */
  private settle(value: Measurement[]): void {
    const resolve = this.resolveRound!;
    this.resolveRound = undefined;
    const held = this.lease;
    this.lease = undefined;
    this.timer.stop();
    if (held) giveBack(held);
    this.failures = 0;
    resolve(this.readingsOf(value));
  }

  private readingsOf(measurements: Measurement[]): Reading[] {
    const sensor = this.opts.sensor;
    const t = this.measuredAt;
    const readings: Reading[] = new Array<Reading>(measurements.length);
    for (let i = 0; i < measurements.length; i++) {
      const m = measurements[i];
      readings[i] = {
        sensor,
        quantity: m.quantity,
        t,
        value: m.value,
        status: m.status ?? ReadingStatus.Ok,
      };
    }
    return readings;
  }

  private async openThenMeasure(signal: AbortSignal): Promise<Measurement[]> {
    await this.driver.open?.(signal);
    this.opened = true;
    this.measuredAt = this.now();
    return this.driver.measure(signal);
  }

  /**
   * The deadline passed: abort the round's signal, so the driver fails with its own words
   * ("no reply from unit 7"); a driver that ignores its signal is failed one turn later.
   */
  private onTimeout(): void {
    const round = this.resolveRound;
    if (!round) return;
    const reason = timeoutError();
    this.lease?.ctl.abort(reason);
    setImmediate(() => {
      if (this.resolveRound === round) this.endRound(reason);
    });
  }

  /** Fail the round in flight (timeout, stop, or the driver's own error). */
  private endRound(err: unknown): void {
    const resolve = this.resolveRound;
    this.resolveRound = undefined;
    this.timer.stop();
    // Tell the driver to drop whatever it still has going (a timed-out request, the other
    // half of a split read); an aborted signal is never lent again.
    const held = this.lease;
    this.lease = undefined;
    if (held && !held.signal.aborted) held.ctl.abort(err);
    // Fault readings for a failed round, nothing for a stopped sensor.
    resolve?.(this.ended ? undefined : this.failed(toSensorError(err)));
  }

  private async failed(error: SensorError): Promise<Reading[]> {
    const { opts } = this;
    this.failures++;
    opts.onFault?.(error, this.failures);
    this.retryAt = this.elapsed() + Math.min(this.maxMs, this.minMs * 2 ** (this.failures - 1));
    if (this.failures >= this.reopenAfter && this.opened) {
      this.opened = false;
      await this.closeDevice();
    }
    const t = this.now();
    return this.driver.quantities.map((quantity) => ({
      sensor: opts.sensor,
      quantity,
      t,
      value: Number.NaN,
      status: ReadingStatus.Fault,
    }));
  }

  private async closeDevice(): Promise<void> {
    if (!this.driver.close) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.driver.close(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.opts.closeTimeoutMs ?? 5_000);
        }),
      ]);
    } catch {
      // A device that fails to close is reopened all the same.
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Ticks the generator can wait for without allocating per wait (the sampler's IntervalTicks,
 * agent/sampling/schedule.ts): the wait is a promise shared by every sensor due in the same
 * millisecond, from one timer queue, so 10,000 sensors waiting for their slots keep no
 * per-sensor promise alive through the wait.
 */
export interface SlotTicks {
  /** Plan the next slot (late ones skipped and counted); false once the ticks have ended. */
  plan(): boolean;
  /**
   * A promise to await before the planned slot is due, or undefined once it is due or the
   * ticks have ended. It may settle early (a stop wakes it): ask again after it settles.
   */
  wake(): Promise<void> | undefined;
  /** Start the planned slot now: its wall-clock due time. */
  take(): number;
  readonly ended: boolean;
  return(): unknown;
}

/** When rounds are due: wall-clock due times, from any async iterable or from SlotTicks. */
export type Ticks = AsyncIterable<number> | SlotTicks;

function isSlotTicks(ticks: Ticks): ticks is SlotTicks {
  return typeof (ticks as Partial<SlotTicks>).wake === 'function';
}

/** Any async iterable of due times as SlotTicks: the wait is the pending next(). */
class PulledTicks implements SlotTicks {
  private readonly source: AsyncIterator<number>;
  private pending: Promise<void> | undefined;
  private due = 0;
  private ready = false;
  private done = false;

  constructor(ticks: AsyncIterable<number>) {
    this.source = ticks[Symbol.asyncIterator]();
  }

  get ended(): boolean {
    return this.done;
  }

  plan(): boolean {
    this.ready = false;
    return !this.done;
  }

  wake(): Promise<void> | undefined {
    if (this.done || this.ready) return undefined;
    this.pending ??= this.source.next().then((tick) => {
      this.pending = undefined;
      if (tick.done) this.done = true;
      else {
        this.due = tick.value;
        this.ready = true;
      }
    });
    return this.pending;
  }

  take(): number {
    this.ready = false;
    return this.due;
  }

  async return(): Promise<void> {
    this.done = true;
    await this.source.return?.();
  }
}

/**
 * The rounds of one engine as an async generator: one array of readings per round, one
 * round per tick, until the ticks end or the engine is stopped; then the device is closed.
 * A round's readings are dropped from the generator's frame once yielded, so a waiting
 * sensor holds nothing of its last round; the frame is kept small (few locals), as every
 * waiting sensor holds one.
 */
export async function* engineRounds(engine: RoundEngine, ticks: Ticks): AsyncGenerator<Reading[]> {
  const slots = isSlotTicks(ticks) ? ticks : new PulledTicks(ticks);
  let readings: Reading[] | undefined;
  try {
    while (slots.plan()) {
      for (let wake = slots.wake(); wake; wake = slots.wake()) await wake;
      if (slots.ended || engine.stopped) return;
      readings = await engine.round(slots.take());
      if (engine.stopped) return;
      if (readings) {
        yield readings;
        readings = undefined;
      }
    }
  } finally {
    await slots.return();
    await engine.close();
  }
}

/** A sensor as an async generator: one array of readings per round, one round per tick. */
export function sensorRounds(driver: Driver, opts: SensorRoundsOptions): AsyncGenerator<Reading[]> {
  return engineRounds(new RoundEngine(driver, opts), opts.ticks);
}

/** The same, one reading at a time. */
export async function* sensorReadings(
  driver: Driver,
  opts: SensorRoundsOptions,
): AsyncGenerator<Reading> {
  for await (const readings of sensorRounds(driver, opts)) yield* readings;
}
