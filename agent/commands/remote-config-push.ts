/**
 * `edge-agent remote … config push FILE --key KEY [--version N] [--group G]`: signs FILE for
 * each gateway (or once for the group), sends it as config/set and prints each gateway's
 * outcome as it comes — the answer, or the retained config/state naming that version (the
 * answer is lost when the gateway replaced its pipeline). Exit 1 when any gateway refused,
 * rolled back or reported nothing in time.
 */
import { readFileSync } from 'node:fs';
import { parseConfigText, validateConfig } from '../config/load.js';
import { watchConfigState } from '../fleet/config-state-watch.js';
import { sendCommand, type RemoteOptions } from '../fleet/remote-client.js';
import { signConfig } from '../fleet/signed-config.js';
import { NAME_PATTERN } from '../../drivers/config/sensor-keys.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  numberOption,
  stringOption,
  UsageError,
  type CommandOutput,
  type OptionValues,
} from './common.js';

/** Probation (60 s by default) plus a restart of the pipeline, with room. */
const DEFAULT_PUSH_TIMEOUT_SEC = 180;

export type PushConnection = Omit<RemoteOptions, 'gateways' | 'name' | 'args' | 'timeoutMs'>;

type PushOutcome = { status: string; line: string };

export async function configPush(
  values: OptionValues,
  words: string[],
  gateways: readonly string[],
  connection: PushConnection,
  output: CommandOutput,
): Promise<number> {
  if (words.length !== 1) throw new UsageError('config push takes one file: config push FILE');
  const file = words[0];
  const keyFile = stringOption(values, 'key');
  if (keyFile === undefined) throw new UsageError('config push: --key PRIVATE-KEY is required');
  const version = numberOption(values, 'version', 1, Number.MAX_SAFE_INTEGER);
  const group = stringOption(values, 'group');
  if (group !== undefined && !NAME_PATTERN.test(group)) {
    throw new UsageError(`--group: "${group}" is not a group name (A-Z a-z 0-9 _ -)`);
  }
  const timeoutMs = (numberOption(values, 'timeout', 1, 3600) ?? DEFAULT_PUSH_TIMEOUT_SEC) * 1000;
  const document = readFileSync(file, 'utf8');
  // The gateways check again; a mistake is cheaper to see here.
  validateConfig(parseConfigText(document, file), file);
  const privateKeyPem = readFileSync(keyFile, 'utf8');
  const pushed = version ?? Math.floor(Date.now() / 1000);
  output.stdout(`pushing ${file} as version ${pushed} to ${gateways.length} gateway(s)\n`);

  const watch = await watchConfigState({ ...connection, gateways, version: pushed });
  let left = gateways.length;
  const one = async (gw: string): Promise<PushOutcome> => {
    const envelope = signConfig(
      group ? { group } : { gateway: gw },
      pushed,
      document,
      privateKeyPem,
    );
    const answered = sendCommand({
      ...connection,
      gateways: [gw],
      name: 'config/set',
      args: envelope as unknown as Record<string, unknown>,
      timeoutMs,
    }).then(([o]): PushOutcome | undefined => {
      if (!('answer' in o)) return undefined;
      const a = o.answer;
      if (!a.ok) return { status: a.error.code, line: `${a.error.code}: ${a.error.message}` };
      const r = a.result as { status: string; reason: string | null };
      return { status: r.status, line: `${r.status}${r.reason ? `: ${r.reason}` : ''}` };
    });
    const reported = watch.outcome(gw).then((s): PushOutcome => ({
      status: s.status,
      line: `${s.status}${s.reason ? `: ${s.reason}` : ''}`,
    }));
    const timedOut = new Promise<PushOutcome>((resolve) => {
      const timer = setTimeout(
        () => resolve({ status: 'timeout', line: `no outcome within ${timeoutMs / 1000} s` }),
        timeoutMs,
      );
      timer.unref();
    });
    const outcome = await Promise.race([answered.then((a) => a ?? reported), reported, timedOut]);
    left--;
    output.stdout(`${gw}: ${outcome.line} (${gateways.length - left}/${gateways.length})\n`);
    return outcome;
  };
  try {
    const outcomes = await Promise.all(gateways.map(one));
    return outcomes.every((o) => o.status === 'applied') ? EXIT_OK : EXIT_FAILURE;
  } finally {
    await watch.close();
  }
}
