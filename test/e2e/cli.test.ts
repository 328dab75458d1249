import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// The built CLI (npm test builds first): what users and systemd actually run.
const CLI = join(process.cwd(), 'dist/agent/cli.js');
const cli = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });

describe('edge-agent CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-cli-'));

  it('check-config exits 0 on a valid file', () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(
      file,
      'gateway: { id: gw-1 }\nsensors:\n  - { id: t1, driver: tmp102, address: 0x48 }\n',
    );
    const r = cli('check-config', file);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ok');
  });

  it('check-config exits 2 with one line per problem and no stack trace', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      'gateway: { id: "gw 1" }\nsensors:\n  - { id: a, driver: mcp9808, address: 0x80 }\n  - { id: a, driver: tmp102, adress: 0x48 }\n',
    );
    const r = cli('check-config', file);
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toBe(`${file}: invalid configuration`);
    expect(lines).toContain('sensors[0].address: must be 0x18..0x1f, got 0x80');
    expect(lines).toContain('sensors[1].adress: unknown key (check the spelling)');
    expect(lines).toContain('sensors[1].id: duplicate sensor id "a" (also sensors[0].id)');
    expect(lines.some((l) => l.startsWith('gateway.id:'))).toBe(true);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('check-config exits 2 on a missing file or a YAML syntax error', () => {
    expect(cli('check-config', join(dir, 'nope.yaml')).status).toBe(2);
    const file = join(dir, 'syntax.yaml');
    writeFileSync(file, 'gateway:\n  id: x\n sensors: [\n');
    const r = cli('check-config', file);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/line 3, column 1/);
  });

  it('usage errors exit 2; --help exits 0 for every command', () => {
    expect(cli().status).toBe(2);
    expect(cli('frobnicate').status).toBe(2);
    expect(cli('check-config').status).toBe(2);
    expect(cli('simulate', '--duration', 'soon').status).toBe(2);
    expect(cli('run', '--bogus').status).toBe(2);
    for (const cmd of ['run', 'simulate', 'check-config', 'scan', 'tail']) {
      const r = cli(cmd, '--help');
      expect(r.status, cmd).toBe(0);
      expect(r.stdout).toContain(`usage: edge-agent ${cmd}`);
    }
  });

  it('run exits 1 with a plain message when the MQTT password file is unreadable', () => {
    const file = join(dir, 'run-nopw.yaml');
    writeFileSync(
      file,
      `gateway: { id: gw }\nmqtt: { url: "mqtt://127.0.0.1:1", passwordFile: ${join(dir, 'no-such-password')} }\n`,
    );
    const r = spawnSync(process.execPath, [CLI, 'run', '--config', file], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, STATE_DIRECTORY: join(dir, 'state-nopw') },
    });
    expect(r.status, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toContain('no-such-password');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('run exits 2 when the config is invalid', () => {
    const file = join(dir, 'run-bad.yaml');
    writeFileSync(file, 'gateway: {}\n');
    const r = cli('run', '--config', file);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('gateway.id: required');
  });
});
