/**
 * The amd64 Debian package, built by packaging/build-deb.sh, in a clean Debian trixie
 * chroot: `apt install ./edge-agent_*.deb` pulls only Debian packages (trixie's nodejs),
 * the shipped config passes check-config, simulate runs; an upgrade keeps an edited config
 * and a spool of undelivered batches, which the new version then delivers to a real broker;
 * remove keeps config and spool, purge leaves nothing.
 *
 * The chroot comes from a debootstrap tarball cached in $EDGE_AGENT_PKG_CACHE (one download
 * per cache), and the compiled node_modules are cached too; there is no systemd in a
 * chroot, so the unit itself is tested by unit.test.ts and service-run.test.ts.
 */
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  baseCached,
  chrootUnavailable,
  DebianChroot,
  mirrorUnreachable,
  type RunResult,
} from '../helpers/debian-chroot.js';
import { ext4Unavailable, mountExt4 } from '../helpers/ext4.js';
import { spawnMosquitto, type MosquittoBroker } from '../helpers/mosquitto.js';
import { freePort } from '../helpers/ports.js';
import { missingSeqs, startSubscriber } from '../helpers/subscriber.js';
import { waitUntil } from '../helpers/wait.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const ARCH = 'amd64';

function skipReason(): string | undefined {
  if (!existsSync(join(REPO, 'dist/agent/cli.js'))) return 'dist/ missing (npm run build)';
  if (process.arch !== 'x64')
    return `the CI package test builds amd64 on amd64 (this is ${process.arch})`;
  const chroot = chrootUnavailable(ARCH);
  if (chroot) return chroot;
  if (!baseCached(ARCH)) return mirrorUnreachable();
  return undefined;
}
const reason = skipReason();
if (reason) console.warn(`skipping the Debian package test: ${reason}`);

const MINUTE = 60_000;
const noExt4 = reason === undefined ? ext4Unavailable() : undefined;
if (noExt4) console.warn(`skipping the loop-device test of the chroot: ${noExt4}`);

/** packaging/build-deb.sh for amd64 into `out`; the path of the .deb. */
function buildPackage(version: string, out: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'bash',
      [
        join(REPO, 'packaging/build-deb.sh'),
        '--arch',
        ARCH,
        '--skip-build',
        '--version',
        version,
        '--out',
        out,
      ],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => {
      const deb = stdout.trim().split('\n').pop() ?? '';
      if (status === 0 && deb.endsWith('.deb')) resolve(deb);
      else reject(new Error(`build-deb.sh exited ${status}:\n${stderr}`));
    });
  });
}

const WANTS = '/etc/systemd/system/multi-user.target.wants/edge-agent.service';
const isLink = (p: string) => {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
};
const ok = (r: RunResult) => `exit ${r.status}\n${r.stdout}\n${r.stderr}`;

describe.skipIf(reason !== undefined)('the Debian package in a trixie chroot', () => {
  let work: string;
  let chroot: DebianChroot;
  let first: string;
  let second: string;
  let broker: MosquittoBroker | undefined;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'edge-deb-'));
    // The second build differs in version only: what an upgrade has to get right is dpkg's
    // handling of conffiles, the maintainer scripts and the spool, not the agent's code.
    first = await buildPackage('0.1.0', join(work, 'v1'));
    second = await buildPackage('0.1.0+upgrade.1', join(work, 'v2'));
    chroot = await DebianChroot.create(ARCH, join(work, 'root'));
    copyFileSync(first, chroot.path(`/tmp/${basename(first)}`));
    copyFileSync(second, chroot.path(`/tmp/${basename(second)}`));
  }, 30 * MINUTE);

  afterAll(async () => {
    await broker?.close();
    if (!work) return;
    // A leaked mount would let rm -rf reach the host's /dev: leave the tree then.
    if (chroot?.hasMounts()) console.warn(`mounts left below ${chroot.dir}: not deleting ${work}`);
    else rmSync(work, { recursive: true, force: true });
  });

  it(
    'installs with apt, pulling only Debian packages',
    async () => {
      const deb = `/tmp/${basename(first)}`;
      const plan = await chroot.run(`apt-get update -qq && apt-get install -s ${deb}`);
      expect(plan.status, ok(plan)).toBe(0);
      const inst = plan.stdout.split('\n').filter((l) => l.startsWith('Inst '));
      expect(inst.some((l) => l.startsWith('Inst nodejs '))).toBe(true);
      for (const line of inst.filter((l) => !l.startsWith('Inst edge-agent ')))
        expect(line).toMatch(/ \(\S+ Debian:\S+ \[(amd64|all)\]\)/);

      const r = await chroot.run(`apt-get install -y -q ${deb}`);
      expect(r.status, ok(r)).toBe(0);
      expect(r.stdout).toContain('the service is enabled but not started');

      // What install.sh does, done by the maintainer scripts.
      const groups = chroot.read('/etc/group');
      for (const g of ['i2c', 'dialout', 'gpio']) expect(groups).toMatch(new RegExp(`^${g}:`, 'm'));
      expect(statSync(chroot.path('/etc/edge-agent/mqtt-password')).mode & 0o777).toBe(0o600);
      const unit = chroot.read('/usr/lib/systemd/system/edge-agent.service');
      expect(unit).toContain(
        'ExecStart=/usr/bin/node /usr/lib/edge-agent/dist/agent/cli.js run --config /etc/edge-agent/config.yaml',
      );
      expect(unit).not.toContain('/opt/edge-agent');
      // Enabled for boot as debhelper would (deb-systemd-helper comes with systemd; a minimal
      // chroot may lack it, and then there is nothing to enable with).
      if (existsSync(chroot.path('/usr/bin/deb-systemd-helper')))
        expect(isLink(chroot.path(WANTS))).toBe(true);
      const node = await chroot.run('node --version');
      expect(node.stdout).toMatch(/^v(2\d|[3-9]\d)\./);
    },
    10 * MINUTE,
  );

  it(
    'passes check-config on the shipped config and runs simulate for 10 s',
    async () => {
      const check = await chroot.run('edge-agent check-config /etc/edge-agent/config.yaml');
      expect(check.status, ok(check)).toBe(0);
      expect(check.stdout).toMatch(/config\.yaml: ok/);

      const sim = await chroot.run(
        'cd /tmp && edge-agent simulate --duration 10 --state-dir /tmp/sim',
        {
          timeoutMs: 2 * MINUTE,
        },
      );
      expect(sim.status, ok(sim)).toBe(0);
      expect(sim.stdout).toMatch(/embedded MQTT broker: mqtt:\/\/127\.0\.0\.1:\d+/);
      expect(sim.stdout).toMatch(/simulating \d+ sensors/);
    },
    3 * MINUTE,
  );

  it(
    'upgrades keeping an edited config and a spool of undelivered batches',
    async () => {
      const config = chroot
        .read('/etc/edge-agent/config.yaml')
        .replace('id: boiler-room-1', 'id: pump-house');
      writeFileSync(chroot.path('/etc/edge-agent/config.yaml'), config);

      // Batches spooled while no broker listens: undelivered when the upgrade comes.
      const closed = await freePort();
      const spooling = await chroot.run(
        `edge-agent simulate --duration 5 --window 1000 --gateway pump-house ` +
          `--broker mqtt://127.0.0.1:${closed} --state-dir /var/lib/edge-agent`,
        { timeoutMs: 2 * MINUTE },
      );
      expect(spooling.status, ok(spooling)).toBe(0);
      const count = await chroot.run(
        `node -e "const D = require('/usr/lib/edge-agent/node_modules/better-sqlite3'); ` +
          `console.log(new D('/var/lib/edge-agent/spool.sqlite', { readonly: true }).prepare('SELECT max(seq) AS m FROM batches').get().m)"`,
      );
      expect(count.status, ok(count)).toBe(0);
      const spooled = Number(count.stdout.trim());
      expect(spooled).toBeGreaterThan(0);

      const r = await chroot.run(`apt-get install -y -q /tmp/${basename(second)}`);
      expect(r.status, ok(r)).toBe(0);
      const version = await chroot.run("dpkg-query -W -f '${Version}' edge-agent");
      expect(version.stdout).toBe('0.1.0+upgrade.1');
      expect(chroot.read('/etc/edge-agent/config.yaml')).toBe(config);

      // The new version delivers every batch the old one spooled, from seq 1.
      broker = await spawnMosquitto();
      const sub = await startSubscriber({ url: broker.url, topics: ['edge/pump-house/telemetry'] });
      try {
        const deliver = await chroot.run(
          `edge-agent simulate --duration 5 --window 1000 --gateway pump-house ` +
            `--broker ${broker.url} --state-dir /var/lib/edge-agent`,
          { timeoutMs: 2 * MINUTE },
        );
        expect(deliver.status, ok(deliver)).toBe(0);
        await sub.waitFor((s) => missingSeqs(s.telemetrySeqs(), spooled).length === 0, 30_000);
        expect(missingSeqs(sub.telemetrySeqs(), spooled)).toEqual([]);
      } finally {
        await sub.close();
      }
    },
    6 * MINUTE,
  );

  it(
    'remove keeps config and spool; purge leaves nothing',
    async () => {
      const remove = await chroot.run('apt-get remove -y -q edge-agent');
      expect(remove.status, ok(remove)).toBe(0);
      expect(existsSync(chroot.path('/usr/lib/edge-agent'))).toBe(false);
      expect(existsSync(chroot.path('/usr/bin/edge-agent'))).toBe(false);
      expect(existsSync(chroot.path('/etc/edge-agent/config.yaml'))).toBe(true);
      expect(existsSync(chroot.path('/etc/edge-agent/mqtt-password'))).toBe(true);
      expect(existsSync(chroot.path('/var/lib/edge-agent/spool.sqlite'))).toBe(true);

      const purge = await chroot.run('apt-get purge -y -q edge-agent');
      expect(purge.status, ok(purge)).toBe(0);
      const left = await chroot.run(
        `dpkg -l edge-agent 2>/dev/null | grep '^[a-z][a-z] ' || true; ` +
          `find / -xdev \\( -path /tmp -o -path /proc -o -path /dev \\) -prune -o -name '*edge-agent*' -print`,
      );
      expect(left.status, ok(left)).toBe(0);
      expect(left.stdout.trim()).toBe('');
      expect(isLink(chroot.path(WANTS))).toBe(false);
    },
    5 * MINUTE,
  );

  it.skipIf(noExt4 !== undefined)(
    'a command in the chroot does not pin a loop device of the host: unmounted there, it can be checked while the command runs',
    async () => {
      const disk = mountExt4(8 * 1024 * 1024);
      try {
        const ready = chroot.path('/tmp/pin-ready');
        const release = chroot.path('/tmp/pin-release');
        const running = chroot.run(
          'touch /tmp/pin-ready; i=0; while [ ! -e /tmp/pin-release ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done',
          { timeoutMs: 2 * MINUTE },
        );
        await waitUntil(() => existsSync(ready), { timeoutMs: MINUTE, what: 'the chroot command' });
        try {
          // Unmount, e2fsck (refused while any mount namespace holds the device), mount.
          expect(() => disk.repair()).not.toThrow();
        } finally {
          writeFileSync(release, '');
        }
        expect((await running).status).toBe(0);
      } finally {
        disk.close();
      }
    },
    3 * MINUTE,
  );
});
