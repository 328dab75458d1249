import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  loadConfigFile,
  parseConfigText,
  validateConfig,
} from '../../../agent/config/load.js';
import { configJsonSchema, configMarkdown } from '../../../agent/config/json-schema.js';
import { workerOptions } from '../../../agent/pipeline.js';
import { RingBuffer } from '../../../agent/queue/ring-buffer.js';

function problems(input: unknown): string[] {
  try {
    validateConfig(input);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('config validation', () => {
  it('fills documented defaults for a minimal config', () => {
    const cfg = validateConfig({ gateway: { id: 'gw-1' } });
    expect(cfg.mqtt.url).toBe('mqtt://127.0.0.1:1883');
    expect(cfg.mqtt.topicPrefix).toBe('edge');
    expect(cfg.mqtt.qos).toBe(1);
    expect(cfg.buffer).toEqual({ capacity: 65536, overflow: 'drop-oldest' });
    expect(cfg.aggregation.windowMs).toBe(10_000);
    expect(cfg.sensors).toEqual([]);
  });

  it('takes the aggregation grace and coalescing times, and hands them to the worker', () => {
    const cfg = validateConfig({
      gateway: { id: 'gw-1' },
      aggregation: { windowMs: 5000, graceMs: 0, coalesceMs: 1500 },
    });
    const options = workerOptions(cfg, RingBuffer.create(16, 'drop-oldest'), []);
    expect(options).toMatchObject({ windowMs: 5000, graceMs: 0, coalesceMs: 1500 });
    // Unset, the worker picks its defaults from the window length.
    const plain = validateConfig({ gateway: { id: 'gw-1' } });
    expect(
      workerOptions(plain, RingBuffer.create(16, 'drop-oldest'), []).coalesceMs,
    ).toBeUndefined();
    expect(problems({ gateway: { id: 'gw-1' }, aggregation: { coalesceMs: -1 } })).toEqual([
      expect.stringMatching(/^aggregation\.coalesceMs: /),
    ]);
  });

  it('fills driver defaults (XY-MD02 registers, I²C bus 1 and default address)', () => {
    const cfg = validateConfig({
      gateway: { id: 'gw' },
      sensors: [
        { id: 'rs485', driver: 'modbus-rtu', port: '/dev/ttyUSB0' },
        { id: 'tmp', driver: 'tmp102' },
      ],
    });
    const [rtu, tmp] = cfg.sensors;
    expect(rtu.driver === 'modbus-rtu' && rtu.registers.map((r) => r.address)).toEqual([1, 2]);
    expect(tmp.driver === 'tmp102' && [tmp.bus, tmp.address]).toEqual([1, 0x48]);
  });

  it('reports every problem at once, each with its path', () => {
    const lines = problems({
      gateway: { id: 'gw/1' },
      mqtt: { url: 'http://x', qos: 3 },
      buffer: { capacity: 1000 },
      sensors: [
        { id: 'a', driver: 'tmp102', adress: 0x48 },
        { id: 'a', driver: 'mcp9808', address: 0x80 },
        { id: 'c', driver: 'foo' },
        { id: 'd e', driver: 'sht3x', address: 0x44 },
        { id: 'e', driver: 'sht3x', address: 0x44 },
      ],
    });
    expect(lines).toContain(
      'gateway.id: gateway id may only contain A-Z a-z 0-9 _ - (it becomes an MQTT topic level)',
    );
    expect(lines).toContain('mqtt.qos: must be one of 1, 2, got 3');
    expect(lines).toContain('buffer.capacity: must be a power of two, got 1000');
    expect(lines).toContain('sensors[0].adress: unknown key (check the spelling)');
    expect(lines).toContain('sensors[1].address: must be 0x18..0x1f, got 0x80');
    expect(lines.find((l) => l.startsWith('sensors[2].driver: unknown driver "foo"'))).toMatch(
      /known drivers: tmp102, .*http-json/,
    );
    expect(lines.some((l) => l.startsWith('sensors[3].id: sensor id may only contain'))).toBe(true);
    expect(lines).toContain('sensors[1].id: duplicate sensor id "a" (also sensors[0].id)');
    expect(lines).toContain('sensors[4].address: same I²C bus 1 address 0x44 as sensors[3]');
    expect(lines.some((l) => l.startsWith('mqtt.url:'))).toBe(true);
  });

  it.each(['a+b', 'a#', 'a/b', 'a b', ''])('refuses %j as an MQTT topic level', (id) => {
    expect(problems({ gateway: { id } })[0]).toMatch(/^gateway\.id: /);
  });

  it('refuses two Modbus slaves with one unit id on one port, and intervalMs with schedule', () => {
    const lines = problems({
      gateway: { id: 'gw' },
      sensors: [
        { id: 'a', driver: 'modbus-rtu', port: '/dev/ttyUSB0', unitId: 3 },
        {
          id: 'b',
          driver: 'modbus-rtu',
          port: '/dev/ttyUSB0',
          unitId: 3,
          intervalMs: 100,
          schedule: '* * * * * *',
        },
      ],
    });
    expect(lines).toEqual([
      'sensors[1].unitId: same serial port /dev/ttyUSB0 unit 3 registers 1,2 (function 4) as sensors[0]',
      'sensors[1].schedule: set either intervalMs or schedule, not both',
    ]);
  });

  it('refuses cron expressions node-cron cannot run', () => {
    expect(
      problems({
        gateway: { id: 'gw' },
        health: { schedule: 'every minute' },
        sensors: [
          { id: 'a', driver: 'tmp102', schedule: '*/5 * * * * *' },
          { id: 'b', driver: 'lm75', address: 0x49, schedule: '61 * * * *' },
        ],
      }),
    ).toEqual([
      'sensors[1].schedule: not a valid cron expression: "61 * * * *"',
      'health.schedule: not a valid cron expression: "every minute"',
    ]);
  });

  it('allows several sensors at different registers of one Modbus unit', () => {
    const reg = (address: number) => [{ quantity: 'temperature', address }];
    const base = { driver: 'modbus-tcp', host: '10.0.0.5', unitId: 1 };
    expect(
      problems({
        gateway: { id: 'gw' },
        sensors: [
          { id: 'a', ...base, registers: reg(1) },
          { id: 'b', ...base, registers: reg(3) },
          { id: 'c', ...base, registers: reg(3) },
        ],
      }),
    ).toEqual([
      'sensors[2].unitId: same Modbus TCP 10.0.0.5:502 unit 1 registers 3 (function 4) as sensors[1]',
    ]);
  });

  it('checks an http-json path at config time', () => {
    const lines = problems({
      gateway: { id: 'gw' },
      sensors: [
        { id: 'h', driver: 'http-json', url: 'http://127.0.0.1:8080/t', path: 'data..temp' },
      ],
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sensors\[0\]\.path: /);
  });

  it('names a missing gateway and wrong types', () => {
    expect(problems({})).toEqual(['gateway: required (object)']);
    expect(
      problems({ gateway: { id: 'g' }, sensors: [{ id: 'x', driver: 'lm75', bus: 'one' }] }),
    ).toEqual(['sensors[0].bus: must be a number, got "one"']);
  });
});

describe('config files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-config-'));

  it('reports a YAML syntax error with line and column', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'gateway:\n  id: x\n sensors: [\n');
    expect(() => loadConfigFile(file)).toThrow(/line 3, column 1/);
  });

  it('reads JSON as well as YAML, and hex addresses in YAML', () => {
    const yml = join(dir, 'ok.yaml');
    writeFileSync(
      yml,
      'gateway: { id: gw }\nsensors:\n  - { id: t, driver: tmp102, address: 0x49 }\n',
    );
    const cfg = loadConfigFile(yml);
    expect(cfg.sensors[0].driver === 'tmp102' && cfg.sensors[0].address).toBe(0x49);
    const json = join(dir, 'ok.json');
    writeFileSync(json, JSON.stringify({ gateway: { id: 'gw' } }));
    expect(loadConfigFile(json).gateway.id).toBe('gw');
    expect(() => parseConfigText('{"gateway": ', 'x.json')).toThrow(ConfigError);
  });

  it('names an unreadable file', () => {
    expect(() => loadConfigFile(join(dir, 'missing.yaml'))).toThrow(
      /cannot read .*missing\.yaml: ENOENT/,
    );
  });
});

describe('generated docs', () => {
  it('docs/config.schema.json and docs/configuration.md match the schema (run npm run docs:config)', () => {
    expect(JSON.parse(readFileSync('docs/config.schema.json', 'utf8'))).toEqual(configJsonSchema());
    expect(readFileSync('docs/configuration.md', 'utf8')).toBe(configMarkdown());
  });
});
