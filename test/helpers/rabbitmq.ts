/**
 * A RabbitMQ node of its own with the `rabbitmq_mqtt` plugin (Debian's rabbitmq-server), on
 * ephemeral 127.0.0.1 ports: its own node name, AMQP, distribution, epmd and MQTT ports, its
 * own config, plugins file, Mnesia and log dirs and a fresh Erlang cookie in a temp dir. It
 * neither needs nor touches a system RabbitMQ (which may run on 5672 with its own epmd).
 *
 *   const reason = rabbitmqMissing();          // undefined where it is installed
 *   const rabbit = await spawnRabbitMq();      // throws RabbitMqUnavailable: skip with its message
 *   ... rabbit.mqttUrl ...
 *   await rabbit.close();
 *
 * A node takes seconds to start: start one per test file.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, mqttConnects, portAccepts } from './ports.js';
import { sleep } from './wait.js';

/** Debian's scripts; /usr/sbin/rabbitmq-server would switch to the rabbitmq user. */
const BIN = '/usr/lib/rabbitmq/bin';
const SERVER = join(BIN, 'rabbitmq-server');
const CTL = join(BIN, 'rabbitmqctl');
/** How long a node may take to start on a loaded machine before the test gives up. */
const START_MS = 120_000;

/** The node could not start here (no Erlang, epmd refused, …): skip, printing the message. */
export class RabbitMqUnavailable extends Error {}

/** Why no RabbitMQ node can be started here, or undefined when the pieces are installed. */
export function rabbitmqMissing(): string | undefined {
  if (!executable(SERVER) || !executable(CTL)) {
    return 'rabbitmq-server is not installed (.ci/run installs it)';
  }
  if (!onPath('erl')) return 'Erlang (erl) is missing';
  const lib = '/usr/lib/rabbitmq/lib';
  const plugins = readdirSync(lib).flatMap((d) => {
    const dir = join(lib, d, 'plugins');
    return existsSync(dir) ? readdirSync(dir) : [];
  });
  if (!plugins.some((p) => p.startsWith('rabbitmq_mqtt-'))) {
    return 'the rabbitmq_mqtt plugin is missing';
  }
  return undefined;
}

export interface RabbitMq {
  mqttPort: number;
  mqttUrl: string;
  /** RabbitMQ's version, e.g. 3.10.8. */
  version: string;
  /** The node's log file and what its scripts printed. */
  log(): string;
  /**
   * `rabbitmqctl stop_app` then `start_app`: every listener closes and RabbitMQ itself
   * restarts in the same Erlang VM; durable queues (persistent MQTT sessions) and retained
   * messages are kept. Resolves once MQTT answers again.
   */
  restart(): Promise<void>;
  /** Stop the node and its epmd, and delete the temp dir. Safe to call twice. */
  close(): Promise<void>;
}

export async function spawnRabbitMq(): Promise<RabbitMq> {
  const missing = rabbitmqMissing();
  if (missing) throw new RabbitMqUnavailable(missing);
  const dir = mkdtempSync(join(tmpdir(), 'rabbitmq-'));
  const [amqpPort, distPort, epmdPort, mqttPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const node = `edgetest${mqttPort}@localhost`;
  const loopbackDist = '-kernel inet_dist_use_interface {127,0,0,1}';
  // A fresh cookie: rabbitmqctl and the node read $HOME/.erlang.cookie.
  writeFileSync(join(dir, '.erlang.cookie'), randomBytes(20).toString('hex').toUpperCase(), {
    mode: 0o400,
  });
  // Empty: the system's /etc/rabbitmq/rabbitmq-env.conf would set its node name.
  writeFileSync(join(dir, 'rabbitmq-env.conf'), '');
  writeFileSync(join(dir, 'enabled_plugins'), '[rabbitmq_mqtt].\n');
  mkdirSync(join(dir, 'conf.d'));
  writeFileSync(
    join(dir, 'rabbitmq.conf'),
    [
      `listeners.tcp.default = 127.0.0.1:${amqpPort}`,
      `mqtt.listeners.tcp.default = 127.0.0.1:${mqttPort}`,
      'mqtt.allow_anonymous = true',
      // A test machine's disk may be fuller than RabbitMQ's default alarm allows.
      'disk_free_limit.absolute = 1MB',
      'log.console = false',
      'log.file.level = info',
    ].join('\n') + '\n',
  );
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    LANG: 'C.UTF-8',
    HOME: dir,
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(amqpPort),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_CONFIG_FILES: join(dir, 'conf.d'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: loopbackDist,
    RABBITMQ_CTL_ERL_ARGS: loopbackDist,
    // Its own epmd (started by the node), not the system's on 4369.
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: '127.0.0.1',
  };
  let output = '';
  const child: ChildProcess = spawn(SERVER, [], {
    env,
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  child.on('error', (err) => (output += `spawn: ${err.message}\n`));
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const log = () => {
    const file = join(dir, 'log', `${node}.log`);
    return `${output}${existsSync(file) ? readFileSync(file, 'utf8') : ''}`;
  };
  const ctl = (...args: string[]) => runCtl(env, node, args);
  const mqttUrl = `mqtt://127.0.0.1:${mqttPort}`;

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    if (!exited()) {
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      // The script traps SIGTERM and stops the node (rabbitmqctl stop would too).
      child.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(child), 30_000);
      await gone;
      clearTimeout(timer);
    }
    await new Promise<void>((r) =>
      execFile('epmd', ['-port', String(epmdPort), '-kill'], { env }, () => r()),
    );
    rmSync(dir, { recursive: true, force: true });
  };

  const ready = async (what: string) => {
    const deadline = Date.now() + START_MS;
    for (;;) {
      if (exited()) {
        throw new RabbitMqUnavailable(`RabbitMQ node exited while ${what}:\n${tail(log())}`);
      }
      if ((await portAccepts(mqttPort)) && (await mqttConnects(mqttUrl))) return;
      if (Date.now() >= deadline) {
        throw new Error(
          `RabbitMQ MQTT not answering ${START_MS} ms after ${what}:\n${tail(log())}`,
        );
      }
      await sleep(250);
    }
  };
  try {
    await ready('starting');
  } catch (err) {
    await close();
    throw err;
  }
  const version = await ctl('version').catch(() => 'unknown');
  return {
    mqttPort,
    mqttUrl,
    version: version.trim(),
    log,
    async restart() {
      await ctl('stop_app');
      await ctl('start_app');
      await ready('start_app');
    },
    close,
  };
}

function runCtl(env: NodeJS.ProcessEnv, node: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(CTL, ['-n', node, ...args], { env, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`rabbitmqctl ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d !== '' && executable(join(d, command)));
}

const tail = (text: string) => text.slice(-3000);
