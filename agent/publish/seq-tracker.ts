/**
 * What a subscriber should do with each telemetry seq, per gateway: the contract is
 * at-least-once with no gaps, so a repeated seq is a duplicate to drop and a jump is a gap
 * to report. A seq that fills an earlier gap (late replay) is told apart from a duplicate.
 * A batch the broker would not take whole comes in parts (same seq, `part` i of `parts`):
 * its first part is classified like a seq, each further new part is "part", and a part seen
 * before is a duplicate — the key is (gateway, seq, part).
 */
export type SeqCheck =
  | { kind: 'first' }
  | { kind: 'next' }
  | { kind: 'gap'; from: number; to: number }
  | { kind: 'late' }
  | { kind: 'part' }
  | { kind: 'duplicate' };

/** Which part of a split batch a message is (1-based). */
export interface PartOf {
  part: number;
  parts: number;
}

/** Per gateway, at most this many missing seqs are remembered for the "late" check. */
const MAX_MISSING = 10_000;
/** At most this many split batches with parts still to come are remembered. */
const MAX_OPEN_SPLITS = 10_000;

export class SeqTracker {
  private readonly highest = new Map<string, number>();
  private readonly missing = new Map<string, Set<number>>();
  /** `gateway\nseq` → parts seen, for split batches not complete yet. */
  private readonly openSplits = new Map<string, Set<number>>();

  observe(gateway: string, seq: number, part?: PartOf): SeqCheck {
    if (!part || part.parts <= 1) return this.observeSeq(gateway, seq);
    const key = `${gateway}\n${seq}`;
    const seen = this.openSplits.get(key);
    if (seen) {
      if (seen.has(part.part)) return { kind: 'duplicate' };
      seen.add(part.part);
      if (seen.size >= part.parts) this.openSplits.delete(key);
      return { kind: 'part' };
    }
    const check = this.observeSeq(gateway, seq);
    if (check.kind !== 'duplicate') {
      if (this.openSplits.size >= MAX_OPEN_SPLITS) {
        const oldest = this.openSplits.keys().next().value;
        if (oldest !== undefined) this.openSplits.delete(oldest);
      }
      this.openSplits.set(key, new Set([part.part]));
    }
    return check;
  }

  private observeSeq(gateway: string, seq: number): SeqCheck {
    const top = this.highest.get(gateway);
    if (top === undefined) {
      this.highest.set(gateway, seq);
      return { kind: 'first' };
    }
    if (seq === top + 1) {
      this.highest.set(gateway, seq);
      return { kind: 'next' };
    }
    if (seq > top + 1) {
      this.highest.set(gateway, seq);
      const holes = this.missing.get(gateway) ?? new Set<number>();
      for (let s = top + 1; s < seq && holes.size < MAX_MISSING; s++) holes.add(s);
      this.missing.set(gateway, holes);
      return { kind: 'gap', from: top + 1, to: seq - 1 };
    }
    const holes = this.missing.get(gateway);
    if (holes?.delete(seq)) return { kind: 'late' };
    return { kind: 'duplicate' };
  }

  /** Seqs still missing for a gateway, ascending. */
  missingOf(gateway: string): number[] {
    return [...(this.missing.get(gateway) ?? [])].sort((a, b) => a - b);
  }
}
