/**
 * The shipped unit: systemd's own verdicts (security exposure, verify) where systemd-analyze
 * exists, and the directives the agent relies on everywhere.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS } from '../../agent/ops/node-flags.js';

const UNIT = fileURLToPath(new URL('../../systemd/edge-agent.service', import.meta.url));
const unitText = readFileSync(UNIT, 'utf8');
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
if (!hasAnalyze) {
  console.warn(
    'systemd-analyze not found: skipping the unit security/verify tests (apt install systemd)',
  );
}

/** Every value of a key in the unit, in order (comments and blank lines ignored). */
function values(key: string): string[] {
  return unitText
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => !l.startsWith('#') && l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}
const one = (key: string): string | undefined => values(key).at(-1);
const seconds = (v: string | undefined): number => {
  const m = /^(\d+)(s|min)?$/.exec(v ?? '');
  if (!m) throw new Error(`cannot read a time span from ${String(v)}`);
  return Number(m[1]) * (m[2] === 'min' ? 60 : 1);
};

const tmp: string[] = [];
afterAll(() => {
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

describe.skipIf(!hasAnalyze)('systemd-analyze on systemd/edge-agent.service', () => {
  it('has an overall exposure of 1.5 or lower', () => {
    const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', UNIT], {
      encoding: 'utf8',
    });
    const out = `${r.stdout}\n${r.stderr}`;
    const m = /Overall exposure level for edge-agent\.service:\s*([\d.]+)/.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(1.5);
  });

  it('verifies clean', () => {
    // verify checks that ExecStart's binary exists. /usr/bin/node may not exist on the test
    // machine, so verify a copy whose node path points at the node running this test; every
    // other line is the shipped unit's.
    const dir = mkdtempSync(join(tmpdir(), 'edge-unit-'));
    tmp.push(dir);
    const copy = join(dir, 'edge-agent.service');
    writeFileSync(copy, unitText.replaceAll('/usr/bin/node ', `${process.execPath} `));
    const r = spawnSync('systemd-analyze', ['verify', '--no-pager', copy], { encoding: 'utf8' });
    const complaints = `${r.stdout}\n${r.stderr}`
      .split('\n')
      .filter((l) => l.includes('edge-agent.service'));
    expect(complaints).toEqual([]);
    expect(r.status).toBe(0);
  });

  it('is caught by verify when a key is misspelt (the check above can fail)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edge-unit-'));
    tmp.push(dir);
    const copy = join(dir, 'edge-agent.service');
    writeFileSync(
      copy,
      unitText
        .replaceAll('/usr/bin/node ', `${process.execPath} `)
        .replace('ProtectHome=yes', 'ProtectHomes=yes'),
    );
    const r = spawnSync('systemd-analyze', ['verify', '--no-pager', copy], { encoding: 'utf8' });
    expect(r.stderr).toMatch(/Unknown key 'ProtectHomes'/);
  });
});

describe('unit directives the agent relies on', () => {
  it('is a notify service with a watchdog, restarts on failure within start limits', () => {
    expect(one('Type')).toBe('notify');
    expect(one('NotifyAccess')).toBe('main');
    expect(seconds(one('WatchdogSec'))).toBeGreaterThan(0);
    expect(one('Restart')).toBe('on-failure');
    expect(Number(one('StartLimitBurst'))).toBeGreaterThan(0);
    expect(seconds(one('StartLimitIntervalSec'))).toBeGreaterThan(0);
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('ExecStart')).toMatch(
      /^\/usr\/bin\/node \/opt\/edge-agent\/dist\/agent\/cli\.js run --config \/etc\/edge-agent\/config\.yaml$/,
    );
  });

  it('runs node with the agent’s heap settings, the same ones npm start and the benchmark use', () => {
    const env = values('Environment').map((v) => v.replace(/^"(.*)"$/, '$1'));
    const nodeOptions = env.find((v) => v.startsWith('NODE_OPTIONS='));
    expect(nodeOptions?.slice('NODE_OPTIONS='.length).split(/\s+/)).toEqual([...AGENT_NODE_FLAGS]);
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${AGENT_NODE_FLAGS.join(' ')} dist/agent/cli.js simulate`);
  });

  it('gives systemd more time to stop than the agent’s drain bound', () => {
    const pipeline = readFileSync(new URL('../../agent/pipeline.ts', import.meta.url), 'utf8');
    const m = /DEFAULT_DRAIN_MS\s*=\s*([\d_]+)/.exec(pipeline);
    const drainSec = m ? Number(m[1].replaceAll('_', '')) / 1000 : 10; // documented default
    // Drain, then the MQTT goodbye and closing the spool: a clear margin, not equality.
    expect(seconds(one('TimeoutStopSec'))).toBeGreaterThanOrEqual(drainSec + 5);
  });

  it('runs unprivileged with state, config and the MQTT password credential', () => {
    expect(one('DynamicUser') === 'yes' || one('User') !== undefined).toBe(true);
    expect(one('SupplementaryGroups')?.split(/\s+/).sort()).toEqual(['dialout', 'gpio', 'i2c']);
    expect(one('StateDirectory')).toBe('edge-agent');
    expect(one('ConfigurationDirectory')).toBe('edge-agent');
    expect(one('LoadCredential')).toBe('mqtt-password:/etc/edge-agent/mqtt-password');
    expect(one('UMask')).toBe('0077');
  });

  it('allows only the device classes the drivers use, by class name not glob', () => {
    expect(one('DevicePolicy')).toBe('closed');
    const allowed = values('DeviceAllow');
    for (const cls of ['char-i2c rw', 'char-ttyS rw', 'char-ttyUSB rw', 'char-ttyAMA rw']) {
      expect(allowed).toContain(cls);
    }
    expect(allowed.filter((a) => a.includes('*'))).toEqual([]);
  });

  it('keeps the hardening Node tolerates and leaves out what breaks it', () => {
    for (const [k, v] of [
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'yes'],
      ['PrivateTmp', 'yes'],
      ['NoNewPrivileges', 'yes'],
      ['CapabilityBoundingSet', ''],
      ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6'],
      ['SystemCallArchitectures', 'native'],
      ['PrivateUsers', 'no'],
    ]) {
      expect(one(k), k).toBe(v);
    }
    expect(values('SystemCallFilter')).toContain('@system-service');
    // V8's JIT needs writable+executable memory.
    expect(one('MemoryDenyWriteExecute')).toBeUndefined();
    expect(unitText).toMatch(/#.*MemoryDenyWriteExecute.*JIT/);
  });
});
