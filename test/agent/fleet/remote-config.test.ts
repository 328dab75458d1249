/**
 * config/set end to end in one process: the agent as `run` assembles it (fixtures/agent-rig.ts)
 * on a real config file, a real mosquitto with a password file, real HTTP sensors, and the
 * command handled through CommandSet as a transport would hand it over.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigStore } from '../../../agent/fleet/config-store.js';
import { silentLogger } from '../../../agent/ops/logger.js';
import { startHttpSensorServer } from '../../../simulator/network/http-server.js';
import { missingSeqs, type TestSubscriber } from '../../helpers/subscriber.js';
import { useTeardown } from '../../helpers/teardown.js';
import { waitUntil } from '../../helpers/wait.js';
import { startAgentRig, type AgentRig } from './fixtures/agent-rig.js';
import {
  configText,
  operatorKey,
  signed,
  writeGatewayFiles,
  type ConfigShape,
} from './rig-files.js';

const t = useTeardown();
const key = operatorKey();
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

interface Gateway {
  rig: AgentRig;
  file: string;
  dir: string;
  credentialsDir: string;
  shape: ConfigShape;
  sub: TestSubscriber;
  brokerUrl: string;
  /** A sensor the running config does not read yet. */
  secondUrl: string;
}

async function startGateway(remoteConfig = true): Promise<Gateway> {
  const dir = t.tempDir('remote-config-');
  const credentialsDir = t.tempDir('credentials-');
  const broker = await t.mosquitto({ users: { gw: 'secret' } });
  const http = t.own(await startHttpSensorServer({ delayMs: 2, sensors: 2 }));
  const shape: ConfigShape = { brokerUrl: broker.url, sensorUrls: [http.url(0)] };
  const text = configText(shape);
  const file = writeGatewayFiles(
    dir,
    key,
    remoteConfig ? text : text.replace('    enabled: true', '    enabled: false'),
  );
  const sub = await t.subscriber({
    url: broker.url,
    topics: ['edge/gw/#'],
    username: 'gw',
    password: 'secret',
  });
  const rig = await startAgentRig({ configFile: file, credentialsDir, logger: silentLogger });
  t.add(() => rig.close());
  return {
    rig,
    file,
    dir,
    credentialsDir,
    shape,
    sub,
    brokerUrl: broker.url,
    secondUrl: http.url(1),
  };
}

const windowsOf = (sub: TestSubscriber, sensor: string) =>
  sub
    .on('/telemetry')
    .flatMap((m) => (m.json?.windows as Array<{ sensor: string }> | undefined) ?? [])
    .filter((w) => w.sensor === sensor).length;

const lastSeq = (sub: TestSubscriber) => Math.max(0, ...sub.telemetrySeqs());

async function retainedState(gw: Gateway): Promise<Record<string, unknown> | undefined> {
  const reader = await t.subscriber({
    url: gw.brokerUrl,
    topics: ['edge/gw/config/state'],
    username: 'gw',
    password: 'secret',
  });
  await reader.settle();
  return reader.on('/config/state').find((m) => m.retain)?.json;
}

describe('config/set on a running agent', () => {
  it('applies a config adding a sensor, then one needing a new pipeline; no seq lost', async () => {
    const gw = await startGateway();
    await gw.sub.waitFor((s) => windowsOf(s, 'http-0') > 0, 20_000, 'windows of http-0');
    const second = gw.secondUrl;
    const withSensor = configText({ ...gw.shape, sensorUrls: [gw.shape.sensorUrls[0], second] });
    const answer = await gw.rig.commands.handle('config/set', signed(key, 1, withSensor), {
      origin: 'remote',
    });
    expect(answer).toEqual({
      ok: true,
      result: {
        status: 'applied',
        version: 1,
        hash: sha256(withSensor),
        applied: 'reloaded',
        reason: null,
      },
    });
    expect(readFileSync(gw.file, 'utf8')).toBe(withSensor);
    await gw.sub.waitFor((s) => windowsOf(s, 'http-1') > 0, 20_000, 'windows of the new sensor');
    expect(gw.rig.supervisor.health().config).toEqual({ version: 1, hash: sha256(withSensor) });
    await gw.sub.waitFor(
      (s) => s.on('/config/state').some((m) => m.json?.version === 1),
      10_000,
      'the applied state',
    );
    expect(await retainedState(gw)).toMatchObject({
      status: 'applied',
      version: 1,
      hash: sha256(withSensor),
      reason: null,
      request: { version: 1, hash: sha256(withSensor) },
    });

    // A new window length: the pipeline is replaced in this process, the spool reopened.
    const before = lastSeq(gw.sub);
    const longer = configText({
      ...gw.shape,
      sensorUrls: [gw.shape.sensorUrls[0], second],
      windowMs: 400,
    });
    const restarted = await gw.rig.commands.handle('config/set', signed(key, 2, longer), {
      origin: 'remote',
    });
    expect(restarted).toMatchObject({
      ok: true,
      result: { status: 'applied', applied: 'restarted' },
    });
    expect(gw.rig.supervisor.currentConfig.aggregation.windowMs).toBe(400);
    await gw.sub.waitFor((s) => lastSeq(s) > before + 2, 20_000, 'telemetry after the restart');
    expect(missingSeqs(gw.sub.telemetrySeqs(), lastSeq(gw.sub))).toEqual([]);
  });

  it('rolls back a config with a wrong broker password within the probation', async () => {
    const gw = await startGateway();
    await gw.sub.waitFor((s) => lastSeq(s) >= 2, 20_000, 'telemetry');
    const original = readFileSync(gw.file, 'utf8');
    writeFileSync(join(gw.credentialsDir, 'new-password'), 'wrong\n');
    const wrong = configText({
      ...gw.shape,
      passwordFile: join(gw.credentialsDir, 'new-password'),
    });
    const answer = await gw.rig.commands.handle('config/set', signed(key, 1, wrong), {
      origin: 'remote',
    });
    expect(answer).toMatchObject({
      ok: true,
      result: { status: 'rolled-back', version: 1, applied: 'restarted' },
    });
    const result = (answer as { result: { reason: string } }).result;
    expect(result.reason).toMatch(/^probation of 6000 ms over: not connected to the broker/);
    expect(readFileSync(gw.file, 'utf8')).toBe(original);
    expect(gw.rig.supervisor.currentConfig.mqtt.passwordFile).toBe(join(gw.dir, 'mqtt-password'));
    // Telemetry resumes on the old settings, with the batches spooled meanwhile.
    const atRollback = lastSeq(gw.sub);
    await gw.sub.waitFor((s) => lastSeq(s) > atRollback + 2, 20_000, 'telemetry after rollback');
    expect(missingSeqs(gw.sub.telemetrySeqs(), lastSeq(gw.sub))).toEqual([]);
    await gw.sub.waitFor(
      (s) => s.on('/config/state').some((m) => m.json?.status === 'rolled-back'),
      10_000,
      'the rolled-back state',
    );
    expect(await retainedState(gw)).toMatchObject({
      status: 'rolled-back',
      version: null,
      hash: sha256(original),
      request: { version: 1, hash: sha256(wrong) },
    });
    expect(gw.rig.supervisor.health().config).toEqual({ version: null, hash: sha256(original) });
    // The version is spent: the same envelope again is a replay.
    const again = await gw.rig.commands.handle('config/set', signed(key, 1, wrong), {
      origin: 'remote',
    });
    expect(again).toMatchObject({ ok: false, error: { code: 'refused' } });
  });

  it('rolls back when the agent is stopped (SIGTERM) during the probation', async () => {
    const gw = await startGateway();
    const original = readFileSync(gw.file, 'utf8');
    const stranded = original.replace('username: gw', 'username: intruder');
    const answer = gw.rig.commands.handle('config/set', signed(key, 1, stranded), {
      origin: 'remote',
    });
    const marker = join(gw.rig.stateDir, 'remote-config', 'probation.json');
    await waitUntil(() => existsSync(marker) && readFileSync(gw.file, 'utf8') === stranded, {
      timeoutMs: 20_000,
      what: 'the new config on probation',
    });
    await gw.rig.close();
    expect(await answer).toMatchObject({
      ok: true,
      result: { status: 'rolled-back', reason: 'the agent stopped during probation' },
    });
    expect(readFileSync(gw.file, 'utf8')).toBe(original);
    expect(existsSync(marker)).toBe(false);
  });

  it('publishes nothing and refuses config/set while remote configuration is off', async () => {
    const gw = await startGateway(false);
    const original = readFileSync(gw.file, 'utf8');
    await gw.sub.waitFor((s) => lastSeq(s) >= 1, 20_000, 'telemetry');
    const answer = await gw.rig.commands.handle(
      'config/set',
      signed(key, 1, configText({ ...gw.shape, windowMs: 500 })),
      { origin: 'remote' },
    );
    expect(answer).toEqual({
      ok: false,
      error: {
        code: 'refused',
        message:
          'config/set: remote configuration is off on this gateway (fleet.remoteConfig.enabled)',
      },
    });
    expect(readFileSync(gw.file, 'utf8')).toBe(original);
    await gw.sub.settle();
    expect(gw.sub.on('/config/state')).toEqual([]);
  });

  it('refuses every bad request with the reason and leaves the file unchanged', async () => {
    const gw = await startGateway();
    const original = readFileSync(gw.file, 'utf8');
    const good = configText({ ...gw.shape, windowMs: 500 });
    const stranger = operatorKey();
    const cases: Array<{
      what: string;
      envelope: unknown;
      reason: RegExp;
      before?: () => void;
      after?: () => void;
    }> = [
      {
        what: 'no signature',
        envelope: { ...signed(key, 1, good), signature: undefined },
        reason: /signature: /,
      },
      {
        what: 'tampered document',
        envelope: { ...signed(key, 1, good), document: good.replace('500', '600') },
        reason: /the signature does not verify/,
      },
      {
        what: 'unknown key',
        envelope: signed(stranger, 1, good),
        reason: /is not a trusted key here/,
      },
      {
        what: 'another gateway',
        envelope: signed(key, 1, good, { gateway: 'gw-2' }),
        reason: /signed for gateway gw-2, this is gw/,
      },
      {
        what: 'a group it is not in',
        envelope: signed(key, 1, good, { group: 'boilers' }),
        reason: /signed for group boilers, this gateway is in no group/,
      },
      {
        what: 'replay',
        envelope: signed(key, 3, good),
        reason: /version 3 is not above 3/,
        before: () => new ConfigStore(gw.rig.stateDir).raiseHighestVersion(3),
      },
      {
        what: 'invalid document',
        envelope: signed(key, 4, good.replace('driver: http-json', 'driver: nope')),
        reason: /invalid configuration: sensors\[0\]\.driver: unknown driver/,
      },
      {
        what: 'credential outside the credentials directory',
        envelope: signed(key, 4, configText({ ...gw.shape, passwordFile: '/etc/shadow' })),
        reason: /mqtt\.passwordFile: \/etc\/shadow is outside the credentials directory/,
      },
      {
        what: 'trust settings changed',
        envelope: signed(key, 4, configText({ ...gw.shape, probationMs: 1000 })),
        reason: /fleet: differs from the running config/,
      },
      {
        what: 'a trusted keys directory others may write',
        envelope: signed(key, 4, good),
        reason: /writable by group or others \(mode 777\)/,
        before: () => chmodSync(join(gw.dir, 'trusted-keys'), 0o777),
        after: () => chmodSync(join(gw.dir, 'trusted-keys'), 0o755),
      },
    ];
    for (const c of cases) {
      c.before?.();
      const answer = await gw.rig.commands.handle('config/set', c.envelope, { origin: 'remote' });
      c.after?.();
      expect(answer, c.what).toMatchObject({ ok: false, error: { code: 'refused' } });
      expect(!answer.ok && answer.error.message, c.what).toMatch(c.reason);
      expect(readFileSync(gw.file, 'utf8'), c.what).toBe(original);
      expect(gw.rig.remote.currentState(), c.what).toMatchObject({ status: 'rejected' });
    }
    await gw.sub.waitFor(
      (s) => s.on('/config/state').some((m) => m.json?.status === 'rejected'),
      10_000,
      'a rejected state on the broker',
    );
    // Refusals are not written to the state directory (no disk writes at the request rate).
    expect(new ConfigStore(gw.rig.stateDir).state()?.status).not.toBe('rejected');
    // And a good one still goes through afterwards.
    const answer = await gw.rig.commands.handle('config/set', signed(key, 4, good), {
      origin: 'remote',
    });
    expect(answer).toMatchObject({ ok: true, result: { status: 'applied', version: 4 } });
  });
});
