/**
 * A real nats-server with its MQTT listener (MQTT 3.1.1 only, no QoS 2) on ephemeral
 * 127.0.0.1 ports, with its own config and JetStream store in a temp dir (MQTT needs
 * JetStream). `natsServerPath()` is undefined where the binary is not installed: tests then
 * skip with a printed reason (.ci/run installs it).
 *
 *   const nats = await spawnNats();
 *   ... nats.mqttUrl ...
 *   await nats.close();
 *
 * `spawnNatsCluster(3)`: three such servers in one cluster, MQTT streams on every node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, mqttConnects, portAccepts } from './ports.js';
import { sleep, waitUntil } from './wait.js';

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
  /** SIGTERM, then start again on the same ports with the same store dir (sessions kept). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** One nats-server process with its own config, store dir and output. */
interface NatsProcess {
  log(): string;
  running(): boolean;
  /** SIGKILL: no goodbye to the cluster, no flush; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (SIGKILL after 10 s); resolves once the process is gone. */
  stop(): Promise<void>;
}

function startProcess(binary: string, conf: string): NatsProcess {
  let output = '';
  const child: ChildProcess = spawn(binary, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const end = async (signal: NodeJS.Signals) => {
    if (exited()) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  };
  return {
    log: () => output,
    running: () => !exited(),
    kill: () => end('SIGKILL'),
    stop: () => end('SIGTERM'),
  };
}

async function waitForMqttPort(node: NatsProcess, mqttPort: number, timeoutMs: number) {
  await waitUntil(
    async () => {
      if (!node.running()) throw new Error(`nats-server exited:\n${node.log()}`);
      return portAccepts(mqttPort);
    },
    { timeoutMs, what: `nats-server MQTT on port ${mqttPort}` },
  );
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
  let node = startProcess(binary, conf);
  await waitForMqttPort(node, mqttPort, 15_000);
  let earlier = '';
  let closed = false;
  return {
    mqttPort,
    mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
    log: () => earlier + node.log(),
    async restart() {
      await node.stop();
      earlier += node.log();
      node = startProcess(binary, conf);
      await waitForMqttPort(node, mqttPort, 15_000);
    },
    async close() {
      if (closed) return;
      closed = true;
      await node.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface NatsClusterNode {
  /** server_name, e.g. n1. */
  name: string;
  mqttPort: number;
  mqttUrl: string;
  log(): string;
  running(): boolean;
  /** SIGKILL this node (the others keep the JetStream quorum). */
  kill(): Promise<void>;
}

export interface NatsCluster {
  nodes: NatsClusterNode[];
  /** The nodes' MQTT URLs, in node order (what mqtt.urls lists). */
  mqttUrls: string[];
  /** The node whose MQTT listener is on this port. */
  nodeByPort(port: number): NatsClusterNode | undefined;
  close(): Promise<void>;
}

/**
 * `size` nats-server processes in one cluster (`cluster { name, listen, routes }`, each node
 * routing to every node), each with its own config, JetStream store dir and `server_name`,
 * and an MQTT listener whose streams are replicated on every node (`stream_replicas`), so a
 * session survives the loss of one node. All ports are ephemeral on 127.0.0.1. Resolves once
 * every node's MQTT listener takes a connection (the JetStream cluster has a leader and the
 * MQTT streams exist).
 *
 * On a starved machine a fresh cluster's MQTT set-up can stall for good (a node never
 * answers CONNECT); such a cluster is torn down and a new one started, up to three times.
 */
export async function spawnNatsCluster(size: number): Promise<NatsCluster> {
  const ATTEMPTS = 3;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNatsCluster(size, 45_000);
    } catch (err) {
      if (attempt >= ATTEMPTS || !(err instanceof MqttSessionTimeout)) throw err;
      console.warn(`nats cluster not ready (attempt ${attempt}/${ATTEMPTS}): ${err.message}`);
    }
  }
}

/** A cluster whose node did not grant an MQTT session in time (retried by spawnNatsCluster). */
class MqttSessionTimeout extends Error {}

async function startNatsCluster(size: number, sessionTimeoutMs: number): Promise<NatsCluster> {
  const binary = natsServerPath();
  if (!binary) throw new Error('nats-server is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'nats-cluster-'));
  const ports: { client: number; route: number; mqtt: number }[] = [];
  for (let i = 0; i < size; i++) {
    ports.push({ client: await freePort(), route: await freePort(), mqtt: await freePort() });
  }
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p.route}`).join(', ');
  const nodes: (NatsClusterNode & { stop(): Promise<void> })[] = [];
  try {
    for (let i = 0; i < size; i++) {
      const name = `n${i + 1}`;
      const p = ports[i];
      const conf = join(dir, `${name}.conf`);
      writeFileSync(
        conf,
        [
          `listen: 127.0.0.1:${p.client}`,
          `server_name: ${name}`,
          `jetstream { store_dir: "${join(dir, name)}" }`,
          `cluster { name: edge-test, listen: 127.0.0.1:${p.route}, routes: [${routes}] }`,
          // A QoS 1 delivery lost while a node dies is sent again after ack_wait (30 s by
          // default): 5 s keeps a redelivery well inside the tests' waits on a busy machine.
          `mqtt { host: 127.0.0.1, port: ${p.mqtt}, stream_replicas: ${Math.min(size, 3)}, ack_wait: "5s" }`,
        ].join('\n') + '\n',
      );
      const node = startProcess(binary, conf);
      nodes.push({
        name,
        mqttPort: p.mqtt,
        mqttUrl: `mqtt://127.0.0.1:${p.mqtt}`,
        log: node.log,
        running: node.running,
        kill: node.kill,
        stop: node.stop,
      });
    }
    for (const node of nodes) await waitForMqttPort(node, node.mqttPort, 30_000);
    for (const node of nodes) await waitForMqttSession(node, sessionTimeoutMs);
  } catch (err) {
    for (const node of nodes) await node.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let closed = false;
  return {
    nodes,
    mqttUrls: nodes.map((n) => n.mqttUrl),
    nodeByPort: (port) => nodes.find((n) => n.mqttPort === port),
    async close() {
      if (closed) return;
      closed = true;
      for (const node of nodes) await node.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A node of a fresh cluster accepts TCP before its JetStream cluster has a leader; an MQTT
 * CONNECT (which needs the MQTT streams) is answered only then.
 */
async function waitForMqttSession(node: NatsClusterNode, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!node.running()) throw new Error(`nats-server ${node.name} exited:\n${node.log()}`);
    if (await mqttConnects(node.mqttUrl)) return;
    if (Date.now() >= deadline) {
      throw new MqttSessionTimeout(
        `no MQTT session on nats-server ${node.name} after ${timeoutMs} ms; its log ends:\n${node.log().slice(-2000)}`,
      );
    }
    await sleep(500);
  }
}
