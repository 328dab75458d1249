/**
 * `edge-agent spool <status|dead-letters|requeue|drop>`: the spool of a stopped agent, for an
 * operator. `status` gives its depth, oldest batch, last seq, drops and dead letters;
 * `dead-letters` lists the batches the broker refused for good; `requeue SEQ…|--all` puts
 * dead letters back into the publish queue under their own seqs (published at the next
 * start); `drop SEQ…|--all` deletes them for good. Both are counted in the spool (meta) and
 * shown by `status`. The state directory is found as `run` finds it (--state-dir, else the
 * configuration's spool.dir, else $STATE_DIRECTORY, else ./state). A running agent holds the
 * spool exclusively: every subcommand then refuses, naming its pid (spool-access.ts), exit 1.
 */
import { existsSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { loadConfigFile } from '../config/load.js';
import { parseGap, type GapNote } from '../publish/spool/gap-note.js';
import { readMark } from '../publish/spool/seq-mark.js';
import {
  DISCARDED_META,
  REQUEUED_META,
  discardDeadLetters,
  readDeadLetters,
  requeueDeadLetters,
} from '../publish/spool/sqlite-dead-letters.js';
import { PAYLOAD } from '../publish/spool/sqlite-open.js';
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
import { stateDirPath } from './state-dir.js';

export const SPOOL_SUBCOMMANDS = ['status', 'dead-letters', 'requeue', 'drop'] as const;

/** What `status` reports (also its --json output). */
export interface SpoolFigures {
  path: string;
  /** Batches waiting to be published, and their payload bytes. */
  depth: number;
  bytes: number;
  oldestSeq?: number;
  /** By the wall clock: now less the oldest batch's createdAt. */
  oldestAgeMs?: number;
  lastSeq: number;
  dropped: number;
  /** The note the next published batch carries (drops not yet announced). */
  pendingNote?: GapNote;
  setAside: number;
  deadLetters: number;
  deadLetterBytes: number;
  deadLettersDropped: number;
  requeued: number;
  discarded: number;
  corruptMovedAside: number;
}

export async function spoolCommand(
  values: OptionValues,
  positionals: string[],
  output: CommandOutput,
): Promise<number> {
  const [sub, ...args] = positionals;
  if (!(SPOOL_SUBCOMMANDS as readonly string[]).includes(sub ?? '')) {
    throw new UsageError(
      `unknown subcommand ${JSON.stringify(sub ?? '')}: one of ${SPOOL_SUBCOMMANDS.join(', ')}`,
    );
  }
  const changes = sub === 'requeue' || sub === 'drop';
  const seqs = changes ? seqArguments(args, values.all === true) : undefined;
  if (!changes && (args.length > 0 || values.all !== undefined))
    throw new UsageError(`${sub} takes no seqs`);
  const dir = stateDir(values);
  let db: Database.Database;
  try {
    db = openSpoolForOperator(dir);
  } catch (err) {
    if (!(err instanceof SpoolAccessError)) throw err;
    output.stderr(`edge-agent spool: ${err.message}\n`);
    return EXIT_FAILURE;
  }
  try {
    const json = values.json === true;
    if (sub === 'status') return print(output, json, figures(db, dir), statusText);
    if (sub === 'dead-letters') return print(output, json, deadLetterRows(db), deadLettersText);
    return change(db, sub as 'requeue' | 'drop', seqs!, output);
  } finally {
    db.close();
  }
}

/** SEQ… as positive integers, or every dead letter with --all (undefined); not both. */
function seqArguments(args: string[], all: boolean): number[] | undefined {
  if (all && args.length > 0) throw new UsageError('give SEQ… or --all, not both');
  if (all) return undefined;
  if (args.length === 0) throw new UsageError('give the seqs to change (SEQ…) or --all');
  return args.map((a) => {
    const n = Number(a);
    if (!/^\d+$/.test(a) || !Number.isSafeInteger(n) || n < 1)
      throw new UsageError(`SEQ must be a positive whole number, got ${JSON.stringify(a)}`);
    return n;
  });
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

function print<T>(output: CommandOutput, json: boolean, value: T, text: (v: T) => string): number {
  output.stdout(json ? `${JSON.stringify(value)}\n` : text(value));
  return EXIT_OK;
}

function figures(db: Database.Database, dir: string): SpoolFigures {
  const meta = (key: string): unknown =>
    (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: unknown } | undefined)
      ?.value;
  const num = (key: string): number => {
    const v = meta(key);
    return typeof v === 'number' ? v : 0;
  };
  const totals = db
    .prepare(`SELECT count(*) AS n, coalesce(sum(${PAYLOAD}), 0) AS b, max(seq) AS m FROM batches`)
    .get() as { n: number; b: number; m: number | null };
  const oldest = db.prepare('SELECT seq, created_at FROM batches ORDER BY seq LIMIT 1').get() as
    { seq: number; created_at: number } | undefined;
  const dead = db
    .prepare('SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS b FROM dead_letters')
    .get() as { n: number; b: number };
  const mark = readMark(dir);
  const f: SpoolFigures = {
    path: db.name,
    depth: totals.n,
    bytes: totals.b,
    lastSeq: Math.max(num('last_seq'), totals.m ?? 0),
    dropped: Math.max(num('dropped'), mark.state === 'ok' ? mark.mark.dropped : 0),
    setAside: num('set_aside'),
    deadLetters: dead.n,
    deadLetterBytes: dead.b,
    deadLettersDropped: num('dead_letters_dropped'),
    requeued: num(REQUEUED_META),
    discarded: num(DISCARDED_META),
    corruptMovedAside: num('corrupt_moved'),
  };
  if (oldest) {
    f.oldestSeq = oldest.seq;
    f.oldestAgeMs = Math.max(0, Date.now() - oldest.created_at);
  }
  const note = parseGap(meta('pending_gap'));
  if (note) f.pendingNote = note;
  return f;
}

function statusText(f: SpoolFigures): string {
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
    row('requeued', `${f.requeued} (spool requeue); deleted ${f.discarded} (spool drop)`)
  );
}

interface DeadLetterRow {
  seq: number;
  bytes: number;
  reason: string;
  setAsideAt: string;
  createdAt: string;
}

function deadLetterRows(db: Database.Database): DeadLetterRow[] {
  return readDeadLetters((text) => db.prepare(text)).map((d) => ({
    seq: d.seq,
    bytes: d.body.length,
    reason: d.reason,
    setAsideAt: new Date(d.setAsideAt).toISOString(),
    createdAt: new Date(d.createdAt).toISOString(),
  }));
}

function deadLettersText(rows: DeadLetterRow[]): string {
  if (rows.length === 0) return 'no dead letters\n';
  const lines = rows.map(
    (r) =>
      `${String(r.seq).padEnd(10)}${String(r.bytes).padStart(9)}  ${r.setAsideAt}  ${r.reason}`,
  );
  return `${'seq'.padEnd(10)}${'bytes'.padStart(9)}  ${'set aside (UTC)'.padEnd(24)}  reason\n${lines.join('\n')}\n`;
}

/** requeue or drop: all the given seqs, or none when one is not a dead letter. */
function change(
  db: Database.Database,
  what: 'requeue' | 'drop',
  given: number[] | undefined,
  output: CommandOutput,
): number {
  const dead = readDeadLetters((text) => db.prepare(text)).map((d) => d.seq);
  const have = new Set(dead);
  const missing = (given ?? []).filter((s) => !have.has(s));
  if (missing.length > 0) {
    output.stderr(
      `edge-agent spool: ${missing.length === 1 ? 'seq' : 'seqs'} ${missing.join(', ')} ${missing.length === 1 ? 'is not a dead letter' : 'are not dead letters'} (dead letters: ${dead.length > 0 ? dead.join(', ') : 'none'}); nothing changed\n`,
    );
    return EXIT_FAILURE;
  }
  const seqs = given ?? dead;
  const done = what === 'requeue' ? requeueDeadLetters(db, seqs) : discardDeadLetters(db, seqs);
  const list = done.length > 0 ? ` (seqs ${done.join(', ')})` : '';
  output.stdout(
    what === 'requeue'
      ? `requeued ${done.length} dead letters${list}: the agent publishes them under their own seqs when it starts\n`
      : `deleted ${done.length} dead letters${list}\n`,
  );
  return EXIT_OK;
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
