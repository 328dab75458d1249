/**
 * `edge-agent run` as systemd runs it: NOTIFY_SOCKET, WATCHDOG_USEC and STATE_DIRECTORY set,
 * a real notify socket owned by the test standing in for systemd, a network sensor served on
 * loopback and the broker unreachable. The service contract: READY=1 arrives (also with the
 * broker down — the spool holds the data), STATUS= is kept, WATCHDOG=1 keeps coming while
 * healthy, and SIGTERM gives STOPPING=1 and exit 0 within the unit's TimeoutStopSec.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_DRAIN_MS } from '../../agent/pipeline.js';
import { GOODBYE_MS } from '../../agent/publish/broker-session.js';
import { listenNotifySocket } from '../helpers/notify-socket.js';
import { useTeardown } from '../helpers/teardown.js';
import { waitUntil } from '../helpers/wait.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const unit = readFileSync(join(REPO, 'systemd/edge-agent.service'), 'utf8');
const timeoutStopSec = Number(/^TimeoutStopSec=(\d+)s?$/m.exec(unit)?.[1]);
const CLI = join(REPO, 'dist/agent/cli.js');
const built = existsSync(CLI);
if (!built)
  console.warn('dist/agent/cli.js missing: skipping the service run test (npm run build)');

const teardown = useTeardown();

async function listen(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

describe.skipIf(!built)('edge-agent run under a stand-in systemd', () => {
  it('notifies READY, STATUS and WATCHDOG, and stops on SIGTERM within TimeoutStopSec', async () => {
    expect(timeoutStopSec).toBeGreaterThan(0);
    const listener = teardown.own(listenNotifySocket());
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ data: { temperature: 21.5 } }));
    });
    teardown.add(() => new Promise<void>((r) => server.close(() => r())));
    const sensorPort = await listen(server);
    // A port nobody listens on: the broker is down.
    const closed = createServer();
    const brokerPort = await listen(closed);
    await new Promise<void>((r) => closed.close(() => r()));

    const dir = teardown.tempDir('edge-service-');
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [
        'gateway: { id: svc-test }',
        `mqtt: { url: 'mqtt://127.0.0.1:${brokerPort}', reconnectMinMs: 200, reconnectMaxMs: 1000 }`,
        'aggregation: { windowMs: 1000 }',
        'sensors:',
        `  - { id: lab, driver: http-json, url: 'http://127.0.0.1:${sensorPort}/', path: data.temperature, intervalMs: 200 }`,
        '',
      ].join('\n'),
    );
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NOTIFY_SOCKET: listener.path,
      WATCHDOG_USEC: '2000000',
      STATE_DIRECTORY: join(dir, 'state'),
      NO_COLOR: '1',
    };
    delete env.WATCHDOG_PID;
    // The built CLI, as the unit's ExecStart runs it (npm test builds it first).
    const proc = spawn(process.execPath, [CLI, 'run', '--config', config], {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    teardown.add(() => proc.kill('SIGKILL'));
    let output = '';
    proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    let exitCode: number | null | undefined;
    void exited.then((c) => (exitCode = c));

    const texts = () => listener.messages.map((m) => m.text);
    const ready = () => texts().findIndex((t) => t.split('\n').includes('READY=1'));
    await waitUntil(() => ready() >= 0 || exitCode !== undefined, {
      timeoutMs: 45_000,
      what: `READY=1\n${output}`,
    });
    expect(exitCode, output).toBeUndefined();
    // Pings every WATCHDOG_USEC/2 = 1 s while healthy.
    await waitUntil(
      () =>
        texts()
          .slice(ready())
          .filter((t) => t === 'WATCHDOG=1').length >= 2,
      { timeoutMs: 20_000, what: `two WATCHDOG=1 after READY\n${output}` },
    );
    expect(texts().some((t) => t.startsWith('STATUS='))).toBe(true);

    proc.kill('SIGTERM');
    const code = await Promise.race([
      exited,
      new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), (timeoutStopSec + 10) * 1000)),
    ]);
    expect(code, output).toBe(0);
    // Within TimeoutStopSec whatever the machine's load: with the broker down the stop waits
    // for the drain bound, then gives up (the batches stay in the spool); that bound and the
    // goodbye's, kept by the agent's own clock, fit in the unit's TimeoutStopSec.
    expect(output).toContain('publisher stopped; unsent batches stay in the spool');
    expect(DEFAULT_DRAIN_MS + GOODBYE_MS).toBeLessThan(timeoutStopSec * 1000);
    const stopping = texts().findIndex((t) => t.split('\n').includes('STOPPING=1'));
    expect(stopping).toBeGreaterThan(ready());
  });
});
