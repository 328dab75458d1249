/**
 * `edge-agent remote --broker URL --gateway ID[,ID…] <command> [args]`: a command to each
 * gateway over MQTT (fleet.enabled on the gateways; docs/operations.md, Running a fleet),
 * each gateway's answer printed as it arrives, exit 1 when any refused, failed or did not answer
 * in time.
 *
 * The password comes from --password-file or $EDGE_AGENT_MQTT_PASSWORD, never from the
 * command line (where `ps` and shell history would show it).
 */
import { readFileSync } from 'node:fs';
import { NAME_PATTERN } from '../../drivers/config/sensor-keys.js';
import type { AnswerMessage } from '../fleet/command-protocol.js';
import { sendCommand, type GatewayOutcome } from '../fleet/remote-client.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  numberOption,
  stringOption,
  UsageError,
  type CommandOutput,
  type OptionValues,
} from './common.js';

export const PASSWORD_ENV = 'EDGE_AGENT_MQTT_PASSWORD';
const DEFAULT_TIMEOUT_SEC = 10;

/** A request as the agent's CommandSet takes it. */
export interface RemoteRequest {
  name: string;
  args: Record<string, unknown>;
}

/**
 * The remote commands: words on the command line → a request. `config push` (signed remote
 * configuration) is remote-config-push.ts: one signature per gateway, and its outcome watched.
 */
const REMOTE_COMMANDS: Record<string, (words: string[], values: OptionValues) => RemoteRequest> = {
  status: (w) => noArgs('status', w),
  reload: (w) => noArgs('reload', w),
  announce: (w) => noArgs('announce', w),
  config: (w) => {
    const [sub, ...rest] = w;
    if (sub === 'get') return noArgs('config/get', rest);
    throw new UsageError(
      `config: expected "config get" or "config push FILE --key KEY", got ${JSON.stringify(w.join(' '))}`,
    );
  },
  read: (w) => {
    if (w.length !== 1) throw new UsageError('read takes one sensor id: read SENSOR');
    return { name: 'read', args: { sensor: w[0] } };
  },
  // The agent's spool commands are `spool/<action>` (agent/control/spool-commands.ts).
  spool: (w, v) => {
    const [action = 'status', ...rest] = w;
    const seqs = rest.map((s) => {
      const n = Number(s);
      if (!Number.isSafeInteger(n) || n < 1) {
        throw new UsageError(`spool ${action}: a seq is a positive whole number, got "${s}"`);
      }
      return n;
    });
    return {
      name: `spool/${action}`,
      args: {
        ...(seqs.length > 0 ? { seqs } : {}),
        ...(v.all === true ? { all: true } : {}),
      },
    };
  },
  call: (w) => {
    const [name, json] = w;
    if (name === undefined || w.length > 2) {
      throw new UsageError('call takes a command name and optionally its arguments as JSON');
    }
    let args: unknown = {};
    if (json !== undefined) {
      try {
        args = JSON.parse(json);
      } catch (err) {
        throw new UsageError(`call ${name}: arguments are not JSON (${(err as Error).message})`);
      }
    }
    if (typeof args !== 'object' || args === null || Array.isArray(args)) {
      throw new UsageError(`call ${name}: arguments must be a JSON object`);
    }
    return { name, args: args as Record<string, unknown> };
  },
};

function noArgs(name: string, words: string[]): RemoteRequest {
  if (words.length > 0)
    throw new UsageError(`${name} takes no arguments, got "${words.join(' ')}"`);
  return { name, args: {} };
}

/** The request the words after the options ask for. */
export function remoteRequest(words: string[], values: OptionValues): RemoteRequest {
  const [command, ...rest] = words;
  const build = command !== undefined ? REMOTE_COMMANDS[command] : undefined;
  if (!build) {
    throw new UsageError(
      `unknown remote command ${JSON.stringify(command ?? '')}: one of ${Object.keys(REMOTE_COMMANDS).join(', ')}`,
    );
  }
  return build(rest, values);
}

export async function remoteCommand(
  values: OptionValues,
  words: string[],
  output: CommandOutput,
): Promise<number> {
  const url = stringOption(values, 'broker');
  if (url === undefined) throw new UsageError('--broker URL is required');
  const gatewayList = stringOption(values, 'gateway');
  if (gatewayList === undefined) throw new UsageError('--gateway ID[,ID…] is required');
  const gateways = [...new Set(gatewayList.split(',').map((g) => g.trim()))];
  for (const gw of gateways) {
    if (!NAME_PATTERN.test(gw)) {
      throw new UsageError(`--gateway: "${gw}" is not a gateway id (A-Z a-z 0-9 _ -)`);
    }
  }
  const prefix = stringOption(values, 'prefix') ?? 'edge';
  if (!NAME_PATTERN.test(prefix))
    throw new UsageError(`--prefix: "${prefix}" is not a topic level`);
  const protocol = numberOption(values, 'protocol', 4, 5);
  if (protocol !== undefined && protocol !== 4 && protocol !== 5) {
    throw new UsageError('--protocol is 4 (MQTT 3.1.1) or 5 (MQTT 5)');
  }
  const username = stringOption(values, 'username');
  const password = readPassword(stringOption(values, 'password-file'));
  const caPath = stringOption(values, 'ca-file');
  if (words[0] === 'config' && words[1] === 'push') {
    const { configPush } = await import('./remote-config-push.js');
    return configPush(
      values,
      words.slice(2),
      gateways,
      {
        url,
        prefix,
        protocolVersion: protocol === 4 ? 4 : 5,
        ...(username !== undefined ? { username } : {}),
        ...(password !== undefined ? { password } : {}),
        ...(caPath !== undefined ? { caFile: readFileSync(caPath) } : {}),
      },
      output,
    );
  }
  const timeoutSec = numberOption(values, 'timeout', 0.1, 3600) ?? DEFAULT_TIMEOUT_SEC;
  const request = remoteRequest(words, values);

  const outcomes = await sendCommand({
    url,
    prefix,
    gateways,
    protocolVersion: protocol === 4 ? 4 : 5,
    timeoutMs: timeoutSec * 1000,
    name: request.name,
    args: request.args,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(caPath !== undefined ? { caFile: readFileSync(caPath) } : {}),
    // Printed as they come: with a fleet, the answers do not wait for the slowest gateway.
    onOutcome: (o) =>
      output.stdout(values.json === true ? JSON.stringify(o) + '\n' : describeOutcome(o)),
  });
  return outcomes.every((o) => 'answer' in o && o.answer.ok) ? EXIT_OK : EXIT_FAILURE;
}

/** The password from its file (trailing newline ignored), else from the environment. */
function readPassword(file: string | undefined): string | undefined {
  if (file !== undefined) return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  const env = process.env[PASSWORD_ENV];
  return env === undefined || env === '' ? undefined : env;
}

/** A gateway's outcome for a person: a head line, then the result indented. */
export function describeOutcome(o: GatewayOutcome): string {
  if (!('answer' in o))
    return `${o.gateway}: ${o.problem === 'timeout' ? 'NO ANSWER' : 'NOT SENT'}: ${o.message}\n`;
  const a = o.answer;
  const note = a.note !== undefined ? `  note: ${a.note}\n` : '';
  if (!a.ok) return `${o.gateway}: ${a.error.code.toUpperCase()}: ${a.error.message}\n${note}`;
  return `${o.gateway}: ok\n${note}${indent(resultText(a))}`;
}

function resultText(a: AnswerMessage & { ok: true }): string {
  if (a.command === 'status') return statusText(a.result);
  return JSON.stringify(a.result, null, 2);
}

/** The health report's headline figures. */
function statusText(result: unknown): string {
  const r = result as {
    uptimeSec?: number;
    sensors?: Array<{ state?: string }>;
    mqtt?: { connected?: boolean; broker?: string };
    spool?: { depth?: number; oldestAgeMs?: number; deadLetters?: number };
    drops?: { ring?: number; spool?: number };
  };
  const sensors = r.sensors ?? [];
  const ok = sensors.filter((s) => s.state === 'ok').length;
  return [
    `uptime     ${r.uptimeSec ?? '?'} s`,
    `sensors    ${ok}/${sensors.length} ok`,
    `broker     ${r.mqtt?.connected ? 'connected' : 'DOWN'} ${r.mqtt?.broker ?? ''}`.trimEnd(),
    `spool      ${r.spool?.depth ?? '?'} batches, oldest ${Math.round((r.spool?.oldestAgeMs ?? 0) / 1000)} s, ${r.spool?.deadLetters ?? 0} dead letters`,
    `drops      ring ${r.drops?.ring ?? 0}, spool ${r.drops?.spool ?? 0}`,
  ].join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')
    .concat('\n');
}
