/**
 * SIGKILL during a remote config's apply: every write leaves a whole file, and an agent killed
 * during the probation comes back on the previous file by itself — the restart is the real
 * CLI (dist/agent/cli.js run), as systemd would start it.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startHttpSensorServer } from '../../../simulator/network/http-server.js';
import { startAgent } from '../../e2e/agent-process.js';
import { runTs } from '../../helpers/process.js';
import { useTeardown } from '../../helpers/teardown.js';
import { sleep, waitUntil } from '../../helpers/wait.js';
import { configText, operatorKey, signed, writeGatewayFiles } from './rig-files.js';

const t = useTeardown();
const WRITE_LOOP = fileURLToPath(new URL('./fixtures/write-loop.ts', import.meta.url));
const APPLY_PROCESS = fileURLToPath(new URL('./fixtures/apply-process.ts', import.meta.url));

describe('SIGKILL during a remote config apply', () => {
  it('leaves a whole old or whole new file at any moment of an atomic write', async () => {
    const dir = t.tempDir('atomic-kill-');
    const a = `# A\n${'sensors: []\n'.repeat(40_000)}`;
    const b = `# B\n${'gateway: { id: gw }\n'.repeat(30_000)}`;
    writeFileSync(join(dir, 'a'), a);
    writeFileSync(join(dir, 'b'), b);
    const file = join(dir, 'config.yaml');
    writeFileSync(file, a);
    for (let round = 0; round < 5; round++) {
      const writer = runTs(WRITE_LOOP, [file, join(dir, 'a'), join(dir, 'b')]);
      t.add(() => writer.kill());
      await writer.waitForLine(/^writing$/);
      // Picks the moment of the kill, somewhere in the middle of the writes.
      await sleep(20 + round * 37);
      await writer.kill('SIGKILL');
      const text = readFileSync(file, 'utf8');
      expect(text === a || text === b, `round ${round}: ${text.length} bytes`).toBe(true);
    }
  });

  it('rolls back at the next start when killed during the probation', async () => {
    const dir = t.tempDir('probation-kill-');
    const key = operatorKey();
    const broker = await t.mosquitto({ users: { gw: 'secret' } });
    const http = t.own(await startHttpSensorServer({ delayMs: 2, sensors: 1 }));
    const shape = { brokerUrl: broker.url, sensorUrls: [http.url(0)], probationMs: 60_000 };
    const original = configText(shape);
    const file = writeGatewayFiles(dir, key, original);
    // A user the broker does not know: the new config never connects, probation runs on.
    const stranded = original.replace('username: gw', 'username: intruder');
    const envelopeFile = join(dir, 'envelope.json');
    writeFileSync(envelopeFile, JSON.stringify(signed(key, 7, stranded)));
    const marker = join(dir, 'state', 'remote-config', 'probation.json');

    const agent = runTs(APPLY_PROCESS, [file, envelopeFile]);
    t.add(() => agent.kill());
    await agent.waitForLine(/^running$/);
    await waitUntil(() => existsSync(marker) && readFileSync(file, 'utf8') === stranded, {
      timeoutMs: 30_000,
      what: 'the new file written and on probation',
    });
    await agent.kill('SIGKILL');
    expect(readFileSync(file, 'utf8')).toBe(stranded);

    const sub = await t.subscriber({
      url: broker.url,
      topics: ['edge/gw/#'],
      username: 'gw',
      password: 'secret',
    });
    const restarted = startAgent(['run', '--config', file]);
    t.add(async () => {
      restarted.kill('SIGKILL');
      await restarted.exited();
    });
    await restarted.waitForLog(
      (l) => /stopped before version 7 was confirmed/.test(String(l.msg)),
      'the rollback at start',
    );
    expect(readFileSync(file, 'utf8')).toBe(original);
    expect(existsSync(marker)).toBe(false);
    await sub.waitFor(
      (s) =>
        s.on('/telemetry').length > 0 &&
        s.on('/config/state').some((m) => m.json?.status === 'rolled-back'),
      30_000,
      'telemetry on the old settings and the rolled-back state',
    );
    expect(sub.on('/config/state').at(-1)?.json).toMatchObject({
      status: 'rolled-back',
      version: null,
      request: { version: 7 },
    });
    restarted.kill('SIGTERM');
    expect((await restarted.exited()).code).toBe(0);
  });

  it('comes back on the whole old file whatever moment of the apply the kill hits', async () => {
    const dir = t.tempDir('apply-kill-');
    const key = operatorKey();
    const broker = await t.mosquitto({ users: { gw: 'secret' } });
    const http = t.own(await startHttpSensorServer({ delayMs: 2, sensors: 1 }));
    const original = configText({
      brokerUrl: broker.url,
      sensorUrls: [http.url(0)],
      probationMs: 60_000,
    });
    const file = writeGatewayFiles(dir, key, original);
    const stranded = original.replace('username: gw', 'username: intruder');
    const previous = `${file}.previous`;
    const marker = join(dir, 'state', 'remote-config', 'probation.json');
    const sub = await t.subscriber({
      url: broker.url,
      topics: ['edge/gw/telemetry'],
      username: 'gw',
      password: 'secret',
    });
    // From the first write of the apply on, a few milliseconds apart: before the marker,
    // between marker and rename, or after the rename.
    for (const [round, delayMs] of [0, 3, 10].entries()) {
      const envelopeFile = join(dir, `envelope-${round}.json`);
      writeFileSync(envelopeFile, JSON.stringify(signed(key, 10 + round, stranded)));
      const agent = runTs(APPLY_PROCESS, [file, envelopeFile]);
      t.add(() => agent.kill());
      await agent.waitForLine(/^running$/);
      await waitUntil(() => existsSync(previous), {
        timeoutMs: 30_000,
        intervalMs: 1,
        what: 'the apply under way',
      });
      await sleep(delayMs);
      await agent.kill('SIGKILL');
      const text = readFileSync(file, 'utf8');
      expect(text === original || text === stranded, `round ${round}: a whole file`).toBe(true);

      const restarted = startAgent(['run', '--config', file]);
      t.add(async () => {
        restarted.kill('SIGKILL');
        await restarted.exited();
      });
      const seen = sub.on('/telemetry').length;
      await sub.waitFor((s) => s.on('/telemetry').length > seen, 30_000, 'telemetry again');
      restarted.kill('SIGTERM');
      expect((await restarted.exited()).code).toBe(0);
      expect(readFileSync(file, 'utf8'), `round ${round}`).toBe(original);
      expect(existsSync(marker), `round ${round}`).toBe(false);
      rmSync(previous);
    }
  });
});
