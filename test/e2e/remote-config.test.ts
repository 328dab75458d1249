/**
 * Remote configuration from the command line against a real broker: `edge-agent keygen`, an
 * agent started as `edge-agent run` with fleet commands and remote config on, and
 * `edge-agent remote … config push` — one config applied (a sensor added), one rolled back
 * (a wrong broker password), the file and telemetry checked after each; on a mosquitto with the
 * ACL lines of docs/operations.md.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startHttpSensorServer } from '../../simulator/network/http-server.js';
import { documentedFleetAcl, remoteCli, runCli, startFleetAgent } from '../helpers/fleet-agent.js';
import { missingSeqs } from '../helpers/subscriber.js';
import { useTeardown } from '../helpers/teardown.js';
import { configText } from '../agent/fleet/rig-files.js';

const t = useTeardown();

describe('edge-agent remote config push', () => {
  it('applies a signed config, and a wrong broker password comes back by itself', async () => {
    const dir = t.tempDir('remote-config-e2e-');
    const credentials = t.tempDir('credentials-');
    // The documented ACL, and a user of the test's own that watches the gateway's topics.
    const broker = await t.mosquitto({
      users: { gw: 'secret', operator: 'ops-secret', watcher: 'watch' },
      acl: [...documentedFleetAcl(), 'user watcher', 'topic read edge/#'],
    });
    const http = t.own(await startHttpSensorServer({ delayMs: 2, sensors: 2 }));

    const keygen = await runCli(['keygen', '--out', dir, '--name', 'ops']);
    expect(keygen.code, keygen.stderr).toBe(0);
    mkdirSync(join(dir, 'trusted-keys'), { mode: 0o755 });
    writeFileSync(join(dir, 'trusted-keys', 'ops.pem'), readFileSync(join(dir, 'ops.pem')));
    writeFileSync(join(dir, 'mqtt-password'), 'secret\n');
    writeFileSync(join(dir, 'ops-password'), 'ops-secret\n');
    const shape = {
      brokerUrl: broker.url,
      sensorUrls: [http.url(0)],
      commands: true,
      group: 'building-7',
    };

    const sub = await t.subscriber({
      url: broker.url,
      topics: ['edge/gw/telemetry', 'edge/gw/config/state'],
      username: 'watcher',
      password: 'watch',
    });
    const operator = {
      broker: broker.url,
      gateway: 'gw',
      username: 'operator',
      passwordFile: join(dir, 'ops-password'),
    };
    const remote = remoteCli(operator);
    const { agent, configFile: file } = await startFleetAgent(t, {
      operator,
      dir,
      command: 'run',
      config: configText(shape),
      env: { CREDENTIALS_DIRECTORY: credentials },
    });
    await sub.waitFor((s) => s.telemetrySeqs().length > 0, 30_000, 'telemetry');
    /** Batches after this moment arrive, and none from the first on is missing. */
    const telemetryGoesOnWithoutGap = async (what: string) => {
      const from = Math.max(...sub.telemetrySeqs());
      await sub.waitFor((s) => Math.max(...s.telemetrySeqs()) > from + 2, 30_000, what);
      const seqs = sub.telemetrySeqs();
      expect(missingSeqs(seqs, Math.max(...seqs))).toEqual([]);
    };

    const pushVia =
      (via: typeof remote) =>
      (doc: string, version: number, ...more: string[]) => {
        const path = join(dir, `push-${version}.yaml`);
        writeFileSync(path, doc);
        return via(
          'config',
          'push',
          path,
          '--key',
          join(dir, 'ops.key'),
          '--version',
          String(version),
          '--timeout',
          '60',
          ...more,
        );
      };
    const push = pushVia(remote);

    const withSensor = configText({ ...shape, sensorUrls: [http.url(0), http.url(1)] });
    const applied = await push(withSensor, 1);
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/^gw: applied \(1\/1\)$/m);
    expect(readFileSync(file, 'utf8')).toBe(withSensor);
    await sub.waitFor(
      (s) =>
        s
          .on('/telemetry')
          .some((m) =>
            (m.json?.windows as Array<{ sensor: string }>).some((w) => w.sensor === 'http-1'),
          ),
      20_000,
      'windows of the sensor added',
    );

    const get = await remote('--json', 'config', 'get');
    expect(get.code, get.stdout + get.stderr).toBe(0);
    expect(JSON.parse(get.stdout)).toMatchObject({ answer: { result: { version: 1 } } });

    writeFileSync(join(credentials, 'other-password'), 'wrong\n');
    const wrong = configText({
      ...shape,
      sensorUrls: [http.url(0), http.url(1)],
      passwordFile: join(credentials, 'other-password'),
    });
    const rolledBack = await push(wrong, 2);
    expect(rolledBack.code, rolledBack.stdout + rolledBack.stderr).toBe(1);
    expect(rolledBack.stdout).toMatch(
      /^gw: rolled-back: probation of 6000 ms over: not connected/m,
    );
    expect(readFileSync(file, 'utf8')).toBe(withSensor);
    await telemetryGoesOnWithoutGap('telemetry on the old settings');

    // MQTT 3.1.1 on the operator's side: the answer by id on the fixed reply topic.
    const replay = await push(wrong, 2, '--protocol', '4');
    expect(replay.code).toBe(1);
    // The answer or the state, whichever comes first: both say why.
    expect(replay.stdout).toMatch(
      /^gw: (refused: config\/set|rejected): version 2 is not above 2/m,
    );

    // Signed for the gateway's group, pushed to it and to a gateway that is not there: a new
    // window length replaces the pipeline of the one; the other has no outcome in time.
    const forGroup = configText({
      ...shape,
      sensorUrls: [http.url(0), http.url(1)],
      windowMs: 400,
    });
    const fleet = pushVia(remoteCli({ ...operator, gateway: 'gw,absent' }));
    const grouped = await fleet(forGroup, 3, '--group', 'building-7', '--timeout', '30');
    expect(grouped.code, grouped.stdout + grouped.stderr).toBe(1);
    expect(grouped.stdout).toMatch(/^pushing .*push-3\.yaml as version 3 to 2 gateway\(s\)$/m);
    expect(grouped.stdout).toMatch(/^gw: applied \(1\/2\)$/m);
    expect(grouped.stdout).toMatch(/^absent: no outcome within 30 s \(2\/2\)$/m);
    expect(readFileSync(file, 'utf8')).toBe(forGroup);
    await telemetryGoesOnWithoutGap('telemetry from the new pipeline');

    agent.kill('SIGTERM');
    expect((await agent.exited()).code).toBe(0);
  }, 180_000);
});
