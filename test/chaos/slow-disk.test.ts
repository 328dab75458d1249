/**
 * Chaos: an SD card that stalls on fsync. With strace attached to the running agent, every
 * fsync/fdatasync of every thread takes STALL_S seconds; the spool's commits wait in the
 * spool's worker thread, and the main thread must go on sampling and talking MQTT meanwhile.
 * Proof: health reports (built and published on the main thread) keep arriving while the
 * spool's commit count stands still, with the readings count rising; once strace lets go,
 * every batch of the stall arrives, none missing.
 *
 * Needs strace and ptrace (root here, as in CI); skipped with the reason otherwise.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../e2e/agent-process.js';
import { spawnMosquitto, type MosquittoBroker } from '../helpers/mosquitto.js';
import { missingSeqs, type TestSubscriber } from '../helpers/subscriber.js';
import { waitUntil } from '../helpers/wait.js';
import { useTeardown } from '../helpers/teardown.js';

/** Each delayed fsync takes this long: far longer than a health period. */
const STALL_S = 12;

function straceUnavailable(): string | undefined {
  const probe = spawnSync('strace', ['-f', '-qq', '-e', 'trace=none', 'true'], { stdio: 'pipe' });
  if (probe.error) return `strace is not installed (${probe.error.message})`;
  if (probe.status !== 0) return `strace cannot trace here: ${probe.stderr.toString().trim()}`;
  return undefined;
}
const skip = straceUnavailable();
if (skip) console.log(`skipping the slow-disk chaos test: ${skip}`);

const t = useTeardown();

let broker: MosquittoBroker;
beforeAll(async () => {
  if (skip) return;
  broker = await spawnMosquitto();
}, 30_000);
afterAll(async () => {
  await broker?.close();
});

interface Health {
  readings: number;
  spool: { commits: number; depth: number };
}

/** Attach strace to every thread of `pid`, delaying each fsync and fdatasync. */
async function stallFsyncs(pid: number): Promise<ChildProcess> {
  const strace = spawn(
    'strace',
    [
      '-f',
      '-p',
      String(pid),
      '-e',
      'trace=fsync,fdatasync',
      '-e',
      `inject=fsync,fdatasync:delay_exit=${STALL_S * 1_000_000}`,
      '-o',
      '/dev/null',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  strace.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  t.add(() => strace.kill('SIGKILL'));
  // strace says "Process N attached" for each thread on stderr.
  await waitUntil(() => /attached/.test(err) || strace.exitCode !== null, {
    what: 'strace to attach',
    timeoutMs: 20_000,
  });
  if (strace.exitCode !== null) throw new Error(`strace ended: ${err}`);
  return strace;
}

describe.skipIf(skip !== undefined)('chaos: a disk that stalls on fsync', () => {
  it('sampling and MQTT go on while a commit waits on the card; the stalled batches arrive after it', async () => {
    const dir = t.tempDir('slow-disk-');
    const config = join(dir, 'agent.yaml');
    writeFileSync(
      config,
      [
        'gateway: { id: stall }',
        "health: { schedule: '* * * * * *' }",
        'sensors:',
        '  - { id: t1, driver: tmp102, bus: 1, address: 0x48, intervalMs: 50 }',
      ].join('\n'),
    );
    const sub: TestSubscriber = await t.subscriber({
      url: broker.url,
      topics: ['edge/stall/telemetry', 'edge/stall/health'],
    });
    const agent: AgentProcess = startAgent([
      'simulate',
      '--config',
      config,
      '--broker',
      broker.url,
      '--state-dir',
      join(dir, 'state'),
      '--window',
      '200',
    ]);
    t.add(async () => {
      agent.kill('SIGKILL');
      await agent.exited();
    });
    await sub.waitFor((s) => s.telemetrySeqs().length >= 3, 30_000, 'the first batches');

    const strace = await stallFsyncs(agent.child.pid!);
    const reportsBefore = sub.on('/health').length;
    const healthSince = () =>
      sub
        .on('/health')
        .slice(reportsBefore)
        .map((m) => m.json as unknown as Health);
    // Four reports in a row during which no commit finished: the main thread ran on while the
    // spool's worker waited in fsync. With commits on the main thread, no report can be built
    // while an fsync blocks it, and every report between two stalls shows a new commit.
    const stalledRun = (reports: Health[]): Health[] | undefined => {
      for (let i = 0; i + 4 <= reports.length; i++) {
        const run = reports.slice(i, i + 4);
        if (run.every((r) => r.spool.commits === run[0].spool.commits)) return run;
      }
      return undefined;
    };
    await sub.waitFor(
      () => stalledRun(healthSince()) !== undefined,
      STALL_S * 1000 * 3,
      'four health reports while a commit waits in fsync',
    );
    const run = stalledRun(healthSince())!;
    const readings = run.map((r) => r.readings);
    expect(readings, 'readings keep being sampled during the stall').toEqual(
      [...readings].sort((a, b) => a - b),
    );
    expect(readings[3]).toBeGreaterThan(readings[0]);

    // The card recovers: every batch closed during the stall is published, none missing.
    const lastBefore = Math.max(...sub.telemetrySeqs());
    strace.kill('SIGTERM');
    await new Promise((resolve) => strace.once('exit', resolve));
    await sub.waitFor(
      (s) => Math.max(...s.telemetrySeqs()) > lastBefore + 10,
      60_000,
      'the batches of the stall and after it',
    );
    const seqs = sub.telemetrySeqs();
    expect(missingSeqs(seqs, Math.max(...seqs))).toEqual([]);
  });
});
