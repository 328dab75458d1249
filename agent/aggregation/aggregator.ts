/**
 * The aggregation itself, free of threads and clocks so it can be tested directly: readings
 * in (add), closed windows out as encoded batch bodies (through `emit`). The worker feeds it
 * from the ring and calls tick() with the time of its SteadyClock.
 *
 * Windows are tumbling, per (sensor, quantity), aligned to the wall clock: a reading at t
 * belongs to [floor(t / windowMs) · windowMs, + windowMs). A window closes when a reading of
 * the same series for a later window arrives, or when the wall clock passes its end by
 * `graceMs` (sensors that went quiet). A reading for a period its series already has a
 * window for (late) goes into the series' current window (one is opened for the next period
 * if none is open): a window (sensor, quantity, start) is emitted once, never again with
 * other content. Closed windows are coalesced for `coalesceMs` so the windows of one period
 * travel together.
 *
 * Clock steps: readings and ticks carry SteadyClock labels (drivers/steady-clock.ts), which
 * never go back. Given that clock, the aggregator also sees its steps: after a step forward
 * the periods the step skipped get no windows (they never elapsed); every series' first
 * window after a step, and every window closed while the labels are still ahead of the wall
 * clock after a step back, carries `"clockStep":true`.
 *
 * Every series has a window for every period once it exists — from the start when the
 * sensor's quantities are known, else from its first reading — so a subscriber can tell a
 * failing or backing-off sensor (a window with count 0 and its state) from a missing one.
 * A period with no reading at all gets an empty window; its `state` says why, from what the
 * series saw last (see windowState). A gap of more than MAX_FILL_PERIODS that no step
 * explains (no clock given, or a stalled thread) gets windows for its last MAX_FILL_PERIODS
 * periods only; the earlier ones are counted.
 *
 * A reading whose value is not finite, whose status is Fault, or whose status code is not
 * a known ReadingStatus counts in `faults` and is not aggregated. A Suspect reading (a value
 * the chip gives when it did not measure, such as a DS18B20's power-on 85 °C) is counted in
 * `flags.powerOn` and is neither a measurement nor a fault: it stays out of the statistics
 * (count, min, max, mean, stddev, last) and of the detectors' history, so a window holding
 * only such readings has null statistics. Readings the detectors flag stay in the statistics.
 */
import type { Range } from '../../drivers/descriptor.js';
import { QUANTITIES, UNITS, ReadingStatus, type Quantity } from '../../drivers/types.js';
import { STEP_MIN_MS, type SteadyClock } from '../../drivers/steady-clock.js';
import { Welford } from './stats.js';
import { FLAG_POWER_ON, FLAG_RANGE, FLAG_SPIKE, FLAG_STUCK, SeriesDetectors } from './detectors.js';
import {
  HEADER_RESERVE,
  item,
  num,
  packBodies,
  type BodyText,
  type EncodedItem,
} from './encode.js';

export interface SensorSpec {
  id: string;
  driver: string;
  /**
   * Range of the temperature, °C (flags "range"): the configured one, else the chip's
   * datasheet range; none: only what is physically possible.
   */
  range?: Range;
  /** The quantities it reports: their series get windows from the start, before any reading. */
  quantities?: readonly Quantity[];
}

/**
 * What a window says about its sensor: ok (values, no faults), degraded (values and faults),
 * failing (faults only), backoff (no round ended in it and the last one failed: retries are
 * held back), idle (no round ended in it and the last one succeeded, or none has ended yet:
 * an interval longer than the window, or a first round still under way).
 */
export type WindowState = 'ok' | 'degraded' | 'failing' | 'backoff' | 'idle';

export function windowState(count: number, faults: number, lastRoundFailed: boolean): WindowState {
  if (count > 0) return faults > 0 ? 'degraded' : 'ok';
  if (faults > 0) return 'failing';
  return lastRoundFailed ? 'backoff' : 'idle';
}

/** Longest gap filled with empty windows; a longer one is a clock jump, not an outage. */
export const MAX_FILL_PERIODS = 60;

export interface AggregationSettings {
  windowMs: number;
  stuckCount: number;
  spikeZ: number;
  spikeHistory: number;
  /** Byte bound of one batch (including the publisher's header, see encode.ts). */
  maxBytes: number;
  /** With raw publishing: readings leave at most this long after they arrived. */
  maxDelayMs: number;
  raw: boolean;
  /** How long after its end an open window waits for stragglers. Default min(windowMs, 2000). */
  graceMs?: number;
  /** How long closed windows wait for the other series' windows. Default min(windowMs/4, 500). */
  coalesceMs?: number;
}

export interface FlagCounts {
  range: number;
  stuck: number;
  spike: number;
  powerOn: number;
}

export interface SensorStats {
  id: string;
  readings: number;
  faults: number;
  flags: FlagCounts;
}

export interface AggregatorStats {
  /** Readings aggregated into window statistics. */
  readings: number;
  faults: number;
  /** Readings naming a sensor index that has no sensor. */
  unknownSensor: number;
  /** Readings that arrived after their series had moved to a later window (put in its current one). */
  late: number;
  /** Periods left without a window: skipped by a clock step, or beyond MAX_FILL_PERIODS of a gap. */
  periodsSkipped: number;
  /** Clock steps seen (forward or back). */
  clockSteps: number;
  windowsEmitted: number;
  batchesEmitted: number;
  sensors: SensorStats[];
}

/** What the aggregator hands over; the worker turns text into transferable bytes. */
export type BodySink = (body: BodyText) => void;

class Window {
  readonly stats = new Welford();
  faults = 0;
  range = 0;
  stuck = 0;
  spike = 0;
  powerOn = 0;
  constructor(
    readonly start: number,
    readonly end: number,
  ) {}
}

interface Series {
  sensor: number;
  quantity: string;
  detectors: SeriesDetectors;
  /** `{"sensor":…,"quantity":…,"unit":…,"start":` */
  windowPrefix: string;
  /** `{"sensor":…,"quantity":…,"t":` */
  readingPrefix: string;
  current: Window | undefined;
  /** End of the latest period this series has a window for (NaN before its first). */
  covered: number;
  /** The latest reading of this series was a fault (for the state of empty windows). */
  lastFailed: boolean;
  /** The clock stepped since this series' latest window: its next one says so. */
  clockStep: boolean;
}

const QN = QUANTITIES.length;
const zeroFlags = (): FlagCounts => ({ range: 0, stuck: 0, spike: 0, powerOn: 0 });

export class Aggregator {
  private sensors: Array<SensorSpec | null | undefined>;
  private series: Array<Series | undefined> = [];
  private sensorStats: SensorStats[] = [];
  private readonly windowMs: number;
  private readonly graceMs: number;
  private readonly coalesceMs: number;
  private readonly budget: number;
  private pendingWindows: EncodedItem[] = [];
  private pendingWindowBytes = 0;
  private pendingSince = Number.NaN;
  private pendingReadings: EncodedItem[] = [];
  private pendingReadingBytes = 0;
  private readingsSince = 0;
  private readonly counts = {
    readings: 0,
    faults: 0,
    unknownSensor: 0,
    late: 0,
    periodsSkipped: 0,
  };
  private windowsEmitted = 0;
  private batchesEmitted = 0;
  /** Time of the latest tick, used to time pending output. */
  private now = 0;
  /** Steps of `clock` handled so far. */
  private stepsSeen = 0;

  /**
   * `clock`: where the times of readings and ticks come from; without it no step is told
   * from a gap (tests that drive time by hand).
   */
  constructor(
    sensors: ReadonlyArray<SensorSpec | null | undefined>,
    private readonly settings: AggregationSettings,
    private readonly emit: BodySink,
    private readonly clock?: SteadyClock,
  ) {
    this.sensors = [...sensors];
    this.windowMs = settings.windowMs;
    this.graceMs = settings.graceMs ?? Math.min(settings.windowMs, 2000);
    this.coalesceMs = settings.coalesceMs ?? Math.min(settings.windowMs / 4, 500);
    this.budget = Math.max(512, settings.maxBytes - HEADER_RESERVE);
    this.sensors.forEach((s, i) => {
      this.resetSensorStats(i, s);
      this.openKnownSeries(i, s);
    });
  }

  /** Hot path: one record from the ring. */
  add(sensorIndex: number, quantity: number, t: number, value: number, status: number): void {
    const spec = this.sensors[sensorIndex];
    if (spec === undefined || spec === null || quantity >= QN) {
      if (spec === undefined || spec === null) this.counts.unknownSensor++;
      else this.countFault(sensorIndex);
      return;
    }
    const key = sensorIndex * QN + quantity;
    const s = this.series[key] ?? this.openSeries(key, sensorIndex, quantity, spec);
    if (!Number.isFinite(t)) {
      this.countFault(sensorIndex);
      return;
    }
    let w = s.current;
    if (w === undefined || t < w.start || t >= w.end) w = this.windowFor(s, this.periodOf(t));
    if (
      !Number.isFinite(value) ||
      (status !== ReadingStatus.Ok && status !== ReadingStatus.Suspect)
    ) {
      w.faults++;
      s.lastFailed = true;
      this.countFault(sensorIndex);
      // Raw mode shows the failed read too, with v null (docs/payload.md).
      if (this.settings.raw) this.addRaw(s, t, Number.NaN);
      return;
    }
    s.lastFailed = false;
    const ss = this.sensorStats[sensorIndex];
    // The driver's verdict that the chip did not measure: counted, never a value.
    if (status === ReadingStatus.Suspect) {
      this.countFlags(FLAG_POWER_ON, w, ss.flags);
      if (this.settings.raw) this.addRaw(s, t, Number.NaN);
      return;
    }
    const flags = s.detectors.check(value);
    w.stats.add(value);
    this.counts.readings++;
    ss.readings++;
    if (flags !== 0) this.countFlags(flags, w, ss.flags);
    if (this.settings.raw) this.addRaw(s, t, value);
  }

  /** Wall-clock housekeeping: close quiet windows, emit what is due. */
  tick(now: number): void {
    this.watchClock();
    this.now = now;
    for (const s of this.series) {
      if (s === undefined) continue;
      if (s.current !== undefined && s.current.end + this.graceMs <= now) {
        this.close(s, s.current);
        s.current = undefined;
      }
      // Periods that ended (plus the grace) without a reading get their empty window.
      if (s.current === undefined) {
        const due = this.periodOf(now - this.graceMs);
        if (Number.isNaN(s.covered)) s.covered = this.periodOf(now);
        else if (s.covered < due) this.fillTo(s, due);
      }
    }
    // Coalescing starts at the first tick that sees closed windows.
    if (this.pendingWindows.length > 0 && Number.isNaN(this.pendingSince)) this.pendingSince = now;
    const windowsDue = this.pendingWindows.length > 0 && now - this.pendingSince >= this.coalesceMs;
    const readingsDue =
      this.pendingReadings.length > 0 && now - this.readingsSince >= this.settings.maxDelayMs;
    if (windowsDue || readingsDue) this.emitPending();
  }

  /** Close every window now and emit everything (SIGTERM drain, reload). */
  flush(): void {
    for (const s of this.series) {
      if (s === undefined) continue;
      // Periods that ended before the latest tick get their window even inside the grace.
      if (s.current === undefined && !Number.isNaN(s.covered) && this.now > 0) {
        const ended = this.periodOf(this.now);
        if (s.covered < ended) this.fillTo(s, ended);
      }
      this.closeAll(s);
    }
    this.emitPending();
  }

  /** New sensor list; a sensor whose id, driver or range changed starts afresh. */
  updateSensors(next: ReadonlyArray<SensorSpec | null | undefined>): void {
    const n = Math.max(next.length, this.sensors.length);
    for (let i = 0; i < n; i++) {
      const before = this.sensors[i];
      const after = next[i];
      if (sameSensor(before, after)) continue;
      for (let q = 0; q < QN; q++) {
        const s = this.series[i * QN + q];
        if (s === undefined) continue;
        this.closeAll(s);
        this.series[i * QN + q] = undefined;
      }
      this.resetSensorStats(i, after);
    }
    this.sensors = [...next];
    this.sensors.forEach((s, i) => this.openKnownSeries(i, s));
    if (this.pendingWindows.length > 0) this.emitPending();
  }

  stats(): AggregatorStats {
    return {
      ...this.counts,
      clockSteps: this.stepsSeen,
      windowsEmitted: this.windowsEmitted,
      batchesEmitted: this.batchesEmitted,
      sensors: this.sensorStats
        .filter((s) => s !== undefined)
        .map((s) => ({ ...s, flags: { ...s.flags } })),
    };
  }

  // ------------------------------------------------------------------ internals

  private openSeries(key: number, sensor: number, quantity: number, spec: SensorSpec): Series {
    const q = QUANTITIES[quantity];
    const id = JSON.stringify(spec.id);
    const s: Series = {
      sensor,
      quantity: q,
      detectors: new SeriesDetectors(this.settings, q, spec.range),
      windowPrefix: `{"sensor":${id},"quantity":"${q}","unit":"${UNITS[q]}","start":`,
      readingPrefix: `{"sensor":${id},"quantity":"${q}","t":`,
      current: undefined,
      covered: Number.NaN,
      lastFailed: false,
      clockStep: false,
    };
    this.series[key] = s;
    return s;
  }

  /** Series of a sensor's known quantities exist before their first reading. */
  private openKnownSeries(i: number, spec: SensorSpec | null | undefined): void {
    if (spec === undefined || spec === null) return;
    for (const q of spec.quantities ?? []) {
      const code = QUANTITIES.indexOf(q);
      if (code < 0) continue;
      const key = i * QN + code;
      if (this.series[key] === undefined) this.openSeries(key, i, code, spec);
    }
  }

  /** Start of the period t falls in. */
  private periodOf(t: number): number {
    return t - (((t % this.windowMs) + this.windowMs) % this.windowMs);
  }

  /**
   * Empty windows for the periods from s.covered up to `until` (a period start). A gap of
   * more than MAX_FILL_PERIODS is a clock jump: only its last MAX_FILL_PERIODS are filled.
   */
  private fillTo(s: Series, until: number): void {
    const missing = Math.round((until - s.covered) / this.windowMs);
    if (missing > MAX_FILL_PERIODS) {
      this.counts.periodsSkipped += missing - MAX_FILL_PERIODS;
      s.covered = until - MAX_FILL_PERIODS * this.windowMs;
    }
    while (s.covered < until) {
      this.close(s, new Window(s.covered, s.covered + this.windowMs));
      s.covered += this.windowMs;
    }
  }

  private windowFor(s: Series, start: number): Window {
    // A reading past the next period: a gap, or a step the ticks have not seen yet.
    if (start > s.covered) this.watchClock();
    const cur = s.current;
    if (Number.isNaN(s.covered) || start >= s.covered) {
      if (cur !== undefined) this.close(s, cur);
      if (!Number.isNaN(s.covered)) this.fillTo(s, start);
      return this.open(s, start);
    }
    // Late: its period has a window already, so the reading joins the current one.
    this.counts.late++;
    return cur ?? this.open(s, s.covered);
  }

  private open(s: Series, start: number): Window {
    const w = new Window(start, start + this.windowMs);
    s.current = w;
    s.covered = w.end;
    return w;
  }

  /** Handle the clock's steps not handled yet (see the header). */
  private watchClock(): void {
    const clock = this.clock;
    if (clock === undefined) return;
    const now = clock.now();
    const step = clock.lastStep;
    if (clock.steps === this.stepsSeen || step === undefined) return;
    this.stepsSeen = clock.steps;
    const ended = this.periodOf(step.from);
    const resumed = this.periodOf(now);
    for (const s of this.series) {
      if (s === undefined) continue;
      if (!Number.isNaN(s.covered)) {
        // Periods that ended before the step get their windows; the step's own are skipped.
        if (s.current === undefined && s.covered < ended) this.fillTo(s, ended);
        if (s.current !== undefined && s.current.end <= resumed) {
          this.close(s, s.current);
          s.current = undefined;
        }
        if (s.covered < resumed) {
          this.counts.periodsSkipped += Math.round((resumed - s.covered) / this.windowMs);
          s.covered = resumed;
        }
      }
      // The next window of the series is the first after the step (or the one it fell in).
      s.clockStep = true;
    }
  }

  private closeAll(s: Series): void {
    if (s.current !== undefined) this.close(s, s.current);
    s.current = undefined;
  }

  private close(s: Series, w: Window): void {
    const st = w.stats;
    const empty = st.count === 0;
    const v = (x: number) => (empty ? 'null' : num(x));
    const stepped = s.clockStep || (this.clock !== undefined && this.clock.aheadMs() > STEP_MIN_MS);
    s.clockStep = false;
    const json =
      `${s.windowPrefix}${w.start},"end":${w.end},"count":${st.count},` +
      `"min":${v(st.min)},"max":${v(st.max)},"mean":${v(st.mean)},"stddev":${v(st.stddev())},` +
      `"last":${v(st.last)},"faults":${w.faults},` +
      `"state":"${windowState(st.count, w.faults, s.lastFailed)}",` +
      `"flags":{"range":${w.range},"stuck":${w.stuck},"spike":${w.spike},"powerOn":${w.powerOn}}` +
      (stepped ? ',"clockStep":true}' : '}');
    const it = item(json);
    if (this.pendingWindows.length === 0) this.pendingSince = Number.NaN;
    this.pendingWindows.push(it);
    this.pendingWindowBytes += it.bytes + 1;
    if (this.pendingWindowBytes + this.pendingReadingBytes >= this.budget) this.emitPending();
  }

  private addRaw(s: Series, t: number, value: number): void {
    const it = item(`${s.readingPrefix}${t},"v":${num(value)}}`);
    if (this.pendingReadings.length === 0) this.readingsSince = this.now;
    this.pendingReadings.push(it);
    this.pendingReadingBytes += it.bytes + 1;
    if (this.pendingWindowBytes + this.pendingReadingBytes >= this.budget) this.emitPending();
  }

  private emitPending(): void {
    if (this.pendingWindows.length === 0 && this.pendingReadings.length === 0) return;
    const bodies = packBodies(
      this.pendingWindows,
      this.pendingReadings,
      this.settings.raw,
      this.budget,
    );
    this.pendingWindows = [];
    this.pendingReadings = [];
    this.pendingWindowBytes = 0;
    this.pendingReadingBytes = 0;
    for (const b of bodies) {
      this.windowsEmitted += b.windows;
      this.batchesEmitted++;
      this.emit(b);
    }
  }

  private countFlags(flags: number, w: Window, sensor: FlagCounts): void {
    if (flags & FLAG_RANGE) {
      w.range++;
      sensor.range++;
    }
    if (flags & FLAG_STUCK) {
      w.stuck++;
      sensor.stuck++;
    }
    if (flags & FLAG_SPIKE) {
      w.spike++;
      sensor.spike++;
    }
    if (flags & FLAG_POWER_ON) {
      w.powerOn++;
      sensor.powerOn++;
    }
  }

  private countFault(sensorIndex: number): void {
    this.counts.faults++;
    const ss = this.sensorStats[sensorIndex];
    if (ss !== undefined) ss.faults++;
  }

  private resetSensorStats(i: number, s: SensorSpec | null | undefined): void {
    if (s === undefined || s === null) return;
    const before = this.sensorStats[i];
    if (before !== undefined && before.id === s.id) return; // same sensor, keep its counts
    this.sensorStats[i] = { id: s.id, readings: 0, faults: 0, flags: zeroFlags() };
  }
}

function sameSensor(a: SensorSpec | null | undefined, b: SensorSpec | null | undefined): boolean {
  if (a == null || b == null) return a == b;
  return (
    a.id === b.id &&
    a.driver === b.driver &&
    a.range?.min === b.range?.min &&
    a.range?.max === b.range?.max &&
    (a.quantities ?? []).join() === (b.quantities ?? []).join()
  );
}
