import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  EVENT_LOOP_CHECK,
  progressCheck,
  startWatchdog,
  type Watchdog,
} from '../../../agent/ops/watchdog.js';
import { capturingLogger } from '../../helpers/logger.js';
import { listenNotifySocket } from '../../helpers/notify-socket.js';
import { useTeardown } from '../../helpers/teardown.js';
import { waitUntil } from '../../helpers/wait.js';

const t = useTeardown();

describe('startWatchdog', () => {
  it('pings while every check passes and withholds pings while one fails, naming it', async () => {
    const log = capturingLogger();
    let workerAlive = true;
    let workerChecks = 0;
    let pings = 0;
    const w = startWatchdog({
      notifier: { watchdog: () => (pings++, true) },
      intervalMs: 60,
      maxLoopLagMs: 60_000, // this test is about the supplied checks, not loop lag
      checks: [
        { name: 'worker', healthy: () => (workerChecks++, workerAlive) },
        { name: 'sampling', healthy: () => true },
      ],
      logger: log.logger,
    });
    t.own(w, (x: Watchdog) => x.stop());
    await waitUntil(() => pings >= 3, { timeoutMs: 15_000 });

    workerAlive = false;
    await waitUntil(() => w.failing.includes('worker'), { timeoutMs: 15_000 });
    const frozen = pings;
    // Five more ticks, each of which ran the failing check, and not one ping.
    const checked = workerChecks;
    await waitUntil(() => workerChecks >= checked + 5, { timeoutMs: 15_000 });
    expect(pings).toBe(frozen);
    expect(w.failing).toEqual(['worker']);
    const warnings = log.records.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1); // logged on change, not every tick
    expect(String(warnings[0].msg)).toContain('worker');

    workerAlive = true;
    await waitUntil(() => pings >= frozen + 2, { timeoutMs: 15_000 });
    expect(w.failing).toEqual([]);
    expect(log.messages().some((m) => m.includes('pings resume'))).toBe(true);
  });

  it('counts a check that throws as failing', async () => {
    let pings = 0;
    let checks = 0;
    const w = startWatchdog({
      notifier: { watchdog: () => (pings++, true) },
      intervalMs: 40,
      maxLoopLagMs: 60_000,
      checks: [
        {
          name: 'spool',
          healthy: () => {
            checks++;
            throw new Error('database is locked');
          },
        },
      ],
    });
    t.own(w, (x: Watchdog) => x.stop());
    // Five ticks that ran the check: none pinged.
    await waitUntil(() => checks >= 5, { timeoutMs: 15_000 });
    expect(w.failing).toEqual(['spool']);
    expect(pings).toBe(0);
  });

  it('stops pinging while the event loop is blocked and resumes after', async () => {
    const log = capturingLogger();
    const events: string[] = [];
    const w = startWatchdog({
      notifier: { watchdog: () => (events.push('ping'), true) },
      intervalMs: 400,
      // The block (1000 ms) is far beyond this; ordinary scheduling noise on a busy CI is not.
      maxLoopLagMs: 400,
      // Records every tick, so a tick without a ping shows in the sequence.
      checks: [{ name: 'probe', healthy: () => (events.push('tick'), true) }],
      logger: log.logger,
    });
    t.own(w, (x: Watchdog) => x.stop());
    await waitUntil(() => events.filter((e) => e === 'ping').length >= 2, { timeoutMs: 15_000 });

    events.push('block-start');
    const blockedUntil = Date.now() + 1000;
    while (Date.now() < blockedUntil) {
      // busy loop of bounded length: the event loop is really blocked
    }
    events.push('block-end');
    const logsBefore = log.records.length;
    await waitUntil(
      () => events.slice(events.indexOf('block-end')).filter((e) => e === 'ping').length >= 2,
      { timeoutMs: 15_000 },
    );

    const after = events.slice(events.indexOf('block-end') + 1);
    // The late tick right after the block withheld its ping and said why.
    const warnedLoop = log.records
      .slice(logsBefore)
      .some(
        (l) => l.level === 40 && Array.isArray(l.failing) && l.failing.includes(EVENT_LOOP_CHECK),
      );
    expect(warnedLoop).toBe(true);
    // tick (late: no ping), tick, ping — never a ping straight after the block.
    expect(after.slice(0, 3)).toEqual(['tick', 'tick', 'ping']);
    expect(w.pings).toBe(events.filter((e) => e === 'ping').length);
  });

  it('rejects a non-positive interval', () => {
    expect(() =>
      startWatchdog({ notifier: { watchdog: () => true }, intervalMs: 0, checks: [] }),
    ).toThrow(RangeError);
  });
});

describe('watchdog through a real notify socket in a separate process', () => {
  it('systemd sees pings, a gap as long as the block, then pings again', async () => {
    const listener = t.own(listenNotifySocket());
    const fixture = fileURLToPath(new URL('./fixtures/blocking-agent.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
      env: { ...process.env, NOTIFY_SOCKET: listener.path, BLOCK_MS: '1500' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    );
    try {
      await waitUntil(() => listener.messages.some((m) => m.text === 'STOPPING=1'), {
        timeoutMs: 45_000,
        what: 'STOPPING=1',
      });
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    expect(stderr).toBe('');
    const texts = listener.messages.map((m) => m.text);
    const start = texts.indexOf('STATUS=block-start');
    const end = texts.indexOf('STATUS=block-end');
    expect(texts[0]).toBe('READY=1');
    expect(start).toBeGreaterThan(0);
    expect(end).toBe(start + 1); // nothing was sent while the loop was blocked
    expect(texts.slice(1, start)).toContain('WATCHDOG=1');
    expect(texts.slice(end + 1)).toContain('WATCHDOG=1');
    // As systemd sees it: no ping for at least as long as the block lasted. Timed where the
    // pings were sent: this process may read the datagrams late when the machine is busy.
    const times = texts.find((t) => t.startsWith('STATUS=times '));
    const { pings, blockStart, blockEnd } = JSON.parse(times!.slice('STATUS=times '.length)) as {
      pings: number[];
      blockStart: number;
      blockEnd: number;
    };
    expect(pings).toHaveLength(texts.filter((t) => t === 'WATCHDOG=1').length);
    const lastBefore = Math.max(...pings.filter((t) => t < blockStart));
    const firstAfter = Math.min(...pings.filter((t) => t > blockEnd));
    expect(pings.filter((t) => t >= blockStart && t <= blockEnd)).toEqual([]);
    expect(firstAfter - lastBefore).toBeGreaterThanOrEqual(1500);
  });
});

describe('progressCheck', () => {
  it('is healthy while the counter moves within staleMs, unhealthy when it stalls', () => {
    let clock = 0;
    let counter = 0;
    const check = progressCheck(
      'sampling',
      () => counter,
      1000,
      () => clock,
    );
    expect(check.name).toBe('sampling');
    expect(check.healthy()).toBe(true); // first look counts as progress
    clock = 900;
    expect(check.healthy()).toBe(true);
    clock = 1001;
    expect(check.healthy()).toBe(false); // no change for > 1000 ms
    counter = 5;
    expect(check.healthy()).toBe(true); // progress again
    clock = 1900;
    expect(check.healthy()).toBe(true);
    clock = 2100;
    expect(check.healthy()).toBe(false);
  });
});
