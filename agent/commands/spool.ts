/**
 * `edge-agent spool <status|dead-letters|requeue|drop|forget-limit>`: the agent's spool, for
 * an operator. `status` gives its depth, oldest batch, last seq, drops and dead letters (and,
 * from a running agent, the packet limits it learned); `dead-letters` lists the batches the
 * broker refused for good; `requeue SEQ…|--all` puts dead letters back into the publish
 * queue under their own seqs; `drop SEQ…|--all` deletes them for good (both counted in the
 * spool's meta and shown by `status`); `forget-limit` makes a running agent forget the
 * packet limits learned from the broker's refusals (requeue does too).
 *
 * The state directory is found as `run` finds it (--state-dir, else the configuration's
 * spool.dir, else $STATE_DIRECTORY, else ./state). When an agent runs there, the request
 * goes to it through its control socket (agent/control): it is carried out in the running
 * spool, and a requeued batch is published at once. When none does, the command works on
 * the spool file (spool-access.ts); requeued batches then go out when the agent starts.
 */
import { existsSync } from 'node:fs';
import { ControlClientError, askAgent } from '../control/control-client.js';
import type { DeadLetterChangeResult, LiveSpoolFigures } from '../control/spool-commands.js';
import { loadConfigFile } from '../config/load.js';
import type { LearnedLimits } from '../publish/publisher.js';
import {
  missingMessage,
  type DeadLetterChange,
  type DeadLetterList,
  type DeadLetterRow,
  type DeadLetterSelection,
  type SpoolFigures,
} from '../publish/spool/operator.js';
import {
  DEFAULT_CONFIG,
  EXIT_FAILURE,
  EXIT_OK,
  stringOption,
  UsageError,
  type CommandOutput,
  type OptionValues,
} from './common.js';
import { openSpoolForOperator, SpoolAccessError } from './spool-access.js';
import { fileChange, fileDeadLetters, fileFigures } from './spool-file.js';
import { stateDirPath } from './state-dir.js';

export const SPOOL_SUBCOMMANDS = [
  'status',
  'dead-letters',
  'requeue',
  'drop',
  'forget-limit',
] as const;
type Sub = (typeof SPOOL_SUBCOMMANDS)[number];

/** What one subcommand got, from the running agent or from the file. */
type Outcome =
  | { sub: 'status'; figures: SpoolFigures & { learnedLimits?: LearnedLimits } }
  | { sub: 'dead-letters'; list: DeadLetterList }
  | { sub: 'requeue' | 'drop'; change: DeadLetterChangeResult; live: boolean }
  | { sub: 'forget-limit'; forgotten: LearnedLimits | undefined };

export async function spoolCommand(
  values: OptionValues,
  positionals: string[],
  output: CommandOutput,
): Promise<number> {
  const [given, ...args] = positionals;
  if (!(SPOOL_SUBCOMMANDS as readonly string[]).includes(given ?? '')) {
    throw new UsageError(
      `unknown subcommand ${JSON.stringify(given ?? '')}: one of ${SPOOL_SUBCOMMANDS.join(', ')}`,
    );
  }
  const sub = given as Sub;
  const changes = sub === 'requeue' || sub === 'drop';
  const selection = changes ? seqArguments(args, values.all === true) : undefined;
  if (!changes && (args.length > 0 || values.all !== undefined))
    throw new UsageError(`${sub} takes no seqs`);
  const dir = stateDir(values);
  let outcome: Outcome;
  try {
    outcome = (await fromAgent(dir, sub, selection)) ?? fromFile(dir, sub, selection);
  } catch (err) {
    if (!(err instanceof SpoolAccessError || err instanceof ControlClientError)) throw err;
    output.stderr(`edge-agent spool: ${err.message}\n`);
    return EXIT_FAILURE;
  }
  print(output, values.json === true, outcome, dir);
  return EXIT_OK;
}

/** The request carried out by the agent running on `dir`; undefined when none runs there. */
async function fromAgent(
  dir: string,
  sub: Sub,
  selection: DeadLetterSelection | undefined,
): Promise<Outcome | undefined> {
  const reply = await askAgent(dir, `spool/${sub}`, selection ?? {});
  if (reply.kind === 'no-agent') return undefined;
  const { answer } = reply;
  if (!answer.ok) throw new ControlClientError(answer.error.message.replace(/^spool\/\S+: /, ''));
  const result = answer.result;
  switch (sub) {
    case 'status':
      return { sub, figures: result as LiveSpoolFigures };
    case 'dead-letters':
      return { sub, list: result as DeadLetterList };
    case 'forget-limit':
      return { sub, forgotten: (result as { forgotten: LearnedLimits }).forgotten };
    default:
      return { sub, change: result as DeadLetterChangeResult, live: true };
  }
}

/** The request carried out on the spool file (no agent runs on `dir`). */
function fromFile(dir: string, sub: Sub, selection: DeadLetterSelection | undefined): Outcome {
  // Learned limits live in a running agent only: with none, there is nothing to forget.
  if (sub === 'forget-limit') return { sub, forgotten: undefined };
  const db = openSpoolForOperator(dir);
  try {
    if (sub === 'status') return { sub, figures: fileFigures(db, dir) };
    if (sub === 'dead-letters') return { sub, list: fileDeadLetters(db) };
    const change: DeadLetterChange = fileChange(db, sub, selection!);
    if (!change.ok) throw new SpoolAccessError(missingMessage(change));
    return { sub, change: { count: change.seqs.length, seqs: change.seqs }, live: false };
  } finally {
    db.close();
  }
}

/** SEQ… as positive integers, or every dead letter with --all; not both. */
function seqArguments(args: string[], all: boolean): DeadLetterSelection {
  if (all && args.length > 0) throw new UsageError('give SEQ… or --all, not both');
  if (all) return { all: true };
  if (args.length === 0) throw new UsageError('give the seqs to change (SEQ…) or --all');
  return {
    seqs: args.map((a) => {
      const n = Number(a);
      if (!/^\d+$/.test(a) || !Number.isSafeInteger(n) || n < 1)
        throw new UsageError(`SEQ must be a positive whole number, got ${JSON.stringify(a)}`);
      return n;
    }),
  };
}

function stateDir(values: OptionValues): string {
  const flag = stringOption(values, 'state-dir');
  if (flag !== undefined) return stateDirPath(undefined, flag);
  const given = stringOption(values, 'config');
  // Without --config, the service's configuration when there is one (as `run` reads it).
  const file = given ?? (existsSync(DEFAULT_CONFIG) ? DEFAULT_CONFIG : undefined);
  const configured = file === undefined ? undefined : loadConfigFile(file).spool.dir;
  return stateDirPath(configured, undefined);
}

function print(output: CommandOutput, json: boolean, o: Outcome, dir: string): void {
  const out = (text: string) => output.stdout(text);
  switch (o.sub) {
    case 'status':
      return out(json ? `${JSON.stringify(o.figures)}\n` : statusText(o.figures));
    case 'dead-letters':
      if (o.list.total > o.list.rows.length)
        output.stderr(
          `edge-agent spool: listing the oldest ${o.list.rows.length} of ${o.list.total} dead letters\n`,
        );
      return out(json ? `${JSON.stringify(o.list.rows)}\n` : deadLettersText(o.list.rows));
    case 'forget-limit':
      if (o.forgotten === undefined)
        return out(
          `no agent runs on ${dir}: learned packet limits last only while it runs, so there is none to forget\n`,
        );
      return out(`learned packet limits forgotten: ${limitsText(o.forgotten)}\n`);
    default: {
      const { count, seqs, forgotten } = o.change;
      const list = count > 0 ? ` (seqs ${seqs.join(', ')}${count > seqs.length ? ', …' : ''})` : '';
      if (o.sub === 'drop') return out(`deleted ${count} dead letters${list}\n`);
      const when = o.live
        ? 'the running agent publishes them now under their own seqs'
        : 'the agent publishes them under their own seqs when it starts';
      const limits = forgotten ? `; learned packet limits forgotten: ${limitsText(forgotten)}` : '';
      return out(`requeued ${count} dead letters${list}: ${when}${limits}\n`);
    }
  }
}

function limitsText(limits: LearnedLimits): string {
  const parts = [
    limits.telemetryBytes !== undefined ? `telemetry ${limits.telemetryBytes} B` : '',
    limits.healthBytes !== undefined ? `health ${limits.healthBytes} B` : '',
  ].filter((p) => p !== '');
  return parts.length > 0 ? parts.join(', ') : 'none was learned';
}

function statusText(f: SpoolFigures & { learnedLimits?: LearnedLimits }): string {
  const row = (name: string, value: string) => `${name.padEnd(14)}${value}\n`;
  const n = f.pendingNote;
  const seqs =
    n && (n.firstSeq === n.lastSeq ? `seq ${n.firstSeq}` : `seqs ${n.firstSeq}–${n.lastSeq}`);
  const note = n ? ` (the next batch's note names ${n.count} missing: ${seqs}, ${n.reason})` : '';
  return (
    `spool ${f.path}\n` +
    row('depth', `${f.depth} batches, ${size(f.bytes)}`) +
    row(
      'oldest',
      f.oldestSeq === undefined ? '-' : `seq ${f.oldestSeq}, ${age(f.oldestAgeMs ?? 0)} old`,
    ) +
    row('last seq', String(f.lastSeq)) +
    row('dropped', `${f.dropped}${note}`) +
    row(
      'dead letters',
      `${f.deadLetters}, ${size(f.deadLetterBytes)} (set aside ever ${f.setAside}, dropped by their bound ${f.deadLettersDropped})`,
    ) +
    row('requeued', `${f.requeued} (spool requeue); deleted ${f.discarded} (spool drop)`) +
    (f.learnedLimits
      ? row('learned limit', `${limitsText(f.learnedLimits)} (running agent; spool forget-limit)`)
      : '')
  );
}

function deadLettersText(rows: DeadLetterRow[]): string {
  if (rows.length === 0) return 'no dead letters\n';
  const lines = rows.map(
    (r) =>
      `${String(r.seq).padEnd(10)}${String(r.bytes).padStart(9)}  ${r.setAsideAt}  ${r.reason}`,
  );
  return `${'seq'.padEnd(10)}${'bytes'.padStart(9)}  ${'set aside (UTC)'.padEnd(24)}  reason\n${lines.join('\n')}\n`;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function age(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}
