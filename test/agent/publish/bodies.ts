/** Synthetic worker batch bodies (the aggregation worker's output format). */
export function windowBody(index: number, options: { readings?: number } = {}): Uint8Array {
  const start = 1_700_000_000_000 + index * 10_000;
  const windows = [
    {
      sensor: 'boiler-in',
      quantity: 'temperature',
      unit: 'Cel',
      start,
      end: start + 10_000,
      count: 10,
      min: 20 + index,
      max: 21 + index,
      mean: 20.5 + index,
      stddev: 0.25,
      last: 21,
      faults: 0,
      state: 'ok',
      flags: { range: 0, stuck: 0, spike: 0, powerOn: 0 },
    },
    {
      sensor: 'dead-probe',
      quantity: 'temperature',
      unit: 'Cel',
      start,
      end: start + 10_000,
      count: 0,
      min: null,
      max: null,
      mean: null,
      stddev: null,
      last: null,
      faults: 3,
      state: 'failing',
      flags: { range: 0, stuck: 0, spike: 0, powerOn: 0 },
    },
  ];
  const body: Record<string, unknown> = { windows };
  if (options.readings) {
    body.readings = Array.from({ length: options.readings }, (_, i) => ({
      sensor: 'boiler-in',
      quantity: 'temperature',
      t: start + i,
      v: 20 + i / 100,
    }));
  }
  return new TextEncoder().encode(JSON.stringify(body));
}
