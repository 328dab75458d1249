/**
 * SpoolClient: the Spool in its own worker thread, used through the same calls as the Spool
 * itself. These tests run the real worker (spool-thread.ts) on a real SQLite file.
 */
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../agent/ops/logger.js';
import { READ_AHEAD_BATCHES, SpoolClient } from '../../../agent/publish/spool/spool-client.js';
import { Spool, SpoolInUseError } from '../../../agent/publish/spool/spool.js';
import type { SpoolPort } from '../../../agent/publish/spool/spool-port.js';
import type { SpooledBatch } from '../../../agent/publish/spool/store.js';
import { useTeardown } from '../../helpers/teardown.js';
import { waitUntil } from '../../helpers/wait.js';
import { capturingLogger } from '../../helpers/logger.js';

const BIG = { maxBytes: 64 * 1024 * 1024, maxAgeSec: 3600 };
const body = (n: number) => Buffer.from(`batch ${n} `.repeat(20));

const t = useTeardown();
let dir: string;
beforeEach(() => {
  dir = t.tempDir('spool-client-');
});

async function open(logger = silentLogger): Promise<SpoolClient> {
  return t.own(await SpoolClient.open(dir, BIG, logger));
}

/**
 * What a publisher does: on every onCommitted, take what peek gives after the cursor (and
 * acknowledge it, unless `ack` is false), and go on, until `count` batches were taken.
 */
function drain(spool: SpoolPort, count: number, ack = true): Promise<SpooledBatch[]> {
  const taken: SpooledBatch[] = [];
  let cursor = 0;
  return new Promise((resolve) => {
    const pump = () => {
      while (taken.length < count) {
        const batches = spool.peek(cursor, Math.min(8, count - taken.length));
        if (batches.length === 0) break;
        for (const b of batches) {
          cursor = b.seq;
          taken.push(b);
          if (ack) spool.ack(b.seq);
        }
      }
      if (taken.length >= count) {
        off();
        resolve(taken);
      }
    };
    const off = spool.onCommitted(pump);
    pump();
  });
}

describe('SpoolClient (the spool in its worker thread)', () => {
  it('numbers batches 1, 2, 3… and hands them out in order with their bytes, until acknowledged', async () => {
    const spool = await open();
    const t0 = Date.now();
    const seqs = await Promise.all([0, 1, 2].map((i) => spool.append(body(i), t0 + i)));
    expect(seqs).toEqual([1, 2, 3]);
    const taken = await drain(spool, 3);
    expect(taken.map((b) => b.seq)).toEqual([1, 2, 3]);
    expect(taken.map((b) => b.createdAt)).toEqual([t0, t0 + 1, t0 + 2]);
    taken.forEach((b, i) => expect(b.body.equals(body(i))).toBe(true));
    await waitUntil(() => spool.stats().depth === 0, { what: 'acks reach the worker' });
    expect(spool.stats()).toMatchObject({ lastSeq: 3, depth: 0, diskOk: true });
  });

  it('hands out a backlog larger than one read, in order, none twice, and all again when read from the start (a replay)', async () => {
    const spool = await open();
    const n = READ_AHEAD_BATCHES * 2 + 7;
    await Promise.all(Array.from({ length: n }, (_, i) => spool.append(body(i), Date.now())));
    // A publisher whose broker never acknowledges: everything is handed out once.
    const seen = (await drain(spool, n, false)).map((b) => b.seq);
    expect(seen).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    // Reconnect: the publisher starts over from cursor 0 and gets the same batches again.
    const again = await drain(spool, n);
    expect(again.map((b) => b.seq)).toEqual(seen);
  });

  it('counts appends on their way to the worker in depth, so a drain never stops early', async () => {
    const spool = await open();
    const appended = spool.append(body(1), Date.now());
    expect(spool.stats().depth).toBe(1);
    await appended;
    expect(spool.stats().depth).toBe(1);
  });

  it('keeps numbering across a close and a reopen, and stored batches are handed out again', async () => {
    let spool = await open();
    await Promise.all([1, 2, 3, 4].map((i) => spool.append(body(i), Date.now())));
    expect((await drain(spool, 2)).map((b) => b.seq)).toEqual([1, 2]);
    // Only what was acknowledged leaves; close commits the acks.
    await spool.close();
    spool = await open();
    expect((await drain(spool, 2)).map((b) => b.seq)).toEqual([3, 4]);
    expect(await spool.append(body(5), Date.now())).toBe(5);
  });

  it('refuses a state dir another spool holds, naming it', async () => {
    await open();
    await expect(SpoolClient.open(dir, BIG, silentLogger)).rejects.toThrow(SpoolInUseError);
    await expect(SpoolClient.open(dir, BIG, silentLogger)).rejects.toThrow(/in use/);
  });

  it('sets a batch aside in the worker: the next ones flow, and the dead letter is kept on disk', async () => {
    const spool = await open();
    await Promise.all([1, 2, 3].map((i) => spool.append(body(i), Date.now())));
    expect((await drain(spool, 3, false)).map((b) => b.seq)).toEqual([1, 2, 3]);
    spool.ack(1);
    // Seq 2 was handed out: set it aside instead of publishing it.
    expect(spool.setAside(2, 'too large')).toBe(true);
    expect(spool.peek(1, 2).map((b) => b.seq)).toEqual([3]);
    // Not in the window (acknowledged already): refused, as by the Spool.
    expect(spool.setAside(1, 'too large')).toBe(false);
    await spool.close();
    const direct = Spool.open(dir, BIG, silentLogger);
    try {
      expect(direct.deadLetters().map((d) => [d.seq, d.reason])).toEqual([[2, 'too large']]);
      expect(direct.peek(0, 10).map((b) => b.seq)).toEqual([3]);
    } finally {
      direct.close();
    }
  });

  it("writes the worker's log lines through the main thread's logger", async () => {
    const { logger, records } = capturingLogger();
    await open(logger);
    expect(records.find((r) => r.msg === 'spool opened')).toMatchObject({
      path: join(dir, 'spool.sqlite'),
      lastSeq: 0,
    });
  });
});
