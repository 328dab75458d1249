/**
 * `edge-agent spool` on a running agent, through its control socket: the built CLI as an
 * operator runs it, an agent process (`simulate`) and a real mosquitto whose packet limit
 * refuses some batches for good. Faults are real: the broker's limit is lifted by restarting
 * it with a new configuration, the agent is SIGKILLed and leaves its socket behind.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../agent/ops/logger.js';
import { Spool } from '../../agent/publish/spool/spool.js';
import { windowBody } from '../agent/publish/bodies.js';
import { useTeardown } from '../helpers/teardown.js';
import { waitUntil } from '../helpers/wait.js';
import { CLI, startAgent, type AgentProcess } from './agent-process.js';

const t = useTeardown();

function cli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, STATE_DIRECTORY: '' },
  });
}

function statusOf(dir: string): Record<string, unknown> {
  const r = cli(['spool', 'status', '--state-dir', dir, '--json']);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** One window alone larger than the broker's 3000-byte packet limit: it cannot pass. */
function unsplittable(marker: string): Buffer {
  const body = JSON.parse(Buffer.from(windowBody(0)).toString()) as { windows: object[] };
  return Buffer.from(
    JSON.stringify({ windows: [{ ...body.windows[0], sensor: `${marker}-${'x'.repeat(4000)}` }] }),
  );
}

/** Lines sent on one connection to the control socket, and the answer lines it got. */
function converse(path: string, lines: string[], answers: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no ${answers} answers on ${path}: ${got}`));
    }, 20_000);
    socket.on('connect', () => socket.write(lines.join('')));
    socket.on('data', (d: Buffer) => {
      got += d.toString();
      const done = got.split('\n').filter((l) => l !== '');
      if (done.length >= answers) {
        clearTimeout(timer);
        socket.destroy();
        resolve(done);
      }
    });
    socket.on('error', reject);
  });
}

/**
 * Three I²C chips sampled fast with raw readings, 2 s windows: batches of over ten KiB,
 * which a broker speaking MQTT 3.1.1 with a 3000-byte limit closes on, so the agent learns
 * a limit well below their size.
 */
const CONFIG = `gateway: { id: gw }
mqtt: { url: "mqtt://127.0.0.1:1", protocolVersion: 4, reconnectMinMs: 100, reconnectMaxMs: 1000 }
batch: { raw: true }
sampling: { intervalMs: 50 }
sensors:
  - { id: boiler-flow, driver: tmp102, bus: 1, address: 0x48 }
  - { id: room-air, driver: sht3x, bus: 1, address: 0x44 }
  - { id: outside, driver: bme280, bus: 1, address: 0x76, quantities: [temperature, pressure, humidity] }
`;

function spawnAgent(dir: string, config: string, brokerUrl: string): AgentProcess {
  const agent = startAgent([
    'simulate',
    '--config',
    config,
    '--broker',
    brokerUrl,
    '--gateway',
    'gw',
    '--state-dir',
    dir,
    '--window',
    '2000',
  ]);
  t.add(async () => {
    agent.kill('SIGKILL');
    await agent.exited();
  });
  return agent;
}

describe('edge-agent spool on a running agent', () => {
  it('shows the dead letters the broker refused, requeues one (published under its own seq, learned limit forgotten), drops the other, answers a malformed request with an error, and survives its SIGKILLed socket', async () => {
    const broker = await t.mosquitto({ extraConfig: ['max_packet_size 3000'] });
    const dir = t.tempDir('edge-spool-live-');
    const config = join(dir, 'config.yaml');
    writeFileSync(config, CONFIG);
    // Two batches the broker will refuse for good, spooled before the agent starts.
    const seeded = Spool.open(dir, { maxBytes: 64 * 1024 * 1024, maxAgeSec: 3600 }, silentLogger);
    expect(await seeded.append(unsplittable('first'), Date.now())).toBe(1);
    expect(await seeded.append(unsplittable('second'), Date.now())).toBe(2);
    seeded.close();

    const socket = join(dir, 'control.sock');
    let agent = spawnAgent(dir, config, broker.url);
    await agent.waitForLog((l) => l.msg === 'pipeline running', 'the agent running');
    expect(existsSync(socket)).toBe(true);

    // The live agent refuses both for good and learns a limit from the closes on big batches.
    let live: Record<string, unknown> = {};
    await waitUntil(
      () => {
        live = statusOf(dir);
        const limits = live.learnedLimits as { telemetryBytes?: number } | undefined;
        return live.deadLetters === 2 && limits?.telemetryBytes !== undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'two dead letters and a learned limit' },
    );
    expect(live).toMatchObject({ path: join(dir, 'spool.sqlite'), setAside: 2, requeued: 0 });
    const learned = (live.learnedLimits as { telemetryBytes: number }).telemetryBytes;
    const text = cli(['spool', 'status', '--state-dir', dir]);
    expect(text.stdout).toMatch(/^dead letters +2, /m);
    expect(text.stdout).toMatch(/^learned limit +telemetry \d+ B/m);
    const list = cli(['spool', 'dead-letters', '--state-dir', dir, '--json']);
    expect(list.status, list.stderr).toBe(0);
    const rows = JSON.parse(list.stdout) as Array<{ seq: number; reason: string }>;
    expect(rows.map((r) => r.seq)).toEqual([1, 2]);
    expect(rows[0]!.reason).toMatch(/single window or reading/);

    // The operator raises the broker's limit (a restart with the new configuration).
    const conf = join(broker.dir, 'mosquitto.conf');
    writeFileSync(
      conf,
      readFileSync(conf, 'utf8').replace('max_packet_size 3000', 'max_packet_size 1000000'),
    );
    await broker.restart();
    const sub = await t.subscriber({ url: broker.url, topics: ['edge/gw/telemetry'] });

    const requeue = cli(['spool', 'requeue', '1', '--state-dir', dir]);
    expect(requeue.status, requeue.stderr).toBe(0);
    const requeued =
      /^requeued 1 dead letters \(seqs 1\): the running agent publishes them now under their own seqs; learned packet limits forgotten: telemetry (\d+) B/.exec(
        requeue.stdout,
      );
    expect(requeued, requeue.stdout).not.toBeNull();
    // The limit it had learned by then (it may have learned a lower one since the status).
    const forgotten = Number(requeued![1]);
    expect(forgotten).toBeLessThanOrEqual(learned);
    await sub.waitFor((s) => s.telemetrySeqs().includes(1), 30_000, 'the requeued seq 1');
    // The agent's log says what the operator did.
    await agent.waitForLog(
      (l) => l.msg === 'operator requeued 1 dead letters: published again under their own seqs',
      'the requeue logged',
    );
    expect(
      agent
        .logs()
        .find((l) => l.msg === 'learned packet limits forgotten: messages go at full size again'),
    ).toMatchObject({ forgotten: { telemetryBytes: forgotten } });
    const one = sub.on('/telemetry').find((m) => m.json?.seq === 1)!;
    expect(one.json).toMatchObject({ seq: 1, gateway: 'gw' });
    expect(one.json!.part).toBeUndefined();
    expect(one.payload.toString()).toContain('first-xxxx');
    // The limit is forgotten: a batch larger than it now goes whole.
    await sub.waitFor(
      (s) =>
        s
          .on('/telemetry')
          .some(
            (m) => m.json?.seq !== 1 && m.json?.part === undefined && m.payload.length > forgotten,
          ),
      30_000,
      `a whole batch larger than ${forgotten} bytes`,
    );

    const drop = cli(['spool', 'drop', '2', '--state-dir', dir]);
    expect(drop.status, drop.stderr).toBe(0);
    expect(drop.stdout).toBe('deleted 1 dead letters (seqs 2)\n');
    await agent.waitForLog(
      (l) => l.msg === 'operator deleted 1 dead letters' && l.seqs === '2',
      'the drop logged',
    );
    expect(statusOf(dir)).toMatchObject({
      deadLetters: 0,
      requeued: 1,
      discarded: 1,
      learnedLimits: {},
    });
    const again = cli(['spool', 'drop', '2', '--state-dir', dir]);
    expect(again.status).toBe(1);
    expect(again.stderr).toBe(
      'edge-agent spool: seq 2 is not a dead letter (dead letters: none); nothing changed\n',
    );

    // A malformed line is answered with an error; the agent goes on answering.
    const [bad, unknown] = await converse(
      socket,
      ['this is not json\n', '{"id":"u","name":"spool/frobnicate"}\n'],
      2,
    );
    expect(JSON.parse(bad!)).toMatchObject({ id: null, ok: false, error: { code: 'bad-request' } });
    expect(JSON.parse(unknown!)).toMatchObject({
      id: 'u',
      ok: false,
      error: { code: 'unknown-command' },
    });
    const [status] = await converse(socket, ['{"id":2,"name":"status"}\n'], 1);
    expect(JSON.parse(status!)).toMatchObject({ id: 2, ok: true, result: { gateway: 'gw' } });
    // One agent process all along: nothing above needed a restart.
    expect(agent.child.exitCode).toBeNull();
    expect(agent.logs().filter((l) => l.msg === 'pipeline running')).toHaveLength(1);

    // SIGKILL leaves the socket behind; the CLI then works on the file, and the next start
    // replaces the socket.
    agent.kill('SIGKILL');
    await agent.exited();
    expect(existsSync(socket)).toBe(true);
    const stopped = statusOf(dir);
    expect(stopped).toMatchObject({ deadLetters: 0, requeued: 1, discarded: 1 });
    expect(stopped.learnedLimits).toBeUndefined();
    agent = spawnAgent(dir, config, broker.url);
    await agent.waitForLog((l) => l.msg === 'pipeline running', 'the agent running again');
    expect(statusOf(dir)).toMatchObject({ requeued: 1, learnedLimits: {} });
    // A second agent on the same state directory stops at the spool's lock, saying so, and
    // leaves the running agent's socket alone.
    const second = spawnAgent(dir, config, broker.url);
    expect((await second.exited()).code).toBe(1);
    expect(second.stderr()).toContain(
      `the spool ${join(dir, 'spool.sqlite')} is in use by another process`,
    );
    expect(statusOf(dir)).toMatchObject({ requeued: 1, learnedLimits: {} });
    agent.kill('SIGTERM');
    expect((await agent.exited()).code).toBe(0);
    expect(existsSync(socket)).toBe(false);
  }, 180_000);
});
