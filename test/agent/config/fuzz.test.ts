/**
 * Generated bad configs fed to `check-config` through runCli, the function the CLI process
 * runs, and a handful through the real CLI process: each must end with exit 2 and plain
 * `path: problem` lines — never a stack trace, an error class name, a control character or
 * a line that runs on.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../../agent/commands/dispatch.js';

const CLI = join(process.cwd(), 'dist/agent/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'edge-config-fuzz-'));

type Json = Record<string, unknown>;

function baseConfig(): Json {
  return {
    gateway: { id: 'gw' },
    mqtt: { keepaliveSec: 30, inflight: 16, reconnectMinMs: 500, reconnectMaxMs: 30_000 },
    buffer: { capacity: 65_536 },
    aggregation: {
      windowMs: 10_000,
      stuckCount: 30,
      spikeZ: 8,
      spikeHistory: 31,
      graceMs: 0,
      coalesceMs: 100,
    },
    batch: { maxBytes: 262_144, maxDelayMs: 10_000 },
    spool: { maxBytes: 268_435_456, maxAgeSec: 604_800 },
    sampling: { intervalMs: 1000, startSpreadMs: 0, timeoutMs: 2000 },
    metrics: { port: 9464 },
    sensors: [
      {
        id: 't',
        driver: 'tmp102',
        bus: 1,
        intervalMs: 250,
        timeoutMs: 1000,
        range: { min: -40, max: 125 },
      },
      {
        id: 'm',
        driver: 'modbus-rtu',
        port: '/dev/ttyUSB0',
        baudRate: 9600,
        unitId: 1,
        registers: [{ quantity: 'temperature', address: 1, scale: 0.1 }],
      },
      { id: 'n', driver: 'modbus-tcp', host: '127.0.0.1', port: 502, unitId: 2 },
    ],
  };
}

type Path = Array<string | number>;

/** Every numeric leaf of the base config, with whether a fraction or a negative is legal there. */
function numericPaths(node: unknown, path: Path = []): Path[] {
  if (typeof node === 'number') return [path];
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([k, v]) =>
    numericPaths(v, [...path, Array.isArray(node) ? Number(k) : k]),
  );
}
const NUMERIC = numericPaths(baseConfig());
const FRACTION_OK = (p: Path) => /^(min|max|scale|spikeZ)$/.test(String(p.at(-1)));
const NEGATIVE_OK = (p: Path) => /^(min|max|scale)$/.test(String(p.at(-1)));
/** The few generated numbers that some keys legitimately take. */
function legalAt(p: Path, v: unknown): boolean {
  return (
    (v === 1.5 && FRACTION_OK(p)) ||
    (v === -5 && NEGATIVE_OK(p)) ||
    (v === -5.5 && FRACTION_OK(p) && NEGATIVE_OK(p))
  );
}
const OBJECT_PATHS: Path[] = [
  ['gateway'],
  ['mqtt'],
  ['buffer'],
  ['aggregation'],
  ['batch'],
  ['spool'],
  ['sampling'],
  ['metrics'],
  ['sensors', 0],
  ['sensors', 1],
  ['sensors', 1, 'registers', 0],
  ['sensors', 0, 'range'],
  [],
];
const STRING_PATHS: Path[] = [
  ['gateway', 'id'],
  ['sensors', 0, 'id'],
  ['sensors', 1, 'driver'],
  ['metrics', 'host'],
];

function setAt(root: Json, path: Path, value: unknown): void {
  let cur = root as Record<string | number, unknown>;
  for (const seg of path.slice(0, -1)) cur = cur[seg] as Record<string | number, unknown>;
  cur[path.at(-1)!] = value;
}
function getAt(root: Json, path: Path): Record<string, unknown> {
  let cur: unknown = root;
  for (const seg of path) cur = (cur as Record<string | number, unknown>)[seg];
  return cur as Record<string, unknown>;
}

const unicode = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 });
const notANumber = fc.oneof(
  fc.constantFrom('NaN', '1e3', '', '12ms', '0x10', 'Infinity', '٣'),
  unicode,
  fc.constant(null),
  fc.boolean(),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
);

function nested(depth: number, kind: 'list' | 'map'): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = kind === 'list' ? [v] : { a: v };
  return v;
}

/** One mutation of the base config that makes it invalid whatever the generated values. */
const badConfig = fc.oneof(
  // A number out of every range (1e12, -1e12, 2^31), a negative, a fraction, or not a number.
  fc
    .tuple(
      fc.constantFrom(...NUMERIC),
      fc.oneof(
        fc.constantFrom(1e12, -1e12, 2 ** 53, -5, 1.5, -5.5),
        // Above the largest bound of all (spool.maxBytes, 64 GiB).
        fc.double({ min: 1e11, max: 1e300, noNaN: true }),
        notANumber,
      ),
    )
    .filter(([p, v]) => !legalAt(p, v))
    .map(([p, v]) => {
      const c = baseConfig();
      setAt(c, p, v);
      return c;
    }),
  // An unknown key, in unicode, at any level.
  fc
    .tuple(
      fc.constantFrom(...OBJECT_PATHS),
      unicode,
      fc.anything().filter((v) => v !== undefined),
    )
    .map(([p, key, value]) => {
      const c = baseConfig();
      getAt(c, p)[`x-${key}`] = value;
      return c;
    }),
  // A name that is not a name, or not a string at all.
  fc
    .tuple(
      fc.constantFrom(...STRING_PATHS),
      fc.oneof(
        unicode.filter((s) => !/^[A-Za-z0-9_.-]+$/.test(s)),
        fc.string({ minLength: 65, maxLength: 300 }).map((s) => `${s}/`),
        notANumber.filter((v) => typeof v !== 'string'),
        fc.integer(),
      ),
    )
    .map(([p, v]) => {
      const c = baseConfig();
      setAt(c, p, v);
      return c;
    }),
  // A section or a sensor replaced by deep nesting or by anything at all.
  fc
    .tuple(
      fc.constantFrom<Path>(['mqtt'], ['sensors'], ['sensors', 0], ['sampling'], ['gateway']),
      fc.oneof(
        fc
          .tuple(fc.integer({ min: 1, max: 300 }), fc.constantFrom<'list' | 'map'>('list', 'map'))
          .map(([d, k]) => nested(d, k)),
        fc.anything({ maxDepth: 4 }).filter((v) => v !== undefined),
      ),
    )
    // An empty section means "all defaults" and no sensors is allowed: both valid.
    .filter(([p, v]) => !(isEmptyMap(v) && p.length === 1 && p[0] !== 'gateway'))
    .filter(
      ([p, v]) => !(Array.isArray(v) && v.length === 0 && p[0] === 'sensors' && p.length === 1),
    )
    .map(([p, v]) => {
      const c = baseConfig();
      setAt(c, p, v);
      return c;
    }),
);

function isEmptyMap(v: unknown): boolean {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0;
}

/** A YAML file whose aliases nest: width^depth expansions, beyond any sane config. */
const aliasBomb = fc
  .tuple(fc.integer({ min: 5, max: 12 }), fc.integer({ min: 6, max: 10 }))
  .map(([width, depth]) => {
    const lines = ['gateway: { id: gw }', `a0: &a0 [${Array(width).fill('lol').join(', ')}]`];
    for (let i = 1; i < depth; i++) {
      lines.push(
        `a${i}: &a${i} [${Array(width)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    }
    return lines.join('\n');
  });

/** Files: a bad config as JSON or YAML (with or without a BOM), an alias bomb, or noise. */
const badFile = fc.oneof(
  fc.tuple(badConfig, fc.boolean(), fc.boolean()).map(([config, json, bom]) => ({
    ext: json ? '.json' : '.yaml',
    content: (bom ? '\uFEFF' : '') + (json ? JSON.stringify(config) : stringify(config)),
  })),
  aliasBomb.map((content) => ({ ext: '.yaml', content })),
  fc
    .tuple(fc.string({ unit: 'binary', maxLength: 400 }), fc.constantFrom('.yaml', '.json'))
    .map(([content, ext]) => ({ ext, content })),
  fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 400 }), fc.constantFrom('.yaml', '.json'))
    .map(([bytes, ext]) => ({ ext, content: Buffer.from(bytes) })),
);

let fileNo = 0;
function writeCase(c: { ext: string; content: string | Buffer }): string {
  const file = join(dir, `case-${fileNo++}${c.ext}`);
  writeFileSync(file, c.content);
  return file;
}

async function checkInProcess(file: string) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['check-config', file], {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
  });
  return { code, stdout, stderr };
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f]/;
const STACK = /\n\s+at |\b[A-Z][A-Za-z]*Error\b|ERR_[A-Z_]+/;
const PROBLEM = /^(?:\((?:file|syntax|root)\)|[A-Za-z_$[])[^\n]*?: \S/;

function expectPlainRefusal(r: { code: number; stdout: string; stderr: string }, file: string) {
  expect(r.code, r.stdout + r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr).not.toMatch(STACK);
  expect(r.stderr).not.toMatch(CONTROL);
  const [head, ...problems] = r.stderr.trimEnd().split('\n');
  expect(head).toBe(`${file}: invalid configuration`);
  expect(problems.length).toBeGreaterThan(0);
  for (const line of problems) {
    if (line.startsWith('… and ')) continue;
    expect(line).toMatch(PROBLEM);
    expect(line.length).toBeLessThanOrEqual(310);
  }
}

describe('check-config on generated bad configs', () => {
  it('refuses each with exit 2 and plain path: problem lines (in process, 200 runs)', async () => {
    await fc.assert(
      fc.asyncProperty(badFile, async (c) => {
        const file = writeCase(c);
        expectPlainRefusal(await checkInProcess(file), file);
      }),
      { numRuns: 200, seed: 11 },
    );
  });

  it('refuses a 10 MB file in one line', async () => {
    const file = writeCase({
      ext: '.yaml',
      content: `gateway: { id: gw }\nsensors:\n${'  - { id: t, driver: tmp102 }\n'.repeat(400_000)}`,
    });
    const r = await checkInProcess(file);
    expectPlainRefusal(r, file);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(2);
  });

  it('gives the same answer through the real CLI process (a handful)', async () => {
    const cases = fc.sample(badFile, { numRuns: 6, seed: 12 });
    for (const c of cases) {
      const file = writeCase(c);
      const inProcess = await checkInProcess(file);
      const real = spawnSync(process.execPath, [CLI, 'check-config', file], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expectPlainRefusal(
        { code: real.status ?? -1, stdout: real.stdout, stderr: real.stderr },
        file,
      );
      expect(real.stderr).toBe(inProcess.stderr);
    }
  });
});
