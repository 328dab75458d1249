/**
 * `edge-agent spool` as an operator runs it on a stopped agent: the built CLI as a child
 * process, on a spool written by the agent's own Spool (batches, an acknowledged one, dead
 * letters). On a running agent (its control socket): spool-live.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../agent/ops/logger.js';
import { Spool } from '../../agent/publish/spool/spool.js';
import { spawnMosquitto } from '../helpers/mosquitto.js';
import { startSubscriber } from '../helpers/subscriber.js';
import { CLI, startAgent, type AgentProcess } from './agent-process.js';

const root = mkdtempSync(join(tmpdir(), 'edge-spool-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The CLI without the machine's own $STATE_DIRECTORY unless a test sets one. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, STATE_DIRECTORY: '', ...env },
  });
}

const OPTS = { maxBytes: 64 * 1024 * 1024, maxAgeSec: 3600 };
const bodyOf = (seq: number) => Buffer.from(JSON.stringify({ seq, filler: 'x'.repeat(seq * 10) }));

/** Batches 1..5; 1 acknowledged; 3 and 4 refused for good (dead letters). */
async function seededSpool(name: string): Promise<string> {
  const dir = join(root, name);
  const spool = Spool.open(dir, OPTS, silentLogger);
  for (let seq = 1; seq <= 5; seq++) await spool.append(bodyOf(seq), Date.now());
  spool.ack(1);
  expect(spool.setAside(3, 'packet too large (0x95)')).toBe(true);
  expect(spool.setAside(4, 'not authorized (0x87)')).toBe(true);
  spool.close();
  return dir;
}

function status(dir: string) {
  const r = cli(['spool', 'status', '--state-dir', dir, '--json']);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe('edge-agent spool on a stopped agent', () => {
  it('status: depth, oldest, last seq, drops and dead letters, as text and JSON', async () => {
    const dir = await seededSpool('status');
    expect(status(dir)).toMatchObject({
      path: join(dir, 'spool.sqlite'),
      depth: 2,
      bytes: bodyOf(2).length + bodyOf(5).length,
      oldestSeq: 2,
      lastSeq: 5,
      dropped: 0,
      setAside: 2,
      deadLetters: 2,
      deadLetterBytes: bodyOf(3).length + bodyOf(4).length,
      pendingNote: { count: 2, firstSeq: 3, lastSeq: 4, reason: 'set-aside' },
      requeued: 0,
      discarded: 0,
    });
    const text = cli(['spool', 'status', '--state-dir', dir]);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^depth +2 batches, \d+ B$/m);
    expect(text.stdout).toMatch(/^oldest +seq 2, \d+ s old$/m);
    expect(text.stdout).toMatch(/^last seq +5$/m);
    expect(text.stdout).toMatch(/^dead letters +2, /m);
  });

  it('dead-letters lists seq, size, reason and when', async () => {
    const dir = await seededSpool('list');
    const r = cli(['spool', 'dead-letters', '--state-dir', dir, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(rows.map((d) => [d.seq, d.bytes, d.reason])).toEqual([
      [3, bodyOf(3).length, 'packet too large (0x95)'],
      [4, bodyOf(4).length, 'not authorized (0x87)'],
    ]);
    expect(Date.parse(rows[0].setAsideAt as string)).toBeGreaterThan(0);
    const text = cli(['spool', 'dead-letters', '--state-dir', dir]).stdout.split('\n');
    expect(text[0]).toMatch(/^seq +bytes +set aside \(UTC\) +reason$/);
    expect(text[1]).toMatch(/^3 +\d+ +\d{4}-\d\d-\d\dT[\d:.]+Z +packet too large \(0x95\)$/);
  });

  it('requeue SEQ puts a dead letter back into the publish queue under its own seq, with its bytes, counted', async () => {
    const dir = await seededSpool('requeue');
    const r = cli(['spool', 'requeue', '3', '--state-dir', dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      'requeued 1 dead letters (seqs 3): the agent publishes them under their own seqs when it starts\n',
    );
    expect(status(dir)).toMatchObject({ depth: 3, deadLetters: 1, requeued: 1, lastSeq: 5 });
    // The agent's spool hands it out in seq order, as published first; numbering goes on.
    const spool = Spool.open(dir, OPTS, silentLogger);
    try {
      const out = spool.peek(0, 10);
      expect(out.map((b) => b.seq)).toEqual([2, 3, 5]);
      expect(out[1].body.equals(bodyOf(3))).toBe(true);
      expect(spool.deadLetters().map((d) => d.seq)).toEqual([4]);
      expect(await spool.append(bodyOf(6), Date.now())).toBe(6);
    } finally {
      spool.close();
    }
  });

  it('drop --all deletes every dead letter, counted; requeue --all then has nothing to do', async () => {
    const dir = await seededSpool('drop');
    const r = cli(['spool', 'drop', '--all', '--state-dir', dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('deleted 2 dead letters (seqs 3, 4)');
    expect(status(dir)).toMatchObject({ depth: 2, deadLetters: 0, discarded: 2, setAside: 2 });
    const again = cli(['spool', 'requeue', '--all', '--state-dir', dir]);
    expect(again.status).toBe(0);
    expect(again.stdout).toContain('requeued 0 dead letters');
  });

  it('forget-limit with no agent running says there is nothing to forget', async () => {
    const dir = await seededSpool('forget');
    const r = cli(['spool', 'forget-limit', '--state-dir', dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      `no agent runs on ${dir}: learned packet limits last only while it runs, so there is none to forget\n`,
    );
  });

  it('a spool held by a process that does not answer on a control socket: every subcommand refuses, naming its pid, and changes nothing', async () => {
    const dir = await seededSpool('held');
    // This test process holds the spool as an agent does, without a control socket.
    const holder = Spool.open(dir, OPTS, silentLogger);
    try {
      for (const sub of [['status'], ['dead-letters'], ['requeue', '3'], ['drop', '--all']]) {
        const r = cli(['spool', ...sub, '--state-dir', dir]);
        expect(r.status, sub.join(' ')).toBe(1);
        expect(r.stderr).toMatch(
          new RegExp(
            `^edge-agent spool: the agent is running \\(pid ${process.pid}\\) and holds the spool .*spool\\.sqlite, but does not answer on its control socket .*stop it first`,
          ),
        );
      }
    } finally {
      holder.close();
    }
    expect(status(dir)).toMatchObject({ deadLetters: 2, requeued: 0, discarded: 0 });
  });

  it('a seq that is not a dead letter changes nothing and exits 1, naming the dead letters', async () => {
    const dir = await seededSpool('unknown');
    const r = cli(['spool', 'requeue', '3', '99', '--state-dir', dir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'edge-agent spool: seq 99 is not a dead letter (dead letters: 3, 4); nothing changed\n',
    );
    expect(status(dir)).toMatchObject({ deadLetters: 2, requeued: 0, depth: 2 });
  });

  it('usage mistakes exit 2 with the usage; --help shows it', () => {
    for (const args of [
      ['spool'],
      ['spool', 'frobnicate'],
      ['spool', 'requeue'],
      ['spool', 'requeue', 'x1'],
      ['spool', 'drop', '0'],
      ['spool', 'requeue', '3', '--all'],
      ['spool', 'status', '3'],
      ['spool', 'forget-limit', '--all'],
    ]) {
      const r = cli([...args, '--state-dir', root]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toContain('usage: edge-agent spool');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const help = cli(['spool', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('usage: edge-agent spool status | dead-letters | requeue');
    expect(help.stdout).toContain('| forget-limit');
    expect(cli(['--help']).stdout).toMatch(/^ {2}spool +/m);
  });

  it('finds the state dir as run does: --config spool.dir, else $STATE_DIRECTORY; none there: exit 1 naming --state-dir', async () => {
    const dir = await seededSpool('found');
    const config = join(root, 'found.yaml');
    writeFileSync(config, `gateway: { id: gw }\nspool: { dir: ${dir} }\n`);
    const viaConfig = cli(['spool', 'status', '--config', config, '--json']);
    expect(viaConfig.status, viaConfig.stderr).toBe(0);
    expect(JSON.parse(viaConfig.stdout)).toMatchObject({ lastSeq: 5 });
    const viaEnv = cli(['spool', 'status', '--json'], { STATE_DIRECTORY: dir });
    expect(viaEnv.status, viaEnv.stderr).toBe(0);
    const empty = join(root, 'empty');
    mkdirSync(empty);
    const none = cli(['spool', 'status', '--state-dir', empty]);
    expect(none.status).toBe(1);
    expect(none.stderr).toBe(
      `edge-agent spool: no spool in ${empty} (no spool.sqlite): pass the agent's state directory with --state-dir (the service's is /var/lib/edge-agent), or --config with the configuration that sets spool.dir\n`,
    );
  });
});

describe('a requeued dead letter, as a subscriber sees it', () => {
  let agent: AgentProcess | undefined;
  const closers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    agent?.kill('SIGKILL');
    await agent?.exited();
    agent = undefined;
    for (const c of closers.splice(0).reverse()) await c();
  });

  it('is published under its own seq with its bytes when the agent starts; the next batch names it as set aside', async () => {
    const broker = await spawnMosquitto();
    closers.push(() => broker.close());
    const sub = await startSubscriber({ url: broker.url, topics: ['edge/gw/telemetry'] });
    closers.push(() => sub.close());
    const dir = join(root, 'published');
    const spool = Spool.open(dir, OPTS, silentLogger);
    const created = Date.now() - 60_000;
    for (let seq = 1; seq <= 3; seq++)
      await spool.append(Buffer.from(`{"windows":[],"marker":"batch-${seq}"}`), created);
    spool.ack(1);
    spool.ack(2);
    expect(spool.setAside(3, 'packet too large (0x95)')).toBe(true);
    spool.close();

    expect(cli(['spool', 'requeue', '3', '--state-dir', dir]).status).toBe(0);
    agent = startAgent([
      'simulate',
      '--broker',
      broker.url,
      '--gateway',
      'gw',
      '--state-dir',
      dir,
      '--window',
      '500',
    ]);
    await sub.waitFor(
      (s) => s.telemetrySeqs().includes(3) && s.telemetrySeqs().includes(4),
      30_000,
      'seq 3 (requeued) and seq 4 (the first new batch)',
    );
    const bySeq = (seq: number) => sub.on('telemetry').find((m) => m.json?.seq === seq)!.json!;
    expect(bySeq(3)).toMatchObject({
      seq: 3,
      gateway: 'gw',
      createdAt: created,
      marker: 'batch-3',
    });
    expect(bySeq(3).dropped).toBeUndefined();
    const three = sub
      .on('telemetry')
      .find((m) => m.json?.seq === 3)!
      .payload.toString();
    expect(three.endsWith('"windows":[],"marker":"batch-3"}')).toBe(true);
    // The set-aside note was still pending when the seq was requeued: it is not withdrawn.
    expect(bySeq(4).dropped).toEqual({ count: 1, firstSeq: 3, lastSeq: 3, reason: 'set-aside' });
    expect(sub.telemetrySeqs().filter((s) => s < 3)).toEqual([]);
  }, 60_000);
});
