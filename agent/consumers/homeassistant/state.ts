/**
 * The per-sensor retained state (`<topicPrefix>/<gateway>/state/<sensor>`): the latest
 * window's mean of each quantity, `{"t": <window end>, "temperature": 21.4, ...}`.
 *
 * A window without good readings because the sensor fails (`failing`, `backoff`) sets its
 * quantities to null, so Home Assistant shows "unknown" rather than a stale value. An `idle`
 * window (no read ended in it, the last one succeeded: a sensor sampled less often than
 * once per window) leaves the value as it is, and so does a window whose only readings were a
 * chip's power-on value (`flags.powerOn`, e.g. a DS18B20's first 85 °C), which is never part of
 * a window's statistics: its mean, from the measurements alone, is published as usual.
 */
import { QUANTITIES, type Quantity } from '../../../drivers/types.js';

/** The fields of a telemetry window this module reads (docs/payload.md). */
export interface WindowValue {
  sensor: string;
  quantity: Quantity;
  end: number;
  count: number;
  mean: number | null;
  state?: string;
  flags?: { powerOn?: number };
}

/** What a window says about its quantity's current value; undefined = leave it. */
function valueOf(w: WindowValue): number | null | undefined {
  if (w.count > 0 && w.mean !== null) return w.mean;
  if (w.state === 'idle' || (w.flags?.powerOn ?? 0) > 0) return undefined;
  return null;
}

interface SensorState {
  t: number;
  values: Map<Quantity, { end: number; value: number | null }>;
}

/** The latest value per sensor and quantity, built from the windows as they close. */
export class LatestStates {
  private readonly bySensor = new Map<string, SensorState>();

  /** Applies windows (older ones than known are ignored); returns the sensors that changed. */
  apply(windows: readonly WindowValue[], accept: (sensor: string) => boolean): string[] {
    const changed = new Set<string>();
    for (const w of windows) {
      if (!accept(w.sensor)) continue;
      const value = valueOf(w);
      if (value === undefined) continue;
      let s = this.bySensor.get(w.sensor);
      if (!s) {
        s = { t: 0, values: new Map() };
        this.bySensor.set(w.sensor, s);
      }
      const known = s.values.get(w.quantity);
      if (known && known.end > w.end) continue;
      s.values.set(w.quantity, { end: w.end, value });
      s.t = Math.max(s.t, w.end);
      changed.add(w.sensor);
    }
    return [...changed];
  }

  /** The state payload of a sensor, or undefined before its first window with news. */
  payload(sensor: string): string | undefined {
    const s = this.bySensor.get(sensor);
    if (!s) return undefined;
    const out: Record<string, number | null> = { t: s.t };
    for (const q of QUANTITIES) {
      const v = s.values.get(q);
      if (v) out[q] = v.value;
    }
    return JSON.stringify(out);
  }

  sensors(): string[] {
    return [...this.bySensor.keys()];
  }

  forget(sensor: string): void {
    this.bySensor.delete(sensor);
  }
}
