/**
 * Chaos on the spool's disk, end to end: the real agent process (`dist/agent/cli.js
 * simulate`) publishing to a real mosquitto, its state dir on a real 2 MB tmpfs that is
 * filled with dd, remounted read-only, or whose database is damaged between runs; SIGKILL
 * and SIGTERM at chosen and random points. A QoS 1 persistent subscriber checks what every
 * consumer relies on: no seq published twice with different bytes, every missing seq
 * explained by a `dropped` note of a later batch and counted on the health topic, and
 * telemetry flowing again after the fault.
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { askAgent } from '../../agent/control/control-client.js';
import { SPOOL_FILE } from '../../agent/publish/spool/sqlite-store.js';
import { CLI, startAgent, type AgentProcess } from '../e2e/agent-process.js';
import { spawnMosquitto, type MosquittoBroker } from '../helpers/mosquitto.js';
import { type TestSubscriber } from '../helpers/subscriber.js';
import { mountTmpfs, tmpfsUnavailable, type Tmpfs } from '../helpers/tmpfs.js';
import { ext4Unavailable, mountExt4 } from '../helpers/ext4.js';
import { useTeardown } from '../helpers/teardown.js';
import { waitUntil } from '../helpers/wait.js';

const noMount = tmpfsUnavailable();
const noBuild = existsSync(CLI) ? undefined : `${CLI} is missing (npm run build)`;
const skip = noMount ?? noBuild;
if (skip) process.stdout.write(`chaos/disk tests skipped: ${skip}\n`);

let broker: MosquittoBroker;
beforeAll(async () => {
  if (!skip) broker = await spawnMosquitto({ persistence: true });
});
afterAll(async () => {
  await broker?.close();
});
// Newest first: the processes, then the file systems they used (a lazy unmount even if one
// lingers).
const t = useTeardown();

function disk(): Tmpfs {
  const fs = mountTmpfs(2 * 1024 * 1024);
  t.add(() => fs.close());
  return fs;
}

/** One sensor sampled every 50 ms, 200 ms windows, health every second. */
function configFile(dir: string): string {
  const file = join(dir, 'chaos.yaml');
  writeFileSync(
    file,
    [
      'gateway: { id: chaos }',
      "health: { schedule: '* * * * * *' }",
      'spool: { memoryMaxBytes: 262144 }',
      'sensors:',
      '  - { id: t1, driver: tmp102, bus: 1, address: 0x48, intervalMs: 50 }',
    ].join('\n'),
  );
  return file;
}

function agent(
  gw: string,
  stateDir: string,
  config: string,
  user?: { uid: number; gid: number },
): AgentProcess {
  const a = startAgent(
    [
      'simulate',
      '--config',
      config,
      '--broker',
      broker.url,
      '--gateway',
      gw,
      '--state-dir',
      stateDir,
      '--window',
      '200',
    ],
    {},
    user,
  );
  t.add(async () => {
    a.kill('SIGKILL');
    await a.exited();
  });
  return a;
}

/** A persistent subscriber to the gateway's telemetry and health. */
const subscriber = (gw: string): Promise<TestSubscriber> =>
  t.subscriber({
    url: broker.url,
    topics: [`edge/${gw}/telemetry`, `edge/${gw}/health`],
    clientId: `chaos-${gw}-${process.pid}`,
    clean: false,
  });

const maxSeq = (s: TestSubscriber) => Math.max(0, ...s.telemetrySeqs());
const waitForSeq = (s: TestSubscriber, above: number, what: string, ms = 20_000) =>
  s.waitFor((x) => maxSeq(x) > above, ms, what);
/**
 * Two health reports built since `since` (ms since the epoch). Health goes out every second
 * on the connection the telemetry uses, in order: a batch published in the meantime would
 * be in before the second report.
 */
const twoHealthReports = (s: TestSubscriber, since: number, what: string) =>
  s.waitFor(
    (x) => x.on('/health').filter((m) => (m.json?.t as number) >= since).length >= 2,
    20_000,
    what,
  );

interface Note {
  count: number;
  firstSeq: number;
  lastSeq: number;
  reason: string;
}

/** What the subscriber saw: seqs with two different payloads, missing seqs no note explains. */
function audit(s: TestSubscriber) {
  const bytes = new Map<number, string>();
  const conflicts: number[] = [];
  const notes: Note[] = [];
  for (const m of s.on('/telemetry')) {
    const seq = m.json?.seq as number;
    const b64 = m.payload.toString('base64');
    if (bytes.has(seq) && bytes.get(seq) !== b64) conflicts.push(seq);
    bytes.set(seq, b64);
    if (m.json?.dropped) notes.push(m.json.dropped as Note);
  }
  const top = Math.max(0, ...bytes.keys());
  const missing: number[] = [];
  for (let seq = 1; seq <= top; seq++) if (!bytes.has(seq)) missing.push(seq);
  const unexplained = missing.filter(
    (seq) => !notes.some((n) => seq >= n.firstSeq && seq <= n.lastSeq),
  );
  const health = s.on('/health').at(-1)?.json as { spool?: { dropped?: number } } | undefined;
  return { conflicts, missing, unexplained, notes, dropped: health?.spool?.dropped ?? 0 };
}

/** Wait (bounded) for a health report that counts every missing seq; expectConsistent judges. */
async function healthCounts(s: TestSubscriber): Promise<void> {
  await s
    .waitFor((x) => audit(x).dropped >= audit(x).missing.length, 10_000, 'health')
    .catch(() => undefined);
}

function expectConsistent(s: TestSubscriber): ReturnType<typeof audit> {
  const a = audit(s);
  expect(a.conflicts, 'seqs published twice with different bytes').toEqual([]);
  expect(a.unexplained, 'missing seqs no dropped note explains').toEqual([]);
  expect(
    a.dropped,
    `health spool.dropped counts every missing seq (${JSON.stringify({ missing: a.missing, notes: a.notes })})`,
  ).toBeGreaterThanOrEqual(a.missing.length);
  return a;
}

const stopped = async (a: AgentProcess, signal: NodeJS.Signals) => {
  a.kill(signal);
  return a.exited();
};

describe.skipIf(skip !== undefined)('chaos: the spool disk fails under the real agent', () => {
  it('disk full while the broker is up, then SIGKILL, free, restart: no seq reused, every loss counted', async () => {
    const fs = disk();
    const gw = 'chaos-full-up';
    const state = join(fs.dir, 'state');
    const cfg = configFile(fs.dir);
    const sub = await subscriber(gw);
    const first = agent(gw, state, cfg);
    await waitForSeq(sub, 5, 'first telemetry');
    fs.fill();
    await first.waitForLog((l) => String(l.msg).startsWith('SPOOL DISK FAILURE'), 'disk failure');
    // Memory batches keep being published (their seqs are durable in the mark).
    await waitForSeq(sub, maxSeq(sub) + 5, 'telemetry from memory');
    expect((await stopped(first, 'SIGKILL')).signal).toBe('SIGKILL');
    const before = maxSeq(sub);
    fs.free();
    const second = agent(gw, state, cfg);
    await waitForSeq(sub, before + 5, 'telemetry after the restart');
    await healthCounts(sub);
    expect((await stopped(second, 'SIGTERM')).code).toBe(0);
    expectConsistent(sub);
  });

  it('disk full with the broker down, then SIGTERM: memory batches are reported lost, never as kept; counted after the restart', async () => {
    const fs = disk();
    const gw = 'chaos-full-down';
    const state = join(fs.dir, 'state');
    const cfg = configFile(fs.dir);
    const sub = await subscriber(gw);
    const first = agent(gw, state, cfg);
    await waitForSeq(sub, 3, 'first telemetry');
    await broker.stop();
    t.add(() => (broker.running() ? undefined : broker.restart()));
    fs.fill();
    await first.waitForLog((l) => String(l.msg).startsWith('SPOOL DISK FAILURE'), 'disk failure');
    // A few batches into memory (5 windows a second).
    await new Promise((r) => setTimeout(r, 1500));
    expect((await stopped(first, 'SIGTERM')).code).toBe(0);
    const lost = first.logs().find((l) => String(l.msg).includes('could not be written to disk'));
    expect(lost, 'the stop says memory batches are lost').toBeDefined();
    expect(lost!.count as number).toBeGreaterThan(0);
    const kept = first.logs().find((l) => String(l.msg).includes('publisher stopped'));
    expect(kept?.leftInSpool).toBeDefined();

    fs.free();
    await broker.restart();
    const before = maxSeq(sub);
    const second = agent(gw, state, cfg);
    await waitForSeq(sub, before + 5, 'telemetry after the restart');
    await sub.waitFor((x) => audit(x).missing.length === 0 || audit(x).notes.length > 0, 10_000);
    await healthCounts(sub);
    expect((await stopped(second, 'SIGTERM')).code).toBe(0);
    const a = expectConsistent(sub);
    expect(a.missing.length).toBeGreaterThanOrEqual(lost!.count as number);
  });

  it('read-only file system at start, writable later: nothing published unless durable, the disk used again without a restart', async () => {
    const fs = disk();
    const gw = 'chaos-ro';
    const state = join(fs.dir, 'state');
    const cfg = configFile(fs.dir);
    const sub = await subscriber(gw);
    const first = agent(gw, state, cfg);
    await waitForSeq(sub, 3, 'first telemetry');
    expect((await stopped(first, 'SIGTERM')).code).toBe(0);
    fs.remount('ro');
    await sub.settle();
    const during = maxSeq(sub);
    const since = Date.now();
    const second = agent(gw, state, cfg);
    await second.waitForLog((l) => l.msg === 'pipeline running', 'start on a read-only disk');
    await twoHealthReports(sub, since, 'two health reports from the read-only start');
    // Nothing durable can be written: nothing new is published.
    expect(maxSeq(sub)).toBe(during);
    fs.remount('rw');
    await waitForSeq(sub, during + 5, 'telemetry once writable', 30_000);
    expect(second.child.exitCode).toBeNull();
    // The control socket could not be made on the read-only card: it is, once writable.
    expect(second.logs().some((l) => String(l.msg).startsWith('control socket not started'))).toBe(
      true,
    );
    await waitUntil(async () => (await askAgent(state, 'spool/status', {})).kind === 'answer', {
      timeoutMs: 30_000,
      what: 'the control socket once writable',
    });
    await healthCounts(sub);
    expect((await stopped(second, 'SIGTERM')).code).toBe(0);
    expectConsistent(sub);
    for (const l of second.logs()) expect(JSON.stringify(l)).not.toMatch(/\\n\s+at /);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'chmod 000 on the state dir, then on the database, for an agent not running as root: no crash, no seq reused, used again once readable',
    async () => {
      const fs = disk();
      const gw = 'chaos-chmod';
      const state = join(fs.dir, 'state');
      const cfg = configFile(fs.dir);
      const nobody = { uid: 65534, gid: 65534 };
      mkdirSync(state);
      chownSync(state, nobody.uid, nobody.gid);
      const sub = await subscriber(gw);
      const first = agent(gw, state, cfg, nobody);
      await waitForSeq(sub, 3, 'first telemetry');
      expect((await stopped(first, 'SIGKILL')).signal).toBe('SIGKILL');

      // The directory: neither the database nor the mark can be read.
      chmodSync(state, 0o000);
      await sub.settle();
      const during = maxSeq(sub);
      const since = Date.now();
      const second = agent(gw, state, cfg, nobody);
      await second.waitForLog((l) => l.msg === 'pipeline running', 'start without a state dir');
      await twoHealthReports(sub, since, 'two health reports from the start without a state dir');
      expect(maxSeq(sub), 'nothing published while numbering is unknown').toBe(during);
      chmodSync(state, 0o700);
      await waitForSeq(sub, during + 5, 'telemetry once the dir is readable', 30_000);

      // The database file alone: numbering continues from the seq mark.
      chmodSync(join(state, SPOOL_FILE), 0o000);
      expect((await stopped(second, 'SIGKILL')).signal).toBe('SIGKILL');
      const third = agent(gw, state, cfg, nobody);
      const before = maxSeq(sub);
      await waitForSeq(sub, before + 5, 'telemetry with the database unreadable', 30_000);
      chmodSync(join(state, SPOOL_FILE), 0o600);
      await third.waitForLog((l) => l.msg === 'spool database open again', 'reopened', 30_000);
      await waitForSeq(sub, maxSeq(sub) + 3, 'telemetry after the reopen');
      await healthCounts(sub);
      expect((await stopped(third, 'SIGTERM')).code).toBe(0);
      expectConsistent(sub);
      for (const a of [second, third]) expect(a.stderr()).not.toMatch(/\n\s+at /);
    },
  );

  it('corrupt header, truncated file, garbage mid-file between runs: moved aside, numbering continues', async () => {
    const fs = disk();
    const gw = 'chaos-corrupt';
    const state = join(fs.dir, 'state');
    const cfg = configFile(fs.dir);
    const db = join(state, SPOOL_FILE);
    const sub = await subscriber(gw);
    const damages: Array<[string, () => void]> = [
      [
        'corrupt header',
        () => {
          const b = readFileSync(db);
          b.fill(0x5a, 0, 100);
          writeFileSync(db, b);
        },
      ],
      ['truncated', () => truncateSync(db, 4096 + 100)],
      [
        'garbage mid-file',
        () => {
          const b = readFileSync(db);
          const page = Math.max(1, Math.floor(b.length / 4096 / 2));
          b.fill(0xa5, page * 4096, Math.min(b.length, page * 4096 + 4096));
          writeFileSync(db, b);
        },
      ],
    ];
    for (const [what, damage] of damages) {
      const run = agent(gw, state, cfg);
      await waitForSeq(sub, maxSeq(sub) + 3, `telemetry before: ${what}`);
      // Unsent batches in the file: the broker away for a moment.
      await broker.stop();
      await new Promise((r) => setTimeout(r, 800));
      expect((await stopped(run, 'SIGKILL')).signal).toBe('SIGKILL');
      await broker.restart();
      // Fold the WAL into the file (as a clean stop does), so the damage hits committed rows.
      try {
        const folded = new Database(db);
        folded.pragma('wal_checkpoint(TRUNCATE)');
        folded.close();
      } catch {
        // Still damaged from the previous round (an agent that did not move it aside).
      }
      damage();
    }
    const last = agent(gw, state, cfg);
    await waitForSeq(sub, maxSeq(sub) + 5, 'telemetry after the damage');
    await healthCounts(sub);
    expect((await stopped(last, 'SIGTERM')).code).toBe(0);
    expectConsistent(sub);
    // Each damage was found at the next start and moved aside, kept for inspection.
    expect(readdirSync(state).filter((f) => /\.corrupt-[^-]+$/.test(f))).toHaveLength(3);
  });

  it('file cut to half after a SIGTERM with the broker down: the rows in the kept half arrive, every missing seq is inside a note', async () => {
    const fs = disk();
    const gw = 'chaos-half';
    const state = join(fs.dir, 'state');
    // Eight sensors make batches of a few hundred bytes stored: the outage fills many pages.
    const cfg = join(fs.dir, 'eight.yaml');
    writeFileSync(
      cfg,
      [
        readFileSync(configFile(fs.dir), 'utf8'),
        ...[1, 2, 3].map(
          (i) =>
            `  - { id: t${i + 1}, driver: tmp102, bus: 1, address: ${0x48 + i}, intervalMs: 50 }`,
        ),
        ...[0, 1, 2, 3].map(
          (i) => `  - { id: m${i}, driver: mcp9808, bus: 1, address: ${0x18 + i}, intervalMs: 50 }`,
        ),
      ].join('\n'),
    );
    const db = join(state, SPOOL_FILE);
    const sub = await subscriber(gw);
    const first = agent(gw, state, cfg);
    // Published and deleted batches leave free pages at the start of the file, which the
    // batches spooled while the broker is down then fill, before new pages at its end.
    await waitForSeq(sub, 30, 'telemetry before the outage');
    await broker.stop();
    t.add(() => (broker.running() ? undefined : broker.restart()));
    // Batches pile up in the spool (5 a second), over several pages.
    await new Promise((r) => setTimeout(r, 12_000));
    expect((await stopped(first, 'SIGTERM')).code).toBe(0);
    const before = maxSeq(sub);
    // A clean stop folds the WAL into the file: the cut hits committed rows.
    expect(existsSync(`${db}-wal`)).toBe(false);
    const kept = Math.floor(readFileSync(db).length / 4096 / 2);
    // The rows on batches pages in the kept half, as SQLite's dbstat counts them beforehand.
    const copy = join(fs.dir, 'before-cut.sqlite');
    writeFileSync(copy, readFileSync(db));
    const stat = new Database(copy, { readonly: true });
    const intact = (
      stat
        .prepare(
          "SELECT coalesce(sum(ncell), 0) AS n FROM dbstat WHERE name = 'batches' AND pagetype = 'leaf' AND pageno <= ?",
        )
        .get(kept) as { n: number }
    ).n;
    stat.close();
    expect(intact, 'the kept half holds spooled rows').toBeGreaterThan(0);
    truncateSync(db, kept * 4096);
    await broker.restart();
    const second = agent(gw, state, cfg);
    const said = await second.waitForLog(
      (l) => String(l.msg).startsWith('SPOOL DATABASE CORRUPT'),
      'the damage found at start',
    );
    const opened = await second.waitForLog((l) => l.msg === 'spool opened', 'spool opened');
    const continuesAfter = opened.lastSeq as number;
    const salvaged = said.salvaged as number;
    expect(salvaged, 'every row read back from the kept half').toBe(intact);
    await waitForSeq(sub, continuesAfter + 3, 'telemetry after the restart');
    // Every salvaged batch arrives: the seqs between the first run's last delivery and the
    // restart's first new seq that reached the subscriber are exactly those.
    const between = () => sub.telemetrySeqs().filter((s) => s > before && s <= continuesAfter);
    await sub.waitFor(() => new Set(between()).size >= salvaged, 10_000, 'the salvaged batches');
    expect(new Set(between()).size).toBe(salvaged);
    await healthCounts(sub);
    expect((await stopped(second, 'SIGTERM')).code).toBe(0);
    const a = expectConsistent(sub);
    expect(a.notes.some((n) => n.reason.includes('database-lost'))).toBe(true);
  });

  it('SIGKILL at random points with the broker going away and back: no seq reused, no loss unexplained', async () => {
    const fs = disk();
    const gw = 'chaos-kill';
    const state = join(fs.dir, 'state');
    const cfg = configFile(fs.dir);
    const sub = await subscriber(gw);
    for (let round = 0; round < 4; round++) {
      const run = agent(gw, state, cfg);
      await run.waitForLog((l) => l.msg === 'pipeline running', 'start');
      if (round % 2 === 1) await broker.stop();
      await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * 1500)));
      expect((await stopped(run, 'SIGKILL')).signal).toBe('SIGKILL');
      if (!broker.running()) await broker.restart();
    }
    const last = agent(gw, state, cfg);
    await waitForSeq(sub, maxSeq(sub) + 5, 'telemetry after the kills');
    // A SIGKILL leaves the seqs reserved above the last stored one: each start skips them
    // with a `reserved` note. Every spooled batch (below the notes) is replayed.
    const onlyReserved = (x: TestSubscriber) =>
      audit(x).missing.every((seq) =>
        audit(x).notes.some(
          (n) => n.reason === 'reserved' && seq >= n.firstSeq && seq <= n.lastSeq,
        ),
      );
    await sub.waitFor(onlyReserved, 15_000, 'replay of every spooled batch');
    // The replay can be done before the last run's first health report: health judged
    // must be that run's, which counts its start's reserved note.
    await twoHealthReports(sub, Date.now(), 'health reports from the last run');
    expect((await stopped(last, 'SIGTERM')).code).toBe(0);
    const a = expectConsistent(sub);
    expect(onlyReserved(sub), `missing seqs outside reserved notes: ${JSON.stringify(a)}`).toBe(
      true,
    );
    // On a healthy disk no reserved seq was ever used: the notes cover exactly the jumps.
    const seen = new Set(sub.telemetrySeqs());
    for (const n of a.notes.filter((x) => x.reason === 'reserved')) {
      expect(n.count).toBe(n.lastSeq - n.firstSeq + 1);
      for (let seq = n.firstSeq; seq <= n.lastSeq; seq++) expect(seen.has(seq)).toBe(false);
    }
  });
});

const noExt4 = skip ?? ext4Unavailable();
if (noExt4 && !skip) process.stdout.write(`chaos/disk ext4 tests skipped: ${noExt4}\n`);

/** Window starts of every telemetry batch the subscriber has. */
const windowStarts = (s: TestSubscriber) =>
  s
    .on('/telemetry')
    .flatMap((m) => ((m.json?.windows ?? []) as Array<{ start: number }>).map((w) => w.start));

describe.skipIf(noExt4 !== undefined)(
  'chaos: the SD card turns read-only under the real agent',
  () => {
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      it(`ext4 errors=remount-ro forced read-only for 20 s with the broker up, then ${signal}, e2fsck, restart: telemetry kept flowing, no seq reused, every gap noted`, async () => {
        const fs = mountExt4(32 * 1024 * 1024);
        t.add(() => fs.close());
        const gw = `chaos-ro-${signal.toLowerCase()}`;
        const state = join(fs.dir, 'state');
        // Not on the card: what was written just before the fault may be gone after e2fsck.
        const cfgDir = mkdtempSync(join(tmpdir(), 'chaos-ro-'));
        t.add(() => rmSync(cfgDir, { recursive: true, force: true }));
        const cfg = configFile(cfgDir);
        const sub = await subscriber(gw);
        const first = agent(gw, state, cfg);
        await waitForSeq(sub, 5, 'first telemetry');
        const how = fs.forceReadOnly();
        const readOnlyAt = Date.now();
        if (how !== 'trigger_fs_error')
          process.stdout.write('no trigger_fs_error on this kernel: remounted read-only instead\n');
        await first.waitForLog(
          (l) => String(l.msg).startsWith('SPOOL DISK FAILURE'),
          'disk failure',
        );
        // Windows that closed late in the read-only stretch reach the subscriber while it lasts.
        await sub.waitFor(
          (x) => windowStarts(x).some((t) => t >= readOnlyAt + 18_000),
          40_000,
          'windows from the read-only stretch',
        );
        const stop = await stopped(first, signal);
        if (signal === 'SIGTERM') expect(stop.code).toBe(0);
        else expect(stop.signal).toBe('SIGKILL');
        const before = maxSeq(sub);

        fs.repair();
        const second = agent(gw, state, cfg);
        await waitForSeq(sub, before + 5, 'telemetry after the restart');
        await healthCounts(sub);
        expect((await stopped(second, 'SIGTERM')).code).toBe(0);

        const a = expectConsistent(sub);
        // The batches of the read-only stretch were delivered, on seqs below the restart's.
        const during = windowStarts(sub).filter(
          (t) => t >= readOnlyAt + 1000 && t < readOnlyAt + 18_000,
        );
        expect(during.length).toBeGreaterThan(0);
        const reserved = a.notes.filter((n) => n.reason.split(',').includes('reserved'));
        expect(reserved, 'the restart notes the reserved seqs').toHaveLength(1);
        expect(reserved[0].firstSeq).toBeLessThanOrEqual(before + 1);
        if (signal === 'SIGTERM') {
          // The stop line and the next start's note tell the same numbers.
          const line = first.logs().find((l) => String(l.msg).includes('lost at this stop'));
          expect(line, 'the stop names what is lost').toBeDefined();
          const { count, firstSeq, lastSeq, reason } = line!;
          expect({ count, firstSeq, lastSeq, reason }).toEqual(reserved[0]);
        }
      }, 90_000);
    }
  },
);
