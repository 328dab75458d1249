/**
 * What a subscriber should do with each telemetry seq, per gateway: the contract is
 * at-least-once with no gaps, so a repeated seq is a duplicate to drop and a jump is a gap
 * to report. A seq that fills an earlier gap (late replay) is told apart from a duplicate.
 */
export type SeqCheck =
  | { kind: 'first' }
  | { kind: 'next' }
  | { kind: 'gap'; from: number; to: number }
  | { kind: 'late' }
  | { kind: 'duplicate' };

/** Per gateway, at most this many missing seqs are remembered for the "late" check. */
const MAX_MISSING = 10_000;

export class SeqTracker {
  private readonly highest = new Map<string, number>();
  private readonly missing = new Map<string, Set<number>>();

  observe(gateway: string, seq: number): SeqCheck {
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
