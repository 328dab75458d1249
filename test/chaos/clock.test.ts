/**
 * Steps of the wall clock under the real agent process (`dist/agent/cli.js simulate`) and a
 * real mosquitto. The clock is libfaketime's: FAKETIME_TIMESTAMP_FILE is rewritten while
 * the agent runs (FAKETIME_NO_CACHE=1 makes every clock read see it at once). Only
 * CLOCK_REALTIME is faked (FAKETIME_DONT_FAKE_MONOTONIC=1), as with a real step by NTP or
 * `date -s`: the monotonic clock, and so every setTimeout, runs on.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, startAgent, type AgentProcess } from '../e2e/agent-process.js';
import { type MosquittoBroker } from '../helpers/mosquitto.js';
import { type TestSubscriber } from '../helpers/subscriber.js';
import { useTeardown } from '../helpers/teardown.js';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const skip = !existsSync(LIBFAKETIME)
  ? `${LIBFAKETIME} is missing (apt-get install libfaketime)`
  : !existsSync(CLI)
    ? `${CLI} is missing (npm run build)`
    : undefined;
if (skip) process.stdout.write(`chaos/clock tests skipped: ${skip}\n`);

const HOUR = 3_600_000;
const HEALTH_PERIOD_MS = 5000;

const t = useTeardown();

const tempDir = () => t.tempDir('chaos-clock-');
const broker = () => t.mosquitto({ persistence: true });

const subscriber = (b: MosquittoBroker, gw: string): Promise<TestSubscriber> =>
  t.subscriber({
    url: b.url,
    topics: [`edge/${gw}/telemetry`, `edge/${gw}/health`],
    clientId: `chaos-clock-${gw}-${process.pid}`,
    clean: false,
    qos: 1,
  });

/** The agent with 1 s windows and health every 5 s, on a clock the test steps. */
function agent(dir: string, b: MosquittoBroker, gw: string, clock: string): AgentProcess {
  const config = join(dir, 'clock.yaml');
  writeFileSync(
    config,
    [
      `gateway: { id: ${gw} }`,
      `health: { schedule: '*/${HEALTH_PERIOD_MS / 1000} * * * * *' }`,
      'mqtt: { reconnectMinMs: 200, reconnectMaxMs: 1000 }',
      'sensors:',
      '  - { id: t1, driver: tmp102, bus: 1, address: 0x48, intervalMs: 250 }',
      '  - { id: h1, driver: sht3x, bus: 1, address: 0x44, intervalMs: 250 }',
    ].join('\n'),
  );
  const a = startAgent(
    [
      'simulate',
      '--config',
      config,
      '--broker',
      b.url,
      '--state-dir',
      join(dir, 'state'),
      '--window',
      '1000',
    ],
    {
      LD_PRELOAD: LIBFAKETIME,
      FAKETIME_TIMESTAMP_FILE: clock,
      FAKETIME_NO_CACHE: '1',
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    },
  );
  t.add(async () => {
    a.kill('SIGKILL');
    await a.exited();
  });
  return a;
}

interface Window {
  sensor: string;
  quantity: string;
  start: number;
  clockStep?: boolean;
}

const telemetry = (s: TestSubscriber) =>
  s.on('/telemetry').map((m) => m.json as { seq: number; createdAt: number; windows: Window[] });
const healthCount = (s: TestSubscriber) => s.on('/health').length;

/** Windows (sensor, quantity, start) that arrived in two seqs with different content. */
function twice(s: TestSubscriber): string[] {
  const seen = new Map<string, { seq: number; json: string }>();
  const bad = new Set<string>();
  for (const batch of telemetry(s)) {
    for (const w of batch.windows) {
      const key = `${w.sensor}/${w.quantity}/${w.start}`;
      const json = JSON.stringify(w);
      const before = seen.get(key);
      if (before && before.seq !== batch.seq && before.json !== json) bad.add(key);
      seen.set(key, { seq: batch.seq, json });
    }
  }
  return [...bad];
}

/** Each of the next `n` health reports within two periods of the one before (plus slack). */
async function healthKeepsComing(s: TestSubscriber, n: number, what: string): Promise<void> {
  for (let i = 1; i <= n; i++) {
    const before = healthCount(s);
    await s.waitFor((x) => healthCount(x) > before, 2 * HEALTH_PERIOD_MS + 2000, `${what} #${i}`);
  }
}

describe.skipIf(skip !== undefined)('chaos: the wall clock steps under the real agent', () => {
  it('an hour back and forward again: no window twice, health keeps its period', async () => {
    const dir = tempDir();
    const clock = join(dir, 'faketime');
    writeFileSync(clock, '+0\n');
    const b = await broker();
    const gw = 'clock-steps';
    const s = await subscriber(b, gw);
    agent(dir, b, gw, clock);
    await s.waitFor((x) => telemetry(x).length >= 3 && healthCount(x) >= 1, 30_000, 'a start');

    // An hour back. Marker: a batch spooled by the stepped clock.
    writeFileSync(clock, '-3600\n');
    const stepBack = Date.now() - HOUR;
    await s.waitFor(
      (x) => telemetry(x).some((t) => t.createdAt < stepBack + 60_000),
      15_000,
      'a batch after the step back',
    );
    await healthKeepsComing(s, 3, 'health after the step back');

    // Forward again. Marker: a batch spooled after it.
    writeFileSync(clock, '+0\n');
    const stepForward = Date.now();
    await s.waitFor(
      (x) => telemetry(x).some((t) => t.createdAt >= stepForward),
      15_000,
      'a batch after the step forward',
    );
    await healthKeepsComing(s, 3, 'health after the step forward');

    expect(twice(s), 'windows published twice with different content').toEqual([]);
    // Window times never went back; the steps are marked.
    const windows = telemetry(s)
      .sort((x, y) => x.seq - y.seq)
      .flatMap((t) => t.windows);
    for (const series of ['t1/temperature', 'h1/humidity']) {
      const starts = windows
        .filter((w) => `${w.sensor}/${w.quantity}` === series)
        .map((w) => w.start);
      expect(starts.length).toBeGreaterThan(20);
      expect(starts.every((t, i) => i === 0 || t > starts[i - 1])).toBe(true);
    }
    expect(windows.some((w) => w.clockStep === true)).toBe(true);
  }, 85_000);

  it('started in 2020 with the broker down, then stepped to now: the backlog is delivered, not dropped', async () => {
    const dir = tempDir();
    const clock = join(dir, 'faketime');
    writeFileSync(clock, '@2020-01-01 00:00:00\n');
    const b = await broker();
    const gw = 'clock-ntp';
    const s = await subscriber(b, gw);
    await b.stop();
    const a = agent(dir, b, gw, clock);
    // A backlog of 2020 batches while the broker is down (the publisher's retry lines count it).
    const backlog = (l: Record<string, unknown>) => (typeof l.backlog === 'number' ? l.backlog : 0);
    await a.waitForLog((l) => backlog(l) >= 5, 'a 2020 backlog of 5 batches');
    // NTP. Marker: the agent logs 3 s past the step, so batches were spooled after it (each
    // append enforces the spool's bounds).
    writeFileSync(clock, '+0\n');
    const stepped = Date.now() - 60_000;
    const after = Date.now() + 3000;
    await a.waitForLog(
      (l) => typeof l.time === 'number' && l.time >= after && backlog(l) > 0,
      'a retry line 3 s after NTP',
    );
    await b.restart();
    await s.waitFor(
      (x) => telemetry(x).some((t) => t.createdAt >= stepped),
      30_000,
      'the backlog and a batch after NTP',
    );
    const batches = telemetry(s).sort((x, y) => x.seq - y.seq);
    expect(batches[0].seq).toBe(1);
    expect(batches[0].createdAt).toBeLessThan(Date.UTC(2021, 0, 1));
    const seqs = [...new Set(batches.map((t) => t.seq))];
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(s.on('/telemetry').filter((m) => m.json?.dropped !== undefined)).toEqual([]);
  }, 85_000);
});
