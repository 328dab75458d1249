import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { SystemdNotifier, type DatagramSocket } from '../../../agent/ops/sd-notify.js';
import { capturingLogger } from '../../helpers/logger.js';
import { listenNotifySocket, type NotifyListener } from '../../helpers/notify-socket.js';

let listener: NotifyListener | undefined;
afterEach(() => {
  listener?.close();
  listener = undefined;
});

describe('SystemdNotifier against a real unix datagram socket', () => {
  it('sends READY, STATUS, WATCHDOG and STOPPING as systemd expects them', async () => {
    listener = listenNotifySocket();
    const notifier = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: listener.path });
    expect(notifier.enabled).toBe(true);
    expect(notifier.ready('3 sensors, broker connected')).toBe(true);
    expect(notifier.status('12 readings/s, spool 0')).toBe(true);
    expect(notifier.watchdog()).toBe(true);
    expect(notifier.stopping()).toBe(true);
    const got = await listener.waitFor(4);
    expect(got).toEqual([
      'READY=1\nSTATUS=3 sensors, broker connected',
      'STATUS=12 readings/s, spool 0',
      'WATCHDOG=1',
      'STOPPING=1',
    ]);
  });

  it('keeps STATUS to one line and does not resend an unchanged one', async () => {
    listener = listenNotifySocket();
    const notifier = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: listener.path });
    notifier.status('spool 3\nbroker down');
    notifier.status('spool 3\nbroker down');
    notifier.status('spool 0');
    notifier.watchdog(); // a marker after the statuses
    const got = await listener.waitFor(3);
    expect(got).toEqual(['STATUS=spool 3 broker down', 'STATUS=spool 0', 'WATCHDOG=1']);
  });

  it('sends RELOADING=1 with the current CLOCK_MONOTONIC in µs', async () => {
    listener = listenNotifySocket();
    const notifier = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: listener.path });
    const before = process.hrtime.bigint() / 1000n;
    notifier.reloading();
    const after = process.hrtime.bigint() / 1000n;
    const [msg] = await listener.waitFor(1);
    const fields = Object.fromEntries(msg.split('\n').map((l) => l.split('=')));
    expect(fields.RELOADING).toBe('1');
    const usec = BigInt(fields.MONOTONIC_USEC);
    expect(usec >= before && usec <= after).toBe(true);
  });

  it('asks for more stop/start time with EXTEND_TIMEOUT_USEC', async () => {
    listener = listenNotifySocket();
    SystemdNotifier.fromEnv({ NOTIFY_SOCKET: listener.path }).extendTimeout(12_500);
    expect(await listener.waitFor(1)).toEqual(['EXTEND_TIMEOUT_USEC=12500000']);
  });

  it('is a no-op when NOTIFY_SOCKET is unset', async () => {
    listener = listenNotifySocket();
    const notifier = SystemdNotifier.fromEnv({});
    expect(notifier.enabled).toBe(false);
    expect(notifier.ready()).toBe(false);
    expect(notifier.watchdog()).toBe(false);
    // The same listener receives a message from an enabled notifier, so silence above is real.
    SystemdNotifier.fromEnv({ NOTIFY_SOCKET: listener.path }).status('marker');
    expect(await listener.waitFor(1)).toEqual(['STATUS=marker']);
  });

  it('stops sending after close()', async () => {
    listener = listenNotifySocket();
    const notifier = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: listener.path });
    notifier.close();
    expect(notifier.watchdog()).toBe(false);
    SystemdNotifier.fromEnv({ NOTIFY_SOCKET: listener.path }).status('marker');
    expect(await listener.waitFor(1)).toEqual(['STATUS=marker']);
  });

  it('reports a missing socket once and keeps going', () => {
    const log = capturingLogger();
    const notifier = SystemdNotifier.fromEnv(
      { NOTIFY_SOCKET: '/nonexistent-edge-agent-dir/notify' },
      log.logger,
    );
    expect(notifier.ready()).toBe(false);
    expect(notifier.watchdog()).toBe(false);
    expect(notifier.watchdog()).toBe(false);
    const warnings = log.records.filter((l) => String(l.msg).startsWith('sd_notify failed'));
    expect(warnings).toHaveLength(1);
  });

  it('disables itself with a warning for an abstract socket it cannot address', () => {
    const log = capturingLogger();
    let opened = 0;
    const notifier = SystemdNotifier.fromEnv(
      { NOTIFY_SOCKET: '@/org/test/notify' },
      log.logger,
      () => {
        opened++;
        throw new Error('must not open a socket');
      },
    );
    expect(notifier.enabled).toBe(false);
    expect(notifier.ready()).toBe(false);
    expect(opened).toBe(0);
    expect(log.messages().some((m) => m.includes('not a filesystem path'))).toBe(true);
  });

  it('closes the socket it opened even when the send fails', () => {
    let closes = 0;
    const failing: DatagramSocket = {
      send(_b, _o, _l, _p, cb) {
        cb(Object.assign(new Error('send -11'), { code: 'EAGAIN' }));
      },
      on() {
        return this;
      },
      close() {
        closes++;
      },
    };
    const notifier = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: '/run/x' }, undefined, () => failing);
    expect(notifier.watchdog()).toBe(false);
    expect(closes).toBe(1);
  });
});

describe('watchdogIntervalMs', () => {
  it('reads WATCHDOG_USEC', () => {
    expect(SystemdNotifier.fromEnv({ WATCHDOG_USEC: '30000000' }).watchdogIntervalMs()).toBe(
      30_000,
    );
  });
  it('honours WATCHDOG_PID: ours applies, another process’s does not', () => {
    const ours = { WATCHDOG_USEC: '2000000', WATCHDOG_PID: String(process.pid) };
    expect(SystemdNotifier.fromEnv(ours).watchdogIntervalMs()).toBe(2000);
    const theirs = { WATCHDOG_USEC: '2000000', WATCHDOG_PID: String(process.pid + 1) };
    expect(SystemdNotifier.fromEnv(theirs).watchdogIntervalMs()).toBeUndefined();
  });
  it('ignores missing, zero and malformed values', () => {
    for (const v of [undefined, '', '0', '-5', 'abc', '1.5']) {
      expect(SystemdNotifier.fromEnv({ WATCHDOG_USEC: v }).watchdogIntervalMs()).toBeUndefined();
    }
  });
});

describe('sender identity as systemd sees it', () => {
  it('messages carry this process’s PID (what NotifyAccess=main requires)', async () => {
    const py = spawnSync('python3', ['-c', 'import socket; socket.SCM_CREDENTIALS'], {
      encoding: 'utf8',
    });
    if (py.status !== 0) {
      console.warn('python3 with SCM_CREDENTIALS not available: skipping the PID check');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'edge-notify-py-'));
    const path = join(dir, 'notify');
    const script = fileURLToPath(new URL('./fixtures/notify-listener.py', import.meta.url));
    const child = spawn('python3', [script, path, '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const lines: string[] = [];
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const rl = createInterface({ input: child.stdout });
      rl.on('line', (l) => lines.push(l));
      const done = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      const deadline = Date.now() + 15_000;
      while (!lines.includes('listening')) {
        if (Date.now() > deadline) throw new Error(`listener did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      const notifier = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: path });
      notifier.ready();
      notifier.watchdog();
      expect(await done).toBe(0);
      const received = lines
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { pid: number; text: string });
      expect(received).toEqual([
        { pid: process.pid, text: 'READY=1' },
        { pid: process.pid, text: 'WATCHDOG=1' },
      ]);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
