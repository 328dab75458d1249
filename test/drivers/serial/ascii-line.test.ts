import { afterEach, describe, expect, it } from 'vitest';
import { sensorSchema, type SensorConfigOf } from '../../../drivers/registry.js';
import {
  LineSplitter,
  createAsciiLine,
  parseAsciiLine,
} from '../../../drivers/serial/ascii-line.js';
import { SerialLines } from '../../../drivers/serial/serial-lines.js';
import { ReadingStatus } from '../../../drivers/types.js';
import { Signal } from '../../../simulator/signal.js';
import { AsciiLineDevice } from '../../../simulator/serial/ascii-device.js';
import { SimulatedSerialBinding } from '../../../simulator/serial/binding.js';
import { runDriver } from '../../helpers/run-driver.js';

const PATH = '/dev/ttyASCII0';
const config = (o: Record<string, unknown> = {}) =>
  sensorSchema.parse({
    id: 'a',
    driver: 'ascii-line',
    port: PATH,
    ...o,
  }) as SensorConfigOf<'ascii-line'>;
const DEFAULT = new RegExp(config().pattern);

let lines: SerialLines | undefined;
afterEach(async () => {
  await lines?.closeAll();
  lines = undefined;
});

describe('parseAsciiLine with the default pattern', () => {
  it.each([
    ['  23.5', 23.5],
    ['-11.2', -11.2],
    ['T=23.5', 23.5],
    ['temp: 7', 7],
  ])('reads %j as %d', (line, value) => {
    expect(parseAsciiLine(line, DEFAULT)).toEqual({ kind: 'value', value });
  });

  it.each(['Err 3', 'ERR: sensor open', '  err'])('treats %j as a device error', (line) => {
    expect(parseAsciiLine(line, DEFAULT).kind).toBe('error');
  });

  it.each(['', 'hello', '23.5.1', '--1', '\u00ff\u0001#?', 'T=', '1e999'])(
    'treats %j as garbage',
    (line) => {
      expect(parseAsciiLine(line, DEFAULT)).toEqual({ kind: 'garbage' });
    },
  );

  it('honours a configured pattern', () => {
    const p = /^TEMP,(-?\d+\.\d+),C$/;
    expect(parseAsciiLine('TEMP,-4.25,C', p)).toEqual({ kind: 'value', value: -4.25 });
    expect(parseAsciiLine('23.5', p)).toEqual({ kind: 'garbage' });
  });
});

describe('LineSplitter', () => {
  it('cuts at CRLF, LF and CR across chunk boundaries', () => {
    const s = new LineSplitter();
    expect(s.push(Buffer.from('  23.5\r'))).toEqual(['  23.5']);
    expect(s.push(Buffer.from('\n-11'))).toEqual([]);
    expect(s.push(Buffer.from('.2\nT=1\r\n'))).toEqual(['-11.2', 'T=1']);
  });

  it('drops an endless line instead of growing without bound', () => {
    const s = new LineSplitter(16);
    expect(s.push(Buffer.alloc(100, 0x41))).toEqual([]);
    expect(s.overflows).toBe(1);
    expect(s.push(Buffer.from('5\n'))).toEqual(['5']);
  });
});

describe('ascii-line driver on a simulated streaming sensor', () => {
  function setup(periodMs = 15, format?: (v: number) => string) {
    const device = new AsciiLineDevice({
      signal: new Signal({ setPoint: 23.5, noise: 0, driftAmplitude: 0 }),
      periodMs,
      format,
    });
    const binding = new SimulatedSerialBinding().add(PATH, device);
    lines = new SerialLines(binding, undefined, { reopenMinMs: 20, reopenMaxMs: 100 });
    return { device, binding };
  }

  it('yields the streamed values', async () => {
    setup(15, (v) => `T=${v.toFixed(1)}\r\n`);
    const driver = createAsciiLine(config(), lines!);
    const { readings, faults } = await runDriver(driver, {
      until: (rs) => rs.length >= 3,
    });
    expect(faults).toEqual([]);
    expect(readings.map((r) => [r.quantity, r.value, r.status])).toEqual(
      Array(3).fill(['temperature', 23.5, ReadingStatus.Ok]),
    );
    expect(driver.counters.values).toBeGreaterThanOrEqual(3);
  });

  it('counts garbage and Err lines as faults and carries on', async () => {
    const { device } = setup(15);
    const driver = createAsciiLine(config(), lines!);
    let injected = false;
    const { readings, faults } = await runDriver(driver, {
      intervalMs: 40,
      reopenAfter: 100,
      onReading: () => {
        if (injected) return;
        injected = true;
        device.inject('err', 1);
        device.inject('garbage', 8);
      },
      until: (rs, fs) =>
        fs.some((f) => f.code === 'DEVICE') &&
        fs.some((f) => f.code === 'PROTOCOL') &&
        rs[rs.length - 1].status === ReadingStatus.Ok,
    });
    expect(driver.counters.errors).toBe(1);
    expect(driver.counters.garbage).toBeGreaterThanOrEqual(8);
    expect(faults.every((f) => f.code === 'DEVICE' || f.code === 'PROTOCOL')).toBe(true);
    expect(readings[readings.length - 1].value).toBe(23.5);
  });

  it('reports a silent device as TIMEOUT', async () => {
    setup(60_000);
    const driver = createAsciiLine(config(), lines!);
    const { faults } = await runDriver(driver, {
      timeoutMs: 100,
      until: (_rs, fs) => fs.length >= 2,
    });
    expect(faults.map((f) => f.code)).toEqual(['TIMEOUT', 'TIMEOUT']);
  });

  it('survives unplug and replug', async () => {
    const { binding } = setup(10);
    const driver = createAsciiLine(config(), lines!);
    let phase: 'before' | 'unplugged' | 'replugged' = 'before';
    let faultsWhileUnplugged = 0;
    const { faults } = await runDriver(driver, {
      intervalMs: 20,
      ticks: 500,
      timeoutMs: 200,
      onReading: (r, rs) => {
        if (phase === 'before' && rs.length >= 2) {
          phase = 'unplugged';
          binding.unplug(PATH);
        } else if (phase === 'unplugged' && r.status === ReadingStatus.Fault) {
          if (++faultsWhileUnplugged >= 3) {
            phase = 'replugged';
            binding.replug(PATH);
          }
        }
      },
      until: (rs) => phase === 'replugged' && rs[rs.length - 1].status === ReadingStatus.Ok,
    });
    expect(faults.some((f) => f.code === 'DISCONNECTED')).toBe(true);
    expect(binding.opens(PATH)).toBeGreaterThanOrEqual(2);
  });
});
