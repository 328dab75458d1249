/**
 * Seq recovery at open as a pure function: what the database, the mark and a salvage say in,
 * numbering, drops and log lines out. The Spool-level tests (spool-disk.test.ts, the chaos
 * disk tests) check the same rules on real files.
 */
import { describe, expect, it } from 'vitest';
import { planRecovery, type RecoveryInput } from '../../../../agent/publish/spool/recovery.js';
import { EMPTY_MARK, type SeqMark } from '../../../../agent/publish/spool/seq-mark.js';

/** A database that last stored `lastSeq`, read with `mark`, by a process that numbered nothing yet. */
function input(
  lastSeq: number,
  mark: Partial<SeqMark>,
  over: Partial<RecoveryInput> = {},
): RecoveryInput {
  return {
    path: '/state/spool.sqlite',
    now: 1_700_000_000_000,
    fresh: false,
    meta: { lastSeq, dropped: 0, setAside: 0, deadLettersDropped: 0, corruptMoved: 0 },
    maxSeq: lastSeq > 0 ? lastSeq : null,
    mark: { ...EMPTY_MARK, ...mark },
    markRead: true,
    ackedNow: [],
    salvagedSeqs: [],
    numbering: { numbered: false, lastSeq: 0, storedSeq: 0 },
    counts: { dropped: 0, setAside: 0, deadLettersDropped: 0, corruptMoved: 0 },
    ...over,
  };
}

describe('planRecovery', () => {
  it('a clean stop: numbering continues right after the last stored seq, nothing noted or logged', () => {
    const plan = planRecovery(input(10, { ceiling: 10, stored: 10 }));
    expect(plan.numbering).toEqual({ numbered: true, lastSeq: 10, storedSeq: 10 });
    expect(plan.counts.dropped).toBe(0);
    expect(plan.counts.pendingGap).toBeUndefined();
    expect(plan.logs).toEqual([]);
    expect(plan.meta).toContainEqual(['last_seq', 10]);
    expect(plan.next).toBe(11);
  });

  it('an unclean stop: the reserved seqs are skipped and counted, less those the mark settled', () => {
    const plan = planRecovery(input(10, { ceiling: 74, stored: 10, revealedCounted: 4 }));
    const note = { count: 60, firstSeq: 11, lastSeq: 74, reason: 'reserved' };
    expect(plan.numbering.lastSeq).toBe(74);
    expect(plan.counts).toMatchObject({ dropped: 60, lastDrop: note, pendingGap: note });
    expect(plan.meta).toContainEqual(['pending_gap', JSON.stringify(note)]);
    expect(plan.logs).toMatchObject([{ level: 'warn', fields: note }]);
  });

  it('a database lost while the mark shows batches: every unsettled seq up to the ceiling is lost', () => {
    const plan = planRecovery(
      input(0, { ceiling: 74, stored: 9, unsentFrom: 6, dropped: 2 }, { fresh: true }),
    );
    expect(plan.numbering.lastSeq).toBe(74);
    expect(plan.counts.pendingGap).toEqual({
      count: 69,
      firstSeq: 6,
      lastSeq: 74,
      reason: 'database-lost',
    });
    // The mark's count of earlier drops is kept, the loss added to it.
    expect(plan.counts.dropped).toBe(2 + 69);
    expect(plan.logs[0]).toMatchObject({ level: 'error', fields: { continuesAfter: 74 } });
    expect(plan.logs[0].msg).toMatch(/^SPOOL DATABASE MISSING OR EMPTY/);
  });

  it('a salvage: rows read back and seqs acknowledged this run are not lost', () => {
    const salvaged = {
      rows: [],
      lastSeq: 8,
      dropped: 1,
      setAside: 1,
      unsentFrom: 3,
      deadLetterSeqs: [4],
      damaged: 0,
      walIgnored: false,
      movedTo: '/state/spool.sqlite.corrupt-x',
    };
    const plan = planRecovery(
      input(
        0,
        { ceiling: 8, stored: 8 },
        { fresh: true, maxSeq: 8, salvaged, salvagedSeqs: [3, 6, 7, 8], ackedNow: [5] },
      ),
    );
    expect(plan.counts.pendingGap).toBeUndefined();
    expect(plan.counts).toMatchObject({ dropped: 1, setAside: 1, corruptMoved: 1 });
    expect(plan.logs[0].msg).toMatch(/^SPOOL DATABASE CORRUPT/);
  });

  it('numbered from the mark while the database was unavailable: the seqs skipped meanwhile are noted', () => {
    const plan = planRecovery(
      input(
        10,
        { ceiling: 140, stored: 10 },
        {
          numbering: { numbered: true, lastSeq: 81, storedSeq: 10, numberedFrom: 75 },
          memoryFirst: 75,
        },
      ),
    );
    expect(plan.counts.pendingGap).toEqual({
      count: 64,
      firstSeq: 11,
      lastSeq: 74,
      reason: 'skipped-while-unavailable',
    });
    // The memory batches (75..81) keep their seqs; the database records up to the gap.
    expect(plan.numbering).toEqual({ numbered: true, lastSeq: 81, storedSeq: 74 });
  });

  it('is pure: the input counts and numbering are not changed', () => {
    const given = input(10, { ceiling: 74, stored: 10 });
    const before = JSON.stringify(given);
    planRecovery(given);
    expect(JSON.stringify(given)).toBe(before);
  });
});
