/**
 * systemd/install.sh into a temporary root: twice (idempotent, keeps the user's config and
 * password), an invalid config refused, then --uninstall and --purge. The installed copy
 * gets this repo's real node_modules (copied, nothing compiled); npm is replaced by a
 * stand-in that records its call (the prune) and fails on request, so the installed copy's
 * real `check-config` runs without the network.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  renameSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = join(REPO, 'systemd/install.sh');
const built = existsSync(join(REPO, 'dist/agent/cli.js'));
if (!built) console.warn('dist/agent/cli.js missing: skipping install.sh tests (npm run build)');

let work: string;
let root: string;
let npmLog: string;
const mode = (p: string) => statSync(join(root, p)).mode & 0o777;
const exists = (p: string) => existsSync(join(root, p));
const read = (p: string) => readFileSync(join(root, p), 'utf8');

function install(...args: string[]) {
  return installWith({}, ...args);
}
function installWith(env: Record<string, string>, ...args: string[]) {
  return spawnSync('bash', [SCRIPT, '--root', root, ...args], {
    encoding: 'utf8',
    env: { ...process.env, NPM: join(work, 'npm'), NODE: process.execPath, ...env },
    timeout: 120_000,
  });
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'edge-install-'));
  root = join(work, 'root');
  npmLog = join(work, 'npm.log');
  writeFileSync(
    join(work, 'npm'),
    `#!/bin/sh\necho "$PWD|$*" >> '${npmLog}'\n[ -z "$NPM_FAIL" ] || { echo "npm: $NPM_FAIL" >&2; exit 1; }\n`,
  );
  chmodSync(join(work, 'npm'), 0o755);
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!built)('systemd/install.sh into a temporary root', () => {
  it('installs the agent, unit, wrapper, example config and a 0600 credential', () => {
    const r = install();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/config\.yaml: ok \(gateway boiler-room-1/); // check-config ran

    expect(exists('opt/edge-agent/dist/agent/cli.js')).toBe(true);
    // Only what the agent runs goes onto a gateway: the benchmarks are not built into dist/.
    expect(exists('opt/edge-agent/dist/bench')).toBe(false);
    expect(exists('opt/edge-agent/package.json')).toBe(true);
    expect(exists('opt/edge-agent/package-lock.json')).toBe(true);
    // Nothing compiled twice: the tree's node_modules were copied into the staged program and
    // only pruned there (npm ci never ran), then the stage replaced the (absent) installation.
    expect(readFileSync(npmLog, 'utf8').trim()).toBe(
      `${join(root, 'opt/edge-agent.new')}|prune --omit=dev --no-audit --no-fund`,
    );
    expect(exists('opt/edge-agent.new')).toBe(false);
    expect(lstatSync(join(root, 'opt/edge-agent/node_modules')).isDirectory()).toBe(true);
    const addon = 'opt/edge-agent/node_modules/better-sqlite3/build/Release/better_sqlite3.node';
    expect(lstatSync(join(root, addon)).isFile()).toBe(true);
    expect(mode(addon) & 0o022).toBe(0);
    // Readable by the service, writable by root only; the CLI stays executable as built.
    expect(mode('opt/edge-agent/dist/agent/cli.js')).toBe(0o755);
    expect(mode('opt/edge-agent/dist/agent/pipeline.js')).toBe(0o644);
    expect(mode('opt/edge-agent/dist/agent')).toBe(0o755);

    const unit = read('etc/systemd/system/edge-agent.service');
    expect(mode('etc/systemd/system/edge-agent.service')).toBe(0o644);
    expect(unit).toContain(
      `ExecStart=${process.execPath} /opt/edge-agent/dist/agent/cli.js run --config /etc/edge-agent/config.yaml`,
    );
    expect(unit).toContain('Type=notify');

    expect(read('etc/edge-agent/config.yaml')).toBe(
      readFileSync(join(REPO, 'systemd/config.example.yaml'), 'utf8'),
    );
    expect(mode('etc/edge-agent/config.yaml')).toBe(0o644);
    expect(mode('etc/edge-agent/mqtt-password')).toBe(0o600);
    expect(read('etc/edge-agent/mqtt-password')).toBe('');
    expect(mode('usr/local/bin/edge-agent')).toBe(0o755);
    expect(read('usr/local/bin/edge-agent')).toContain(`'/opt/edge-agent/dist/agent/cli.js' "$@"`);
  });

  it('is idempotent: a second run keeps the edited config and the password', () => {
    const edited = read('etc/edge-agent/config.yaml').replace(
      'id: boiler-room-1',
      'id: pump-house',
    );
    writeFileSync(join(root, 'etc/edge-agent/config.yaml'), edited);
    writeFileSync(join(root, 'etc/edge-agent/mqtt-password'), 's3cret\n');
    chmodSync(join(root, 'etc/edge-agent/mqtt-password'), 0o644); // loosened by hand
    // A file from an older version must not survive an upgrade.
    writeFileSync(join(root, 'opt/edge-agent/dist/stale.js'), '');

    const r = install();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('keeping the existing /etc/edge-agent/config.yaml');
    expect(r.stdout).toMatch(/gateway pump-house/);
    expect(read('etc/edge-agent/config.yaml')).toBe(edited);
    expect(read('etc/edge-agent/mqtt-password')).toBe('s3cret\n');
    expect(mode('etc/edge-agent/mqtt-password')).toBe(0o600); // tightened again
    expect(exists('opt/edge-agent/dist/stale.js')).toBe(false);
    expect(readFileSync(npmLog, 'utf8').trim().split('\n')).toHaveLength(2);
  });

  it('stores a password from stdin with mode 0600', () => {
    const r = spawnSync('bash', [SCRIPT, '--root', root, '--skip-npm', '--mqtt-password-stdin'], {
      encoding: 'utf8',
      input: 'correct horse\n',
      env: { ...process.env, NODE: process.execPath },
    });
    expect(r.status).toBe(0);
    expect(read('etc/edge-agent/mqtt-password')).toBe('correct horse');
    expect(mode('etc/edge-agent/mqtt-password')).toBe(0o600);
  });

  it('refuses to finish with an invalid config, naming the problem', () => {
    const good = read('etc/edge-agent/config.yaml');
    writeFileSync(join(root, 'etc/edge-agent/config.yaml'), 'gateway:\n  id: "bad id"\n');
    const r = install('--skip-npm');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/gateway\.id: /);
    expect(r.stderr).toMatch(/config\.yaml is invalid/);
    // The installed program is untouched and the staged one gone.
    expect(exists('opt/edge-agent/dist/agent/cli.js')).toBe(true);
    expect(exists('opt/edge-agent/node_modules')).toBe(true);
    expect(exists('opt/edge-agent.new')).toBe(false);
    writeFileSync(join(root, 'etc/edge-agent/config.yaml'), good);
  });

  it('leaves the installed program in place when the prune fails', () => {
    writeFileSync(join(root, 'opt/edge-agent/dist/marker.js'), '');
    const r = installWith({ NPM_FAIL: 'ENOSPC: no space left on device' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/npm prune --omit=dev failed .*\/opt\/edge-agent is unchanged/);
    expect(exists('opt/edge-agent/dist/marker.js')).toBe(true);
    expect(exists('opt/edge-agent/node_modules/better-sqlite3')).toBe(true);
    expect(exists('opt/edge-agent.new')).toBe(false);
  });

  it('puts back a program left in .old by a run cut off between its renames', () => {
    // What a power cut between "installed -> .old" and ".new -> installed" leaves.
    renameSync(join(root, 'opt/edge-agent'), join(root, 'opt/edge-agent.old'));
    const good = read('etc/edge-agent/config.yaml');
    writeFileSync(join(root, 'etc/edge-agent/config.yaml'), 'gateway:\n  id: "bad id"\n');
    const r = install('--skip-npm');
    writeFileSync(join(root, 'etc/edge-agent/config.yaml'), good);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toContain('restored /opt/edge-agent from an interrupted earlier run');
    expect(exists('opt/edge-agent/dist/marker.js')).toBe(true);
    expect(exists('opt/edge-agent.old')).toBe(false);
  });

  it('--uninstall removes the program and unit but keeps config, password and spool', () => {
    const spool = join(root, 'var/lib/private/edge-agent');
    spawnSync('mkdir', ['-p', spool]);
    writeFileSync(join(spool, 'spool.db'), 'unsent batches');
    const r = install('--uninstall');
    expect(r.status).toBe(0);
    expect(exists('opt/edge-agent')).toBe(false);
    expect(exists('etc/systemd/system/edge-agent.service')).toBe(false);
    expect(exists('usr/local/bin/edge-agent')).toBe(false);
    expect(exists('etc/edge-agent/config.yaml')).toBe(true);
    expect(exists('etc/edge-agent/mqtt-password')).toBe(true);
    expect(exists('var/lib/private/edge-agent/spool.db')).toBe(true);
    // Uninstalling twice is fine too.
    expect(install('--uninstall').status).toBe(0);
  });

  it('--uninstall --purge removes config, password and spool as well', () => {
    const r = install('--uninstall', '--purge');
    expect(r.status).toBe(0);
    expect(exists('etc/edge-agent')).toBe(false);
    expect(exists('var/lib/private/edge-agent')).toBe(false);
  });

  it('--prefix puts the program elsewhere and points the unit and wrapper there', () => {
    const r = install('--prefix', '/srv/edge');
    expect(r.status, r.stderr).toBe(0);
    expect(exists('srv/edge/dist/agent/cli.js')).toBe(true);
    const unit = read('etc/systemd/system/edge-agent.service');
    expect(unit).toContain(`ExecStart=${process.execPath} /srv/edge/dist/agent/cli.js run`);
    expect(unit).not.toContain('/opt/edge-agent');
    expect(read('usr/local/bin/edge-agent')).toContain(`'/srv/edge/dist/agent/cli.js'`);
    expect(install('--prefix', '/srv/edge', '--uninstall', '--purge').status).toBe(0);
    expect(exists('srv/edge')).toBe(false);
  });

  it('rejects unknown options', () => {
    const r = install('--frobnicate');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('unknown option --frobnicate');
  });
});
