/**
 * A real nats-server with its MQTT listener (MQTT 3.1.1 only, no QoS 2) on ephemeral
 * 127.0.0.1 ports, with its own config and JetStream store in a temp dir (MQTT needs
 * JetStream). `natsServerPath()` is undefined where the binary is not installed: tests then
 * skip with a printed reason (.ci/run installs it).
 *
 *   const nats = await spawnNats();
 *   ... nats.mqttUrl ...
 *   await nats.close();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, portAccepts } from './ports.js';
import { waitUntil } from './wait.js';

const CANDIDATES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

export function natsServerPath(): string | undefined {
  for (const path of CANDIDATES) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface NatsServer {
  mqttPort: number;
  mqttUrl: string;
  log(): string;
  close(): Promise<void>;
}

export async function spawnNats(): Promise<NatsServer> {
  const binary = natsServerPath();
  if (!binary) throw new Error('nats-server is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'nats-'));
  const [port, mqttPort] = [await freePort(), await freePort()];
  const conf = join(dir, 'nats.conf');
  writeFileSync(
    conf,
    [
      `listen: 127.0.0.1:${port}`,
      `server_name: edge-agent-test-${port}`,
      `jetstream { store_dir: "${join(dir, 'js')}" }`,
      `mqtt { host: 127.0.0.1, port: ${mqttPort} }`,
    ].join('\n') + '\n',
  );
  let output = '';
  const child: ChildProcess = spawn(binary, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  await waitUntil(
    async () => {
      if (exited()) throw new Error(`nats-server exited (${String(child.exitCode)}):\n${output}`);
      return portAccepts(mqttPort);
    },
    { timeoutMs: 15_000, what: `nats-server MQTT on port ${mqttPort}` },
  );
  let closed = false;
  return {
    mqttPort,
    mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
    log: () => output,
    async close() {
      if (closed) return;
      closed = true;
      if (!exited()) {
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await gone;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
