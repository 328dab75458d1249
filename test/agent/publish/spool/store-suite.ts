/**
 * The promises every spool store keeps (agent/publish/spool/store.ts), as one suite that each
 * implementation registers with its own factory (MQTT.js's abstract store test is the model).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { GapNote } from '../../../../agent/publish/spool/gap-note.js';
import type { BatchStore, SpooledBatch } from '../../../../agent/publish/spool/store.js';

export interface StoreUnderTest {
  store: BatchStore;
  /** Release whatever the store holds (files, connections). */
  dispose(): void;
}

const note: GapNote = { count: 2, firstSeq: 3, lastSeq: 4, reason: 'spool-bound' };

/** Body sizes are counted in units of this many bytes: large enough to be worth deflating. */
const U = 100;

/** A batch whose body names its seq, `size` units long. */
function batch(seq: number, size = 10, gapBefore?: GapNote): SpooledBatch {
  const body = Buffer.alloc(size * U, 0x61 + (seq % 26));
  const b: SpooledBatch = { seq, createdAt: 1_000 + seq, body };
  if (gapBefore) b.gapBefore = gapBefore;
  return b;
}

const seqsOf = (batches: readonly { seq: number }[]) => batches.map((b) => b.seq);

export function storeSuite(name: string, create: () => StoreUnderTest): void {
  describe(`${name} (shared store suite)`, () => {
    let current: StoreUnderTest | undefined;
    const open = (): BatchStore => {
      current = create();
      return current.store;
    };
    afterEach(() => {
      current?.dispose();
      current = undefined;
    });

    it('starts empty', () => {
      const store = open();
      expect([store.depth, store.bytes, store.heldBytes]).toEqual([0, 0, 0]);
      expect([store.deadLetterCount, store.deadLetterBytes]).toEqual([0, 0]);
      expect(store.read(0, 10)).toEqual([]);
      expect(store.oldest()).toBeUndefined();
      expect(store.deadLetters()).toEqual([]);
      expect(store.oldestDeadLetter()).toBeUndefined();
    });

    it('reads back what was written, in seq order, with body, createdAt and gap note', () => {
      const store = open();
      expect(store.write([batch(1), batch(2, 20)])).toBe(true);
      expect(store.write([batch(5, 30, note)])).toBe(true);
      const rows = store.read(0, 10);
      expect(seqsOf(rows)).toEqual([1, 2, 5]);
      expect(rows[1]).toEqual(batch(2, 20));
      expect(rows[2].gapBefore).toEqual(note);
      expect(rows[2].body.equals(batch(5, 30).body)).toBe(true);
      expect(rows[0].gapBefore).toBeUndefined();
      expect([store.depth, store.bytes, store.heldBytes]).toEqual([3, 60 * U, 60 * U]);
      expect(store.oldest()).toEqual({ seq: 1, createdAt: 1_001 });
    });

    it('reads after a seq, at most `limit` rows', () => {
      const store = open();
      store.write([1, 2, 3, 4, 5, 6].map((s) => batch(s)));
      expect(seqsOf(store.read(2, 3))).toEqual([3, 4, 5]);
      expect(seqsOf(store.read(5, 10))).toEqual([6]);
      expect(store.read(6, 10)).toEqual([]);
      expect(store.read(0, 0)).toEqual([]);
    });

    it('never reads an acknowledged batch again, and frees it by the next write at the latest', () => {
      const store = open();
      store.write([batch(1), batch(2), batch(3)]);
      expect(store.ack(2)).toBe(true);
      expect(seqsOf(store.read(0, 10))).toEqual([1, 3]);
      expect([store.depth, store.bytes]).toEqual([2, 20 * U]);
      expect(store.ack(2)).toBe(false);
      expect(store.ack(99)).toBe(false);
      expect(store.write([batch(4)])).toBe(true);
      expect(seqsOf(store.read(0, 10))).toEqual([1, 3, 4]);
      expect([store.depth, store.bytes, store.heldBytes]).toEqual([3, 30 * U, 30 * U]);
    });

    it('drops a row and returns what it carried; an acknowledged row is never a drop', () => {
      const store = open();
      store.write([batch(1, 10), batch(5, 25, note), batch(6)]);
      expect(store.drop(1)).toEqual({ bytes: 10 * U });
      expect(store.drop(5)).toEqual({ bytes: 25 * U, gapBefore: note });
      expect(store.drop(5)).toBeUndefined();
      expect(store.drop(42)).toBeUndefined();
      store.ack(6);
      const acked = store.drop(6);
      expect(acked === undefined || acked === 'acked').toBe(true);
      expect([store.depth, store.bytes, store.heldBytes]).toEqual([0, 0, 0]);
      expect(store.read(0, 10)).toEqual([]);
      expect(store.oldest()).toBeUndefined();
    });

    it('sets a batch aside: never read again, listed among the dead letters with its reason', () => {
      const store = open();
      store.write([batch(1), batch(2, 15), batch(3), batch(4, 5)]);
      const letter = store.setAside(2, 'too big', 7_000);
      expect(letter).toMatchObject({
        seq: 2,
        createdAt: 1_002,
        reason: 'too big',
        setAsideAt: 7_000,
      });
      expect(store.setAside(4, 'refused', 7_001)).toMatchObject({ seq: 4 });
      expect(seqsOf(store.read(0, 10))).toEqual([1, 3]);
      expect([store.depth, store.bytes]).toEqual([2, 20 * U]);
      expect([store.deadLetterCount, store.deadLetterBytes]).toEqual([2, 20 * U]);
      const letters = store.deadLetters();
      expect(seqsOf(letters)).toEqual([2, 4]);
      expect(letters[0].body.equals(batch(2, 15).body)).toBe(true);
      expect(letters[1].reason).toBe('refused');
      // Not held, or acknowledged already: nothing to set aside.
      expect(store.setAside(9, 'x', 0)).toBeUndefined();
      store.ack(3);
      expect(store.setAside(3, 'x', 0)).toBeUndefined();
      expect(seqsOf(store.deadLetters())).toEqual([2, 4]);
    });

    it('drops dead letters, oldest first by seq', () => {
      const store = open();
      store.write([batch(1), batch(2), batch(3)]);
      store.setAside(3, 'r', 1);
      store.setAside(1, 'r', 2);
      expect(store.oldestDeadLetter()).toBe(1);
      expect(store.dropDeadLetter(1)).toBe(true);
      expect(store.oldestDeadLetter()).toBe(3);
      expect(seqsOf(store.deadLetters())).toEqual([3]);
      expect([store.deadLetterCount, store.deadLetterBytes]).toEqual([1, 10 * U]);
      expect(seqsOf(store.read(0, 10))).toEqual([2]);
    });
  });
}
