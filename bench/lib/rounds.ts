/**
 * Measurement helpers shared by the sampling benchmarks: a fixed-size log of every round's
 * start and end per sensor, a driver wrapper that fills it, and a percentile over sorted values.
 */
import type { Driver, Measurement, MeasureSink } from '../../drivers/types.js';

/** Start/end of every round per sensor, in fixed typed arrays (no per-sample objects). */
export class RoundLog {
  readonly starts: Float64Array;
  readonly ends: Float64Array;
  readonly ok: Uint8Array;
  readonly counts: Uint32Array;
  constructor(
    readonly n: number,
    readonly capacity: number,
  ) {
    this.starts = new Float64Array(n * capacity);
    this.ends = new Float64Array(n * capacity);
    this.ok = new Uint8Array(n * capacity);
    this.counts = new Uint32Array(n);
  }
  add(sensor: number, start: number, end: number, ok: boolean): void {
    const k = this.counts[sensor];
    if (k >= this.capacity) return;
    const i = sensor * this.capacity + k;
    this.starts[i] = start;
    this.ends[i] = end;
    this.ok[i] = ok ? 1 : 0;
    this.counts[sensor] = k + 1;
  }
}

/** The p-th percentile (nearest rank) of ascending values; 0 when there are none. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** Times one measureInto() round on its way to the engine's sink. */
class TimedSink implements MeasureSink {
  private readonly start = performance.now();
  constructor(
    private readonly index: number,
    private readonly log: RoundLog,
    private readonly sink: MeasureSink,
  ) {}

  measured(value: Measurement[]): void {
    this.log.add(this.index, this.start, performance.now(), true);
    this.sink.measured(value);
  }

  failed(err: unknown): void {
    this.log.add(this.index, this.start, performance.now(), false);
    this.sink.failed(err);
  }
}

/**
 * Times every measure() (and measureInto()) call the same way whatever strategy makes it.
 * Promise callbacks, not an async wrapper, and one small object per measureInto() round: the
 * harness should add as little as it can to the agent's memory.
 */
export function instrumented(driver: Driver, index: number, log: RoundLog): Driver {
  const into = driver.measureInto?.bind(driver);
  return {
    measureInto: into && ((signal, sink) => into(signal, new TimedSink(index, log, sink))),
    kind: driver.kind,
    quantities: driver.quantities,
    resource: driver.resource,
    open: driver.open?.bind(driver),
    close: driver.close?.bind(driver),
    measure(signal) {
      const start = performance.now();
      return driver.measure(signal).then(
        (m) => {
          log.add(index, start, performance.now(), true);
          return m;
        },
        (err: unknown) => {
          log.add(index, start, performance.now(), false);
          throw err;
        },
      );
    },
  };
}
