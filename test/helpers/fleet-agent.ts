/**
 * A built agent that answers operator commands over MQTT (fleet.enabled), and the operator's
 * `edge-agent remote` against it: what the fleet end-to-end tests share. The agent is ready
 * once it answers `status`: the positive marker that its command subscription is in place.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, startAgent, type AgentProcess } from '../e2e/agent-process.js';
import type { Teardown } from './teardown.js';
import { waitUntil } from './wait.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The built CLI (`npm run build` first) run to its exit, killed after `timeoutMs`. The
 * operator's password variable is cleared unless `env` sets it, so the machine's own never
 * reaches a test.
 */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 60_000,
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, EDGE_AGENT_MQTT_PASSWORD: '', NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Who the operator is and how `edge-agent remote` reaches the gateways. */
export interface Operator {
  broker: string;
  /** One id, or several joined by commas. */
  gateway: string;
  username?: string;
  /** Given as $EDGE_AGENT_MQTT_PASSWORD. */
  password?: string;
  passwordFile?: string;
  protocol?: 4 | 5;
}

/** `edge-agent remote --broker … --gateway … [--username …] …` with the words given. */
export function remoteCli(o: Operator): (...words: string[]) => Promise<CliResult> {
  const args = [
    'remote',
    '--broker',
    o.broker,
    '--gateway',
    o.gateway,
    ...(o.username !== undefined ? ['--username', o.username] : []),
    ...(o.passwordFile !== undefined ? ['--password-file', o.passwordFile] : []),
    ...(o.protocol !== undefined ? ['--protocol', String(o.protocol)] : []),
  ];
  const env = o.password !== undefined ? { EDGE_AGENT_MQTT_PASSWORD: o.password } : {};
  return (...words) => runCli([...args, ...words], env);
}

/**
 * Waits until the gateway answers `status` within 2 s, for at most `timeoutMs`; fails at once,
 * with its output, when `agent` exits first.
 */
export async function waitForAnswer(
  operator: Operator,
  agent?: AgentProcess,
  timeoutMs = 60_000,
): Promise<void> {
  const remote = remoteCli(operator);
  await waitUntil(
    async () => {
      if (agent && agent.child.exitCode !== null) {
        throw new Error(
          `agent exited (${agent.child.exitCode}) before answering:\n${agent.stdout()}\n${agent.stderr()}`,
        );
      }
      return (await remote('--timeout', '2', 'status')).code === 0;
    },
    { timeoutMs, intervalMs: 200, what: `${operator.gateway} answering status` },
  );
}

export interface FleetAgentOptions {
  /** The operator the readiness probe is (its broker is the agent's too, for `simulate`). */
  operator: Operator;
  /** Where config.yaml is written and, for `simulate`, the state directory `state` made. */
  dir: string;
  /** config.yaml's text, or its lines; it sets fleet.enabled. */
  config: string | string[];
  /**
   * `simulate` (default: --config, --broker, --state-dir given, then `args`) or `run` (the
   * service: the config names its broker and spool dir).
   */
  command?: 'simulate' | 'run';
  /** More arguments after those (e.g. --homeassistant). */
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

export interface FleetAgent {
  agent: AgentProcess;
  configFile: string;
}

/**
 * Writes the config, starts the built agent, and waits until it answers `status`. At
 * teardown (`t`) the agent is sent SIGTERM and awaited.
 */
export async function startFleetAgent(t: Teardown, o: FleetAgentOptions): Promise<FleetAgent> {
  mkdirSync(o.dir, { recursive: true });
  const configFile = join(o.dir, 'config.yaml');
  writeFileSync(configFile, typeof o.config === 'string' ? o.config : o.config.join('\n') + '\n');
  const args =
    (o.command ?? 'simulate') === 'run'
      ? ['run', '--config', configFile]
      : [
          'simulate',
          '--config',
          configFile,
          '--broker',
          o.operator.broker,
          '--state-dir',
          join(o.dir, 'state'),
        ];
  const agent = startAgent([...args, ...(o.args ?? [])], o.env);
  t.add(async () => {
    agent.kill('SIGTERM');
    await agent.exited();
  });
  await waitForAnswer(o.operator, agent);
  return { agent, configFile };
}

/**
 * The mosquitto ACL lines of docs/operations.md (Running a fleet, The broker's ACL), as
 * documented: gateway user `gw`, operator user `operator`. Tests run their brokers on these,
 * so the documented lines are the ones that work.
 */
export function documentedFleetAcl(): string[] {
  const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
  const block = /### The broker's ACL[\s\S]*?```\n([\s\S]*?)```/.exec(doc);
  if (!block) throw new Error("docs/operations.md: no ACL block under ### The broker's ACL");
  return block[1]!.split('\n').filter((l) => l.trim() !== '');
}
