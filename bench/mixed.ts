/**
 * bench/mixed — the realistic mixed scenario: 2 I²C buses × 8 chips, 2 RS-485 ports × 16
 * XY-MD02 at 9600 baud, 8 DS18B20, the real drivers on the simulators with their modelled
 * timings (the 1-Wire tree in "fifo" mode: every read blocks a thread-pool thread for the
 * 750 ms conversion, as the kernel's does), all sampled by the Sampler on the same slot.
 * Per wire: cycle time (slot → last reply of every sensor on it) against the physical limit
 * of that wire (bench/lib/wire-limits.ts; the computation is in docs/benchmarks/mixed.md).
 *
 *   npx tsx bench/mixed.ts [--period 2000] [--slots 16] [--wires i2c,serial,w1] [--no-align]
 *                          [--write] [--timeline FILE]
 *
 * --timeline writes, per slot and I²C bus, every transfer on the simulated wire, every round
 * and every GC pause, in ms from the slot's due time: where the cycle's time went.
 *
 * Runs with UV_THREADPOOL_SIZE=8 as the systemd unit does (re-executes itself to set it),
 * so the 1-Wire read limit is 4. Prints JSON on stdout and a Markdown table on stderr;
 * --write saves the JSON as docs/benchmarks/mixed.json.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createDriver, sensorSchema, type SensorConfig } from '../drivers/registry.js';
import { silentLogger } from '../agent/ops/logger.js';
import { realClock, type Clock } from '../drivers/time.js';
import { Sampler } from '../agent/sampling/sampler.js';
import { defaultW1Concurrency } from '../drivers/onewire/w1-limiter.js';
import { sleep } from '../drivers/time.js';
import { simulateConfiguredSensors } from '../simulator/scenario.js';
import { machine } from './lib/machine.js';
import { instrumented, percentile, RoundLog } from './lib/rounds.js';
import {
  ds18b20Chain,
  i2cChains,
  rtuLineMs,
  scheduleWire,
  type I2CChip,
  type RtuLine,
} from './lib/wire-limits.js';

const self = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(self), '..');
/** The systemd unit's pool size; the 1-Wire limiter takes half of it. */
const POOL_SIZE = '8';

const I2C_CHIPS: readonly [I2CChip, number][] = [
  ['tmp102', 0x48],
  ['tmp102', 0x49],
  ['lm75', 0x4c],
  ['mcp9808', 0x18],
  ['sht3x', 0x44],
  ['sht3x', 0x45],
  ['bme280', 0x76],
  ['si7021', 0x40],
];
/** What a user of these chips reads: every quantity they have. */
const QUANTITIES: Partial<Record<I2CChip, string[]>> = {
  bme280: ['temperature', 'pressure', 'humidity'],
  si7021: ['temperature', 'humidity'],
};
const PORTS = ['/dev/ttySIM-a', '/dev/ttySIM-b'];
const SLAVES_PER_PORT = 16;
const DS18B20S = 8;
/** The simulator's XY-MD02 turnaround and DS18B20 conversion (simulator/serial, onewire). */
const SIM_TURNAROUND_MS = 5;
const DS18B20_CONVERSION_MS = 750;

export interface WireResult {
  wire: string;
  sensors: number;
  cycles: number;
  cycleMs: { p50: number; max: number };
  /** Every slot's cycle, in slot order (ms, 0.1 ms resolution). */
  cyclesMs: number[];
  /**
   * From the first round of the slot that started on this wire to its last reply: the
   * cycle without the sampler's lag behind the slot (its timer's lateness).
   */
  fromFirstRoundMs: { p50: number; max: number };
  /** The wire's physical limit with the conversion times the simulator models. */
  limitMs: number;
  /** cycle / limit. */
  ratio: { p50: number; max: number };
  /** The same limit for real hardware at datasheet-maximum conversion times (and 1-Wire slots). */
  hardwareLimitMs: number;
  faults: number;
  /** One example of the last error on this wire, if any. */
  lastError?: string;
}

type WireKind = 'i2c' | 'serial' | 'w1';
const WIRE_KINDS: readonly WireKind[] = ['i2c', 'serial', 'w1'];

function scenarioSensors(kinds: readonly WireKind[]): SensorConfig[] {
  const raw: Record<string, unknown>[] = [];
  for (const bus of kinds.includes('i2c') ? [1, 2] : []) {
    for (const [driver, address] of I2C_CHIPS) {
      const quantities = QUANTITIES[driver];
      raw.push({
        id: `i2c${bus}-${driver}-${address.toString(16)}`,
        driver,
        bus,
        address,
        ...(quantities ? { quantities } : {}),
      });
    }
  }
  for (const port of kinds.includes('serial') ? PORTS : []) {
    for (let unitId = 1; unitId <= SLAVES_PER_PORT; unitId++) {
      raw.push({ id: `rtu${port.slice(-1)}-${unitId}`, driver: 'modbus-rtu', port, unitId });
    }
  }
  for (let i = 0; i < (kinds.includes('w1') ? DS18B20S : 0); i++) {
    raw.push({
      id: `ds${i}`,
      driver: 'ds18b20',
      deviceId: `28-0316a2795a${(0x10 + i).toString(16)}`,
    });
  }
  return raw.map((r) => sensorSchema.parse(r));
}

/**
 * Physical limit per wire kind (bench/lib/wire-limits.ts): limitMs with the conversion
 * times the simulator models (the datasheets' typical ones; 1-Wire: the conversion only),
 * hardwareLimitMs with the datasheet maxima (1-Wire: plus its time slots).
 */
export function wireLimits(w1Concurrency: number) {
  const chips = I2C_CHIPS.map(([chip]) => chip);
  const i2cTyp = scheduleWire(i2cChains(chips, 'typMs'));
  const i2cMax = scheduleWire(i2cChains(chips, 'maxMs'));
  const line: RtuLine = {
    baudRate: 9600,
    bitsPerChar: 10, // 8N1, the config default
    turnaroundMs: SIM_TURNAROUND_MS,
    slaves: SLAVES_PER_PORT,
    requestChars: 8, // unit, fn, start (2), count (2), CRC (2)
    replyChars: 9, // unit, fn, byte count, 2 registers (4), CRC (2)
  };
  const rtu = rtuLineMs(line);
  const ds = (withWire: boolean) =>
    scheduleWire(
      Array.from({ length: DS18B20S }, (_, i) => ({
        name: `ds${i}`,
        steps: ds18b20Chain(DS18B20_CONVERSION_MS, withWire),
      })),
      w1Concurrency,
    );
  const w1Sim = ds(false);
  const w1Hw = ds(true);
  return {
    i2c: {
      limitMs: i2cTyp.makespanMs,
      hardwareLimitMs: i2cMax.makespanMs,
      typ: i2cTyp,
      max: i2cMax,
    },
    serial: { limitMs: rtu.lineMs, hardwareLimitMs: rtu.lineMs, line, ...rtu },
    w1: {
      limitMs: w1Sim.makespanMs,
      hardwareLimitMs: w1Hw.makespanMs,
      concurrency: w1Concurrency,
      allAtOnceHardwareMs: scheduleWire(
        Array.from({ length: DS18B20S }, (_, i) => ({
          name: `ds${i}`,
          steps: ds18b20Chain(DS18B20_CONVERSION_MS),
        })),
      ).makespanMs,
    },
  };
}

/**
 * Per slot and I²C bus: every transfer on the simulated wire (start–end, ms from the slot's
 * due time, address, bytes, NACK) and every round's start / end, as text.
 */
function timelines(
  sim: Awaited<ReturnType<typeof simulateConfiguredSensors>>,
  sensors: readonly SensorConfig[],
  log: RoundLog,
  t0: number,
  periodMs: number,
  slots: number,
  gcs: readonly { start: number; duration: number }[],
): string {
  const out: string[] = [];
  const f = (v: number) => v.toFixed(2).padStart(6);
  for (const [busNumber, bus] of sim.i2cBuses ?? []) {
    const members = sensors.flatMap((s, i) => ('bus' in s && s.bus === busNumber ? [i] : []));
    for (let k = 1; k < slots; k++) {
      const due = t0 + k * periodMs;
      out.push(`# i2c:${busNumber} slot ${k}`);
      for (const i of members) {
        for (let j = 0; j < log.counts[i]; j++) {
          const at = i * log.capacity + j;
          if (Math.abs(log.starts[at] - due) < periodMs / 2)
            out.push(`round ${f(log.starts[at] - due)} ${f(log.ends[at] - due)} ${sensors[i].id}`);
        }
      }
      for (const g of gcs) {
        if (g.start - due > -10 && g.start - due < 60)
          out.push(`gc    ${f(g.start - due)} ${f(g.start + g.duration - due)}`);
      }
      for (const t of bus.transfers) {
        if (Math.abs(t.start - due) >= periodMs / 2) continue;
        out.push(
          `wire  ${f(t.start - due)} ${f(t.end - due)} 0x${t.address.toString(16)} ${t.kind} ${t.bytes}B${t.error ? ` ${t.error}` : ''}`,
        );
      }
    }
  }
  return `${out.join('\n')}\n`;
}

async function run(
  periodMs: number,
  slots: number,
  align: boolean,
  kinds: WireKind[],
  timelinePath?: string,
) {
  const sensors = scenarioSensors(kinds);
  const sim = await simulateConfiguredSensors(sensors, silentLogger, { w1Mode: 'fifo' });
  const log = new RoundLog(sensors.length, slots + 4);
  const wires = sensors.map((s) =>
    'bus' in s ? `i2c:${s.bus}` : 'port' in s ? `serial:${s.port}` : 'w1',
  );
  // The sampler takes its grid's origin with its clock's first readings in start(): record
  // them, so each slot is measured from the due time the sampler scheduled it for: a clock
  // reading of the bench's own before start() can be a GC pause early (originShiftMs).
  let starting = false;
  let origin: { now?: number; wallNow?: number } = {};
  const clock: Clock = {
    ...realClock,
    now: () => {
      const t = performance.now();
      if (starting) origin.now ??= t;
      return t;
    },
    wallNow: () => {
      const t = Date.now();
      if (starting) origin.wallNow ??= t;
      return t;
    },
  };
  const sampler = new Sampler({
    clock,
    logger: silentLogger,
    emit: () => undefined,
    // Every sensor on the same wall-clock slot. Without it each sensor's grid starts when
    // its loop is launched, and launching 72 loops one after another spreads them over
    // 20–35 ms (docs/benchmarks/mixed.md).
    alignToWallClock: align,
    sensors: sensors.map((s, index) => ({
      id: s.id,
      index,
      driver: instrumented(createDriver(s, sim.seams), index, log),
      intervalMs: periodMs,
      timeoutMs: periodMs,
    })),
  });
  // Slot 0 is the next multiple of the period on the wall clock (aligned), or the origin
  // (not aligned); benchT0 is the bench's own reading of it, kept to report the shift.
  const gcs: { start: number; duration: number }[] = [];
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ start: e.startTime, duration: e.duration });
  });
  if (timelinePath) gcObserver.observe({ entryTypes: ['gc'] });
  const wall = Date.now();
  const benchT0 = performance.now() + (align ? (periodMs - (wall % periodMs)) % periodMs : 0);
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  starting = true;
  sampler.start();
  starting = false;
  if (origin.now === undefined || origin.wallNow === undefined)
    throw new Error('the sampler took no origin from its clock in start()');
  const t0 = origin.now + (align ? (periodMs - (origin.wallNow % periodMs)) % periodMs : 0);
  /** How much later the sampler's slot 0 is than the bench's own reading before start(). */
  const originShiftMs = t0 - benchT0;
  origin = {};
  await sleep(t0 + periodMs * slots - performance.now());
  // The whole process: the agent's sampler and drivers, and the simulators behind them.
  const cpuUsed = process.cpuUsage(cpu0);
  const cpu = {
    userMs: cpuUsed.user / 1000,
    systemMs: cpuUsed.system / 1000,
    percentOfOneCore: ((cpuUsed.user + cpuUsed.system) / 1000 / (performance.now() - wall0)) * 100,
  };
  const schedulingLag = sampler.schedulingLag();
  const errors = new Map<string, string>();
  for (const h of sampler.health()) {
    const wire = wires[sensors.findIndex((s) => s.id === h.id)];
    if (h.lastError && !errors.has(wire))
      errors.set(wire, `${h.id}: ${h.lastError.code} ${h.lastError.message}`);
  }
  await sampler.stop();
  if (timelinePath)
    writeFileSync(timelinePath, timelines(sim, sensors, log, t0, periodMs, slots, gcs));
  gcObserver.disconnect();
  await sim.seams.close();
  await sim.close();

  const w1Concurrency = defaultW1Concurrency();
  const limits = wireLimits(w1Concurrency);
  const results: WireResult[] = [];
  for (const wire of [...new Set(wires)]) {
    const members = wires.flatMap((w, i) => (w === wire ? [i] : []));
    const cycles: number[] = [];
    const fromFirst: number[] = [];
    let faults = 0;
    // Slot k (after the first, which includes opening every device) is due at t0 + k·period.
    for (let k = 1; k < slots; k++) {
      const due = t0 + k * periodMs;
      let last = Number.NEGATIVE_INFINITY;
      let first = Number.POSITIVE_INFINITY;
      let complete = true;
      for (const i of members) {
        let found = false;
        for (let j = 0; j < log.counts[i]; j++) {
          const at = i * log.capacity + j;
          // The round of slot k starts nearest to its due time (the sampler's timers may
          // fire a fraction of a millisecond early; wall-clock alignment jitters by 1 ms).
          if (Math.abs(log.starts[at] - due) < periodMs / 2) {
            found = true;
            if (!log.ok[at]) faults++;
            last = Math.max(last, log.ends[at]);
            first = Math.min(first, log.starts[at]);
          }
        }
        if (!found) complete = false;
      }
      if (complete) {
        cycles.push(last - due);
        fromFirst.push(last - first);
      }
    }
    fromFirst.sort((a, b) => a - b);
    const cyclesMs = cycles.map((c) => Math.round(c * 10) / 10);
    cycles.sort((a, b) => a - b);
    const kind: WireKind = wire.startsWith('i2c')
      ? 'i2c'
      : wire.startsWith('serial')
        ? 'serial'
        : 'w1';
    const { limitMs, hardwareLimitMs } = limits[kind];
    const p50 = percentile(cycles, 50);
    const max = cycles[cycles.length - 1] ?? 0;
    results.push({
      wire,
      sensors: members.length,
      cycles: cycles.length,
      cycleMs: { p50, max },
      cyclesMs,
      fromFirstRoundMs: {
        p50: percentile(fromFirst, 50),
        max: fromFirst[fromFirst.length - 1] ?? 0,
      },
      limitMs,
      ratio: { p50: p50 / limitMs, max: max / limitMs },
      hardwareLimitMs,
      faults,
      lastError: errors.get(wire),
    });
  }
  return { limits, results, schedulingLag, cpu, originShiftMs };
}

const fmt = (v: number, digits: number) =>
  v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

export function markdownTable(results: readonly WireResult[]): string {
  const rows = [
    '| wire | sensors | cycles | cycle p50 (ms) | cycle max (ms) | limit (ms) | p50 / limit | max / limit | from 1st round p50 (ms) | its / limit | faults |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    rows.push(
      `| ${r.wire} | ${r.sensors} | ${r.cycles} | ${fmt(r.cycleMs.p50, 1)} | ${fmt(r.cycleMs.max, 1)} | ` +
        `${fmt(r.limitMs, 1)} | ${fmt(r.ratio.p50, 3)} | ${fmt(r.ratio.max, 3)} | ` +
        `${fmt(r.fromFirstRoundMs.p50, 1)} | ${fmt(r.fromFirstRoundMs.p50 / r.limitMs, 3)} | ${r.faults} |`,
    );
  }
  return `${rows.join('\n')}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      period: { type: 'string', default: '2000' },
      slots: { type: 'string', default: '16' },
      write: { type: 'boolean', default: false },
      'no-align': { type: 'boolean', default: false },
      wires: { type: 'string', default: WIRE_KINDS.join(',') },
      /** Write every I²C slot's transfers and rounds to this file (text). */
      timeline: { type: 'string' },
    },
  });
  if (process.env.UV_THREADPOOL_SIZE === undefined) {
    // The pool size is read when the pool starts: set it for a fresh process.
    const execArgv = self.endsWith('.ts') ? ['--import', 'tsx'] : [];
    const child = spawnSync(process.execPath, [...execArgv, self, ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, UV_THREADPOOL_SIZE: POOL_SIZE },
    });
    process.exitCode = child.status ?? 1;
    return;
  }
  const periodMs = Number(values.period);
  const slots = Number(values.slots);
  const before = machine();
  const alignToWallClock = !values['no-align'];
  const wires = values.wires.split(',') as WireKind[];
  const unknown = wires.filter((w) => !WIRE_KINDS.includes(w));
  if (unknown.length > 0) throw new Error(`unknown wire kind: ${unknown.join(', ')}`);
  const { limits, results, schedulingLag, cpu, originShiftMs } = await run(
    periodMs,
    slots,
    alignToWallClock,
    wires,
    values.timeline,
  );
  const report = {
    bench: 'mixed',
    date: new Date().toISOString(),
    machine: { ...before, load1After: machine().load1 },
    uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE),
    w1ReadLimit: limits.w1.concurrency,
    periodMs,
    slots,
    alignToWallClock,
    wires,
    limits,
    /** The sampler's own measure of how late its slots started (timer lateness). */
    schedulingLag,
    /** CPU of the process (agent and simulators) while sampling, slot 0 included. */
    cpu,
    /**
     * The sampler's slot 0 minus the bench's own clock reading just before start(): the
     * error a cycle would carry if it were timed from the bench's reading.
     */
    originShiftMs,
    results,
  };
  const json = `${JSON.stringify(report, null, 2)}\n`;
  process.stdout.write(json);
  process.stderr.write(markdownTable(results));
  process.stderr.write(
    `CPU while sampling: ${fmt(cpu.percentOfOneCore, 2)} % of one core (agent and simulators); ` +
      `slot lag p50 ${fmt(schedulingLag.p50Ms, 2)} ms; origin shift ${fmt(originShiftMs, 2)} ms\n`,
  );
  if (values.write) writeFileSync(path.join(root, 'docs/benchmarks/mixed.json'), json);
}

await main();
