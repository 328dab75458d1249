import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  configWarnings,
  loadConfigFile,
  parseConfigText,
  validateConfig,
  type ConfigInput,
} from '../../../agent/config/load.js';
import { configJsonSchema, configMarkdown } from '../../../agent/config/json-schema.js';
import { workerOptions } from '../../../agent/pipeline-parts.js';
import { RingBuffer } from '../../../agent/queue/ring-buffer.js';
import { configProblems as problems } from './problems.js';

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

  it('never repeats a value that may be a secret pasted into the wrong key', () => {
    const lines = [
      ...problems({ gateway: { id: 'gw' }, mqtt: { passwordFile: ['hunter2'] } }),
      ...problems({
        gateway: { id: 'gw' },
        mqtt: { passwordCredential: 'hunter2 is my password' },
      }),
    ];
    expect(lines).toEqual([
      'mqtt.passwordFile: must be a string, got a value not repeated here (it may be a secret)',
      expect.stringMatching(
        /^mqtt\.passwordCredential: must match .*got a value not repeated here/,
      ),
    ]);
    expect(lines.join('\n')).not.toContain('hunter2');
  });

  it('refuses a broker URL the MQTT client cannot parse', () => {
    expect(problems({ gateway: { id: 'gw' }, mqtt: { url: 'mqtt://[bad' } })).toEqual([
      'mqtt.url: is not a URL the MQTT client can read, got "mqtt://[bad"',
    ]);
  });

  it('takes a list of brokers as mqtt.urls: each checked like url, url is the first', () => {
    const one = validateConfig({ gateway: { id: 'gw' }, mqtt: { url: 'mqtts://b:8883' } });
    expect(one.mqtt).toMatchObject({ url: 'mqtts://b:8883', urls: ['mqtts://b:8883'] });
    const none = validateConfig({ gateway: { id: 'gw' } });
    expect(none.mqtt.urls).toEqual(['mqtt://127.0.0.1:1883']);
    const cluster = validateConfig({
      gateway: { id: 'gw' },
      mqtt: { urls: ['mqtt://n1:1883', 'mqtt://n2:1883', 'mqtt://n3:1883'] },
    });
    expect(cluster.mqtt).toMatchObject({
      url: 'mqtt://n1:1883',
      urls: ['mqtt://n1:1883', 'mqtt://n2:1883', 'mqtt://n3:1883'],
    });
    expect(
      problems({
        gateway: { id: 'gw' },
        mqtt: {
          url: 'mqtt://a:1883',
          urls: ['mqtt://n1:1883', 'http://n2', 'mqtt://[bad', 'mqtt://n1:1883'],
        },
      }),
    ).toEqual([
      'mqtt.urls[1]: must be an mqtt://, mqtts://, ws:// or wss:// URL',
      'mqtt.urls[2]: is not a URL the MQTT client can read, got "mqtt://[bad"',
      'mqtt.urls: set either mqtt.url or mqtt.urls, not both',
      'mqtt.urls[3]: the same broker as mqtt.urls[0]',
    ]);
    // A parsed config (url and urls both set, agreeing) validates again unchanged (a reload, a test).
    expect(validateConfig(cluster as ConfigInput).mqtt).toEqual(cluster.mqtt);
    expect(problems({ gateway: { id: 'gw' }, mqtt: { urls: [] } })).toEqual([
      expect.stringMatching(/^mqtt\.urls: .*1/),
    ]);
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

  it('refuses an ascii-line pattern without a capture group, or one that does not compile', () => {
    const line = (pattern: string) => ({
      gateway: { id: 'gw' },
      sensors: [{ id: 'a', driver: 'ascii-line', port: '/dev/ttyUSB0', pattern }],
    });
    expect(problems(line('^T=-?\\d+$'))).toEqual([
      'sensors[0].pattern: has no capture group; put ( ) around the number, e.g. "^T=(-?\\d+(?:\\.\\d+)?)$", got "^T=-?\\\\d+$"',
    ]);
    expect(problems(line('^T=(?:-?\\d+)$'))).toEqual([
      expect.stringMatching(/^sensors\[0\]\.pattern: has no capture group/),
    ]);
    expect(problems(line('^T=(-?\\d+$'))).toEqual([
      expect.stringMatching(/^sensors\[0\]\.pattern: must be a valid regular expression \(.*\)$/),
    ]);
    expect(problems(line('^T=(-?\\d+)$'))).toEqual([]);
    expect(problems(line('^(?<v>-?\\d+)$'))).toEqual([]);
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
      /cannot read .*missing\.yaml: no such file \(ENOENT\)/,
    );
  });
});

describe('numeric keys are bounded', () => {
  const gw = { gateway: { id: 'gw' } };
  const tmp = (extra: Record<string, unknown>) => ({
    ...gw,
    sensors: [{ id: 't', driver: 'tmp102', ...extra }],
  });

  it('refuses durations Node timers cannot hold or that make no sense, naming the range', () => {
    expect(problems({ ...gw, mqtt: { reconnectMinMs: 4e9, reconnectMaxMs: 5e9 } })).toEqual([
      'mqtt.reconnectMinMs: must be at most 3600000 (1 h), got 4000000000',
      'mqtt.reconnectMaxMs: must be at most 3600000 (1 h), got 5000000000',
    ]);
    expect(problems(tmp({ intervalMs: 1e12 }))).toEqual([
      'sensors[0].intervalMs: must be at most 86400000 (1 d), got 1000000000000',
    ]);
    expect(problems(tmp({ timeoutMs: 1e12 }))).toEqual([
      'sensors[0].timeoutMs: must be at most 600000 (10 min), got 1000000000000',
    ]);
    expect(problems({ ...gw, sampling: { timeoutMs: 2 ** 31 } })).toEqual([
      'sampling.timeoutMs: must be at most 600000 (10 min), got 2147483648',
    ]);
  });

  it('gives one message for a negative or fractional value, not two', () => {
    expect(problems(tmp({ intervalMs: -5 }))).toEqual([
      'sensors[0].intervalMs: must be at least 10 (10 ms), got -5',
    ]);
    expect(problems(tmp({ intervalMs: -5.5 }))).toEqual([
      'sensors[0].intervalMs: must be a whole number, got -5.5',
    ]);
    expect(problems({ ...gw, spool: { maxBytes: 1e15 } })).toEqual([
      'spool.maxBytes: must be at most 68719476736 (64 GiB), got 1000000000000000',
    ]);
  });

  it('every numeric key of the schema has an upper bound; every ms bound fits a Node timer', () => {
    const unbounded: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (node === null || typeof node !== 'object') return;
      const s = node as Record<string, unknown>;
      const numeric = s.type === 'integer' || s.type === 'number';
      if (numeric && s.enum === undefined && s.const === undefined) {
        if (typeof s.maximum !== 'number') unbounded.push(path);
        else if (s['x-unit'] === 'ms' && s.maximum > 2_147_483_647) {
          unbounded.push(`${path} (timer)`);
        }
      }
      for (const [k, v] of Object.entries(s)) walk(v, k === 'properties' ? path : `${path}.${k}`);
    };
    const root = configJsonSchema() as { properties: Record<string, unknown> };
    for (const [key, prop] of Object.entries(root.properties)) walk(prop, key);
    expect(unbounded).toEqual([]);
  });
});

describe('config warnings', () => {
  it('warns when no sensor is enabled', () => {
    expect(configWarnings(validateConfig({ gateway: { id: 'gw' } }))).toEqual([
      expect.stringMatching(/^sensors: no enabled sensors/),
    ]);
    expect(
      configWarnings(
        validateConfig({
          gateway: { id: 'gw' },
          sensors: [{ id: 't', driver: 'tmp102', enabled: false }],
        }),
      ),
    ).toHaveLength(1);
    expect(
      configWarnings(
        validateConfig({ gateway: { id: 'gw' }, sensors: [{ id: 't', driver: 'tmp102' }] }),
      ),
    ).toEqual([]);
  });
});

describe('config files that are not what they should be', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-config-odd-'));
  const file = (name: string, content: string | Buffer) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };
  const fileProblems = (path: string): string[] => {
    try {
      loadConfigFile(path);
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    return [];
  };

  it('says a syntax error broken on many lines once, with the other lines', () => {
    const tabs = file('tabs.yaml', '\tgateway: gw\n\tmqtt: x\n\tfoo: bar\n\tbaz: q\n');
    expect(fileProblems(tabs)).toEqual([
      '(syntax) line 1, column 1: Tabs are not allowed as indentation (also on lines 2, 3, 4)',
    ]);
    const prose = Array.from({ length: 12 }, (_, i) => `${String.fromCharCode(99 + i)} x y`);
    const lines = fileProblems(file('prose.yaml', ['a: b', ...prose, ''].join('\n')));
    expect(lines).toEqual([
      '(syntax) line 2, column 1: Implicit map keys need to be followed by map values (also on lines 3, 4, 5, 6, 7 and 6 more)',
    ]);
  });

  it('accepts a UTF-8 byte order mark in JSON and YAML', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const json = file('bom.json', Buffer.concat([bom, Buffer.from('{"gateway": {"id": "gw"}}')]));
    expect(loadConfigFile(json).gateway.id).toBe('gw');
    const yaml = file('bom.yaml', Buffer.concat([bom, Buffer.from('gateway: { id: gw }\n')]));
    expect(loadConfigFile(yaml).gateway.id).toBe('gw');
  });

  it('refuses duplicate keys in JSON as in YAML, with their path', () => {
    const json = file(
      'dup.json',
      '{"gateway": {"id": "gw"},\n "sensors": [{"id": "a", "driver": "tmp102", "id": "b"}],\n "gateway": {"id": "x"}}',
    );
    expect(fileProblems(json)).toEqual([
      'sensors[0].id: duplicate key (line 2, column 46); each key may appear once',
      'gateway: duplicate key (line 3, column 2); each key may appear once',
    ]);
    const yaml = file(
      'dup.yaml',
      'gateway: { id: gw }\nsensors:\n  - { id: a, driver: tmp102, id: b }\n',
    );
    expect(fileProblems(yaml)).toEqual([
      'sensors[0].id: duplicate key (line 3, column 30); each key may appear once',
    ]);
  });

  it('allows 150 aliases of one anchor and YAML merge keys; refuses an alias bomb', () => {
    const sensors = Array.from(
      { length: 150 },
      (_, i) => `  - { <<: *tmp, id: s${i}, address: ${i % 2 === 0 ? '0x48' : '0x49'}, bus: ${i} }`,
    );
    const ok = file(
      'many-aliases.yaml',
      [
        'gateway: { id: gw }',
        'sensors:',
        '  - &tmp { id: first, driver: tmp102, bus: 200 }',
        ...sensors.slice(0, 50),
      ].join('\n'),
    );
    expect(loadConfigFile(ok).sensors).toHaveLength(51);
    const scalars = Array.from(
      { length: 150 },
      (_, i) =>
        `  - { id: s${i}, driver: http-json, url: ${i === 0 ? '&u http://127.0.0.1/t' : '*u'}, path: t }`,
    );
    expect(
      loadConfigFile(
        file('scalar-aliases.yaml', ['gateway: { id: gw }', 'sensors:', ...scalars].join('\n')),
      ).sensors,
    ).toHaveLength(150);
    const levels = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) {
      levels.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    }
    const lines = fileProblems(file('bomb.yaml', ['gateway: { id: gw }', ...levels].join('\n')));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\(file\): .*aliases/);
  });

  it('says "must be an array" where a list belongs', () => {
    expect(problems({ gateway: { id: 'gw' }, sensors: { a: 1 } })).toEqual([
      'sensors: must be an array, got an object',
    ]);
  });

  it('names an empty file, a scalar document, a directory, non-UTF-8 text, a huge file and binary garbage', () => {
    expect(fileProblems(file('empty.yaml', ''))).toEqual([
      expect.stringMatching(/^\(file\): empty; .*gateway/),
    ]);
    expect(fileProblems(file('comments.yaml', '# nothing here\n'))).toEqual([
      expect.stringMatching(/^\(file\): empty; /),
    ]);
    expect(fileProblems(file('scalar.yaml', 'hello\n'))).toEqual([
      '(root): must be a mapping of keys (gateway, mqtt, sensors, …), got "hello"',
    ]);
    expect(fileProblems(file('list.json', '[1, 2]'))).toEqual([
      '(root): must be a mapping of keys (gateway, mqtt, sensors, …), got a list',
    ]);
    expect(fileProblems(dir)).toEqual([expect.stringMatching(/^\(file\): .* is a directory/)]);
    expect(
      fileProblems(file('latin1.yaml', Buffer.from('gateway: { id: caf\xe9 }\n', 'latin1'))),
    ).toEqual([expect.stringMatching(/^\(file\): not UTF-8 text \(byte 0xe9 at offset 18\)/)]);
    const utf16 = Buffer.concat([
      Buffer.from([0xff, 0xfe]),
      Buffer.from('gateway: { id: gw }\n', 'utf16le'),
    ]);
    expect(fileProblems(file('utf16.yaml', utf16))).toEqual([
      '(file): UTF-16 text (a Windows editor?); save the file as UTF-8',
    ]);
    const huge = file('huge.yaml', `gateway: { id: gw }\n# ${'x'.repeat(10 * 1024 * 1024)}\n`);
    expect(fileProblems(huge)).toEqual([expect.stringMatching(/^\(file\): .*larger than 4 MiB/)]);
    const garbage = Buffer.alloc(3000);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) % 128;
    const lines = fileProblems(file('garbage.yaml', garbage));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.length).toBeLessThanOrEqual(11);
    // eslint-disable-next-line no-control-regex
    for (const line of lines) expect(line).toMatch(/^[^\x00-\x1f\x7f]*$/);
  });
});

describe('generated docs', () => {
  it('the editor schema carries the same bounds as check-config', () => {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    const validate = ajv.compile(JSON.parse(readFileSync('docs/config.schema.json', 'utf8')));
    expect(validate({ gateway: { id: 'gw' }, mqtt: { reconnectMinMs: 500 } })).toBe(true);
    expect(validate({ gateway: { id: 'gw' }, mqtt: { reconnectMinMs: 4e9 } })).toBe(false);
    expect(
      validate({
        gateway: { id: 'gw' },
        sensors: [{ id: 't', driver: 'tmp102', intervalMs: 1e12 }],
      }),
    ).toBe(false);
  });

  it('docs/config.schema.json and docs/configuration.md match the schema (run npm run docs:config)', () => {
    expect(JSON.parse(readFileSync('docs/config.schema.json', 'utf8'))).toEqual(configJsonSchema());
    expect(readFileSync('docs/configuration.md', 'utf8')).toBe(configMarkdown());
  });
});
