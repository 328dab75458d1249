/**
 * The operator's calls of SpoolClient (`edge-agent spool` on a live agent): figures, dead
 * letters listed, requeue and drop, carried out by the real spool worker on a real SQLite
 * file while a publisher-like reader holds its cursor past the dead letters.
 */
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../agent/ops/logger.js';
import { SpoolClient } from '../../../agent/publish/spool/spool-client.js';
import { Spool } from '../../../agent/publish/spool/spool.js';
import type { SpooledBatch } from '../../../agent/publish/spool/store.js';
import { useTeardown } from '../../helpers/teardown.js';
import { waitUntil } from '../../helpers/wait.js';

const BIG = { maxBytes: 64 * 1024 * 1024, maxAgeSec: 3600 };
const body = (n: number) => Buffer.from(`batch ${n} `.repeat(20));

const t = useTeardown();
let dir: string;
beforeEach(() => {
  dir = t.tempDir('spool-operator-');
});

/** Batches 1..5, of which 2 and 4 the broker refused for good. */
async function seeded(): Promise<SpoolClient> {
  const spool = Spool.open(dir, BIG, silentLogger);
  for (let i = 1; i <= 5; i++) await spool.append(body(i), Date.now());
  expect(spool.setAside(2, 'packet too large (0x95)')).toBe(true);
  expect(spool.setAside(4, 'not authorized (0x87)')).toBe(true);
  spool.close();
  return t.own(await SpoolClient.open(dir, BIG, silentLogger));
}

/** What `peek` gives after `cursor`, waiting for the worker's reads (as the publisher pumps). */
async function readAll(spool: SpoolClient, cursor: number): Promise<SpooledBatch[]> {
  let got: SpooledBatch[] = [];
  await waitUntil(
    () => {
      got = spool.peek(cursor, 100);
      return got.length > 0 && !spool.reading;
    },
    { what: `batches after ${cursor}` },
  );
  return spool.peek(cursor, 100);
}

describe('SpoolClient: the operator’s calls', () => {
  it('figures and the dead letters, as edge-agent spool status and dead-letters show them', async () => {
    const spool = await seeded();
    expect(await spool.figures()).toMatchObject({
      path: join(dir, 'spool.sqlite'),
      depth: 3,
      bytes: body(1).length + body(3).length + body(5).length,
      oldestSeq: 1,
      lastSeq: 5,
      setAside: 2,
      deadLetters: 2,
      deadLetterBytes: body(2).length + body(4).length,
      pendingNote: { count: 2, firstSeq: 2, lastSeq: 4, reason: 'set-aside' },
      requeued: 0,
      discarded: 0,
    });
    const list = await spool.listDeadLetters(1);
    expect(list.total).toBe(2);
    expect(list.rows).toEqual([
      expect.objectContaining({ seq: 2, bytes: body(2).length, reason: 'packet too large (0x95)' }),
    ]);
    expect(Date.parse(list.rows[0]!.setAsideAt)).toBeGreaterThan(0);
  });

  it('requeue puts a dead letter back under its own seq below the reader’s cursor: rewound, handed out again, counted', async () => {
    const spool = await seeded();
    // The publisher has handed out everything: its cursor is past the dead letters.
    expect((await readAll(spool, 0)).map((b) => b.seq)).toEqual([1, 3, 5]);
    const rewinds: number[] = [];
    spool.onRewind((from) => rewinds.push(from));

    expect(await spool.changeDeadLetters('requeue', { seqs: [2] })).toEqual({
      ok: true,
      seqs: [2],
    });
    await waitUntil(() => rewinds.length > 0, { what: 'the rewind' });
    expect(rewinds).toEqual([2]);
    // As the publisher does on a rewind: read again from below the requeued seq.
    const again = await readAll(spool, 1);
    expect(again.map((b) => b.seq)).toEqual([2, 3, 5]);
    expect(again[0]!.body.equals(body(2))).toBe(true);
    expect(await spool.figures()).toMatchObject({ depth: 4, deadLetters: 1, requeued: 1 });
    // New batches go on after the last seq.
    expect(await spool.append(body(6), Date.now())).toBe(6);
  });

  it('a seq that is not a dead letter changes nothing; drop --all deletes them, counted, kept across a reopen', async () => {
    let spool = await seeded();
    expect(await spool.changeDeadLetters('requeue', { seqs: [2, 3, 99] })).toEqual({
      ok: false,
      missing: [3, 99],
      deadLetters: [2, 4],
    });
    expect(await spool.figures()).toMatchObject({ deadLetters: 2, requeued: 0, depth: 3 });
    expect(await spool.changeDeadLetters('drop', { all: true })).toEqual({
      ok: true,
      seqs: [2, 4],
    });
    expect(await spool.changeDeadLetters('drop', { all: true })).toEqual({ ok: true, seqs: [] });
    expect(await spool.figures()).toMatchObject({ deadLetters: 0, discarded: 2, depth: 3 });
    await spool.close();
    spool = t.own(await SpoolClient.open(dir, BIG, silentLogger));
    expect(await spool.figures()).toMatchObject({ deadLetters: 0, discarded: 2, setAside: 2 });
    expect((await spool.listDeadLetters(10)).rows).toEqual([]);
  });

  it('a call made while the spool closes is rejected, not left hanging', async () => {
    const spool = await seeded();
    const closing = spool.close();
    await expect(spool.figures()).rejects.toThrow(/closing/);
    await closing;
  });
});
