/** The trusted keys directory (ssh-like ownership and modes), the rules of a remote document, keygen. */
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../../agent/commands/dispatch.js';
import { validateConfig } from '../../../agent/config/load.js';
import { resolveConfigPaths } from '../../../agent/config/paths.js';
import { remoteConfigProblems } from '../../../agent/fleet/remote-rules.js';
import { keyIdOf, trustedKeyFromPem } from '../../../agent/fleet/signed-config.js';
import { loadTrustedKeys } from '../../../agent/fleet/trusted-keys.js';
import { useTeardown } from '../../helpers/teardown.js';
import { operatorKey } from './rig-files.js';

const t = useTeardown();

function keysDir(): string {
  const dir = join(t.tempDir('keys-'), 'trusted-keys');
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  return dir;
}

describe('trusted keys directory', () => {
  it('loads every Ed25519 *.pem and ignores other files', () => {
    const dir = keysDir();
    const a = operatorKey();
    const b = operatorKey();
    writeFileSync(join(dir, 'alice.pem'), a.publicPem, { mode: 0o644 });
    writeFileSync(join(dir, 'bob.pem'), b.publicPem, { mode: 0o644 });
    writeFileSync(join(dir, 'README'), 'not a key');
    const keys = loadTrustedKeys(dir);
    expect(keys.map((k) => k.source)).toEqual([join(dir, 'alice.pem'), join(dir, 'bob.pem')]);
    expect(keys[0].keyId).toBe(trustedKeyFromPem(a.publicPem, 'a').keyId);
  });

  it('refuses a directory or key file others may write, and one owned by another user', () => {
    const dir = keysDir();
    writeFileSync(join(dir, 'alice.pem'), operatorKey().publicPem, { mode: 0o644 });
    chmodSync(dir, 0o775);
    expect(() => loadTrustedKeys(dir)).toThrow(
      `trusted keys directory refused: ${dir} is writable by group or others (mode 775); chmod go-w ${dir}`,
    );
    chmodSync(dir, 0o755);
    chmodSync(join(dir, 'alice.pem'), 0o666);
    expect(() => loadTrustedKeys(dir)).toThrow(/trusted key refused: .*alice\.pem is writable/);
    chmodSync(join(dir, 'alice.pem'), 0o644);
    expect(loadTrustedKeys(dir)).toHaveLength(1);
    // Another owner: the agent runs as 4243, the directory belongs to 4242.
    if (process.getuid?.() !== 0) return; // chown needs root
    chownSync(dir, 4242, 4242);
    expect(() => loadTrustedKeys(dir, 4243)).toThrow(
      `${dir} is owned by uid 4242, neither root nor the agent's user (uid 4243)`,
    );
    expect(loadTrustedKeys(dir, 4242)).toHaveLength(1);
  });

  it('names a file that is not an Ed25519 public key', () => {
    const dir = keysDir();
    writeFileSync(join(dir, 'broken.pem'), 'nonsense', { mode: 0o644 });
    expect(() => loadTrustedKeys(dir)).toThrow(`${join(dir, 'broken.pem')}: not a PEM public key`);
    expect(() => loadTrustedKeys(join(dir, 'missing'))).toThrow(
      /cannot read the trusted keys directory .*ENOENT/,
    );
  });
});

describe('what a remote document may change', () => {
  const base = {
    gateway: { id: 'gw' },
    mqtt: { passwordFile: './secret', caFile: '/etc/edge-agent/ca.pem' },
    spool: { dir: './state' },
    fleet: { remoteConfig: { enabled: true, allowPaths: ['/srv/certs'] } },
    sensors: [{ id: 'rtu', driver: 'modbus-rtu', port: '/dev/ttyUSB0', unitId: 1 }],
  };
  const load = (input: unknown) =>
    resolveConfigPaths(validateConfig(input, 'test'), '/etc/edge-agent/config.yaml');
  const running = load(base);
  const problems = (over: Record<string, unknown>, credentialsDir?: string) =>
    remoteConfigProblems(load({ ...base, ...over }), running, { credentialsDir });

  it('lets the running files stay and new ones come from allowed places', () => {
    expect(problems({})).toEqual([]);
    expect(
      problems({ mqtt: { passwordFile: '/run/credentials/x/pw' } }, '/run/credentials/x'),
    ).toEqual([]);
    expect(problems({ mqtt: { ...base.mqtt, certFile: '/srv/certs/gw.pem' } })).toEqual([]);
  });

  it('refuses files outside, a moved state dir, a new gateway id or fleet section', () => {
    expect(problems({ mqtt: { passwordFile: '/etc/shadow' } })).toEqual([
      'mqtt.passwordFile: /etc/shadow is outside the credentials directory and fleet.remoteConfig.allowPaths',
    ]);
    expect(problems({ mqtt: { passwordFile: '/srv/certs/../../etc/shadow' } })).toHaveLength(1);
    expect(problems({ spool: { dir: '/tmp/elsewhere' } })).toEqual([
      'spool.dir: a remote config cannot move the state directory',
    ]);
    expect(problems({ gateway: { id: 'gw-2' } })[0]).toMatch(/^gateway\.id: gw-2 differs from gw/);
    expect(problems({ fleet: { remoteConfig: { enabled: false } } })[0]).toMatch(/^fleet: differs/);
    expect(problems({ sensors: [{ ...base.sensors[0], port: '/home/pi/fifo' }] })).toEqual([
      'sensors[0].port: /home/pi/fifo is not a device path (under /dev or /sys/bus/w1)',
    ]);
    expect(problems({ sensors: [{ ...base.sensors[0], port: '/dev/ttyAMA0' }] })).toEqual([]);
  });
});

describe('edge-agent keygen', () => {
  it('writes a 0600 private key and its public key, and never overwrites', async () => {
    const dir = t.tempDir('keygen-');
    let out = '';
    let err = '';
    const output = {
      stdout: (s: string) => void (out += s),
      stderr: (s: string) => void (err += s),
    };
    expect(await runCli(['keygen', '--out', dir, '--name', 'ops'], output)).toBe(0);
    const privatePath = join(dir, 'ops.key');
    const publicPath = join(dir, 'ops.pem');
    expect(statSync(privatePath).mode & 0o777).toBe(0o600);
    const key = trustedKeyFromPem(readFileSync(publicPath, 'utf8'), publicPath);
    expect(out).toContain(`key id:      ${keyIdOf(key.key)}`);
    expect(out).toContain(`/etc/edge-agent/trusted-keys/ops.pem`);
    expect(await runCli(['keygen', '--out', dir, '--name', 'ops'], output)).toBe(1);
    expect(err).toMatch(/cannot create .*ops\.key: the file exists/);
    expect(await runCli(['keygen', '--name', '../x'], output)).toBe(2);
  });
});
