/**
 * The values behind the simulated network sensors: per sensor index a temperature and a
 * humidity Signal, created on first use (10,000 sensors cost nothing until asked), each
 * deterministic for its index, and freezable to model a stuck sensor.
 */
import { Signal } from '../signal.js';

export interface SensorValues {
  temperature: number;
  humidity: number;
}

export class SensorField {
  private readonly signals = new Map<number, { t: Signal; rh: Signal }>();
  private readonly frozen = new Map<number, SensorValues>();

  /** Current values of sensor `index` at wall-clock time `t` (frozen ones stay put). */
  read(index: number, t: number = Date.now()): SensorValues {
    const f = this.frozen.get(index);
    if (f) return f;
    let s = this.signals.get(index);
    if (!s) {
      s = {
        // Rooms between 18 and 27 °C, 40–60 %RH, each with its own noise.
        t: new Signal({
          setPoint: 18 + (index % 10),
          noise: 0.05,
          stepEveryMs: 120_000,
          stepSize: 0.5,
          seed: 2 * index + 1,
        }),
        rh: new Signal({
          setPoint: 40 + ((index * 7) % 21),
          noise: 0.3,
          driftAmplitude: 2,
          seed: 2 * index + 2,
        }),
      };
      this.signals.set(index, s);
    }
    return { temperature: s.t.at(t), humidity: s.rh.at(t) };
  }

  /** Freeze sensor `index` at its current value (stuck), or release it. */
  setStuck(index: number, stuck: boolean): void {
    if (!stuck) this.frozen.delete(index);
    else if (!this.frozen.has(index)) this.frozen.set(index, this.read(index));
  }
}
