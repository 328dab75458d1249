import { describe, expect, it } from 'vitest';
import { LatestStates, type WindowValue } from '../../../../agent/consumers/homeassistant/state.js';
import { decodeWindows } from '../../../../agent/publish/output.js';

const w = (over: Partial<WindowValue>): WindowValue => ({
  sensor: 'room',
  quantity: 'temperature',
  end: 1000,
  count: 5,
  mean: 21.5,
  state: 'ok',
  ...over,
});
const all = () => true;

describe('latest window state per sensor', () => {
  it('carries the mean of the latest window of each quantity', () => {
    const s = new LatestStates();
    expect(
      s.apply(
        [w({}), w({ quantity: 'humidity', mean: 40.25 }), w({ sensor: 'tank', mean: 60 })],
        all,
      ),
    ).toEqual(['room', 'tank']);
    expect(JSON.parse(s.payload('room')!)).toEqual({ t: 1000, temperature: 21.5, humidity: 40.25 });
    s.apply([w({ end: 2000, mean: 22 })], all);
    expect(JSON.parse(s.payload('room')!)).toEqual({ t: 2000, temperature: 22, humidity: 40.25 });
    // An older window arriving late does not overwrite a newer value.
    expect(s.apply([w({ end: 1500, mean: 1 })], all)).toEqual([]);
    expect(JSON.parse(s.payload('room')!).temperature).toBe(22);
  });

  it('a failing window nulls the value; an idle one leaves it', () => {
    const s = new LatestStates();
    s.apply([w({})], all);
    expect(s.apply([w({ end: 2000, count: 0, mean: null, state: 'idle' })], all)).toEqual([]);
    expect(JSON.parse(s.payload('room')!).temperature).toBe(21.5);
    s.apply([w({ end: 3000, count: 0, mean: null, state: 'failing' })], all);
    expect(JSON.parse(s.payload('room')!)).toEqual({ t: 3000, temperature: null });
    s.apply([w({ end: 4000, count: 0, mean: null, state: 'backoff' })], all);
    expect(JSON.parse(s.payload('room')!)).toEqual({ t: 4000, temperature: null });
  });

  it("a window whose only reading was a chip's power-on value leaves the value as it is; measurements beside one count", () => {
    const s = new LatestStates();
    // The aggregator keeps a power-on value out of the statistics (count 0, mean null).
    const powerOnOnly = { count: 0, mean: null, state: 'idle', flags: { powerOn: 1 } };
    expect(s.apply([w(powerOnOnly)], all)).toEqual([]);
    expect(s.payload('room')).toBeUndefined();
    s.apply([w({ end: 2000 })], all);
    s.apply([w({ end: 3000, ...powerOnOnly })], all);
    expect(JSON.parse(s.payload('room')!)).toEqual({ t: 2000, temperature: 21.5 });
    s.apply([w({ end: 4000, count: 2, mean: 21.75, flags: { powerOn: 1 } })], all);
    expect(JSON.parse(s.payload('room')!)).toEqual({ t: 4000, temperature: 21.75 });
  });

  it('skips sensors not accepted and malformed windows', () => {
    const s = new LatestStates();
    // A whole telemetry window, as the aggregation worker encodes it.
    const whole = (over: Partial<WindowValue>) => {
      const v = w(over);
      return {
        unit: 'Cel',
        start: v.end - 1000,
        faults: 0,
        min: v.mean,
        max: v.mean,
        stddev: 0,
        last: v.mean,
        ...v,
      };
    };
    const body = new TextEncoder().encode(
      JSON.stringify({
        windows: [whole({}), whole({ sensor: 'gone' }), { sensor: 'x', quantity: 'noise' }, null],
      }),
    );
    const windows = decodeWindows(body);
    expect(windows).toHaveLength(2);
    expect(s.apply(windows, (id) => id !== 'gone')).toEqual(['room']);
    expect(s.payload('gone')).toBeUndefined();
  });
});
