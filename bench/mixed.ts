/**
 * bench/mixed — the realistic mixed scenario: 2 I²C buses × 8 chips, 2 RS-485 ports × 16
 * XY-MD02 at 9600 baud, 8 DS18B20, on the simulators with their modelled timings, all sampled
 * together by the Sampler on the same slot. Reports each wire's cycle time.
 *
 *   npx tsx bench/mixed.ts [periodMs=2000] [slots=6]
 *
 * Prints JSON on stdout.
 */
import { silentLogger } from '../agent/ops/logger.js';
import { sensorSchema } from '../agent/config/schema.js';
import { Sampler } from '../agent/sampling/sampler.js';
import { createDriver } from '../drivers/registry.js';
import { sleep } from '../drivers/turns.js';
import { simulateConfiguredSensors } from '../simulator/scenario.js';
import { machine } from './lib/machine.js';
import { instrumented, percentile, RoundLog } from './lib/rounds.js';

/** Per wire: the time from a slot to the last reply of every sensor on it. */
export interface MixedResult {
  wire: string;
  sensors: number;
  cycles: number;
  cycleMs: { p50: number; max: number };
  faults: number;
  /** One example of the last error on this wire, if any. */
  lastError?: string;
}

/**
 * Samples every sensor every `periodMs` on the same slot for `slots` slots and returns each
 * wire's cycle time.
 */
async function mixedMain(periodMs: number, slots: number): Promise<MixedResult[]> {
  const raw: Record<string, unknown>[] = [];
  for (const bus of [1, 2]) {
    const chips: [string, number][] = [
      ['tmp102', 0x48],
      ['tmp102', 0x49],
      ['lm75', 0x4c],
      ['mcp9808', 0x18],
      ['sht3x', 0x44],
      ['sht3x', 0x45],
      ['bme280', 0x76],
      ['si7021', 0x40],
    ];
    for (const [driver, address] of chips) {
      raw.push({ id: `i2c${bus}-${driver}-${address.toString(16)}`, driver, bus, address });
    }
  }
  for (const port of ['/dev/ttySIM-a', '/dev/ttySIM-b']) {
    for (let unitId = 1; unitId <= 16; unitId++) {
      raw.push({ id: `rtu${port.slice(-1)}-${unitId}`, driver: 'modbus-rtu', port, unitId });
    }
  }
  for (let i = 0; i < 8; i++) {
    raw.push({
      id: `ds${i}`,
      driver: 'ds18b20',
      deviceId: `28-0316a2795a${(0x10 + i).toString(16)}`,
    });
  }
  const sensors = raw.map((r) => sensorSchema.parse(r));
  const sim = await simulateConfiguredSensors(sensors, silentLogger);
  const log = new RoundLog(sensors.length, slots + 4);
  const wires = sensors.map((s) =>
    'bus' in s ? `i2c:${s.bus}` : 'port' in s ? `serial:${s.port}` : 'w1',
  );
  const sampler = new Sampler({
    logger: silentLogger,
    emit: () => undefined,
    sensors: sensors.map((s, index) => ({
      id: s.id,
      index,
      driver: instrumented(createDriver(s, sim.seams), index, log),
      intervalMs: periodMs,
      timeoutMs: periodMs,
    })),
  });
  const t0 = performance.now();
  sampler.start();
  await sleep(periodMs * slots);
  const errors = new Map<string, string>();
  for (const h of sampler.health()) {
    const wire = wires[sensors.findIndex((s) => s.id === h.id)];
    if (h.lastError && !errors.has(wire))
      errors.set(wire, `${h.id}: ${h.lastError.code} ${h.lastError.message}`);
  }
  await sampler.stop();
  await sim.close();
  const results: MixedResult[] = [];
  for (const wire of [...new Set(wires)]) {
    const members = wires.flatMap((w, i) => (w === wire ? [i] : []));
    const cycles: number[] = [];
    let faults = 0;
    // Slot k (after the first, which includes opening every device) is due at t0 + k·period.
    for (let k = 1; k < slots; k++) {
      const due = t0 + k * periodMs;
      let last = Number.NEGATIVE_INFINITY;
      let complete = true;
      for (const i of members) {
        let found = false;
        for (let j = 0; j < log.counts[i]; j++) {
          const at = i * log.capacity + j;
          if (log.starts[at] >= due - 1 && log.starts[at] < due + periodMs) {
            found = true;
            if (!log.ok[at]) faults++;
            last = Math.max(last, log.ends[at]);
          }
        }
        if (!found) complete = false;
      }
      if (complete) cycles.push(last - due);
    }
    cycles.sort((a, b) => a - b);
    results.push({
      wire,
      sensors: members.length,
      cycles: cycles.length,
      cycleMs: { p50: percentile(cycles, 50), max: cycles[cycles.length - 1] ?? 0 },
      faults,
      lastError: errors.get(wire),
    });
  }
  return results;
}

const [periodArg, slotsArg] = process.argv.slice(2);
const results = await mixedMain(Number(periodArg ?? 2000), Number(slotsArg ?? 6));
process.stdout.write(
  `${JSON.stringify({ bench: 'sampling-mixed', machine: machine(), results }, null, 2)}\n`,
);
