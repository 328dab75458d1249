/**
 * Batches waiting for a seq, oldest first: numbering is unknown (neither the database nor the
 * mark can be read), or the reserved seqs are used up while neither can be written. They take
 * seqs in arrival order once seqs can be given; the Spool bounds them with the memory store.
 */
export interface WaitingBatch {
  body: Buffer;
  createdAt: number;
  resolve: (seq: number) => void;
}

export class WaitingForSeq {
  private list: WaitingBatch[] = [];
  private total = 0;

  get length(): number {
    return this.list.length;
  }
  /** Their payload bytes. */
  get bytes(): number {
    return this.total;
  }
  first(): WaitingBatch | undefined {
    return this.list[0];
  }

  push(batch: WaitingBatch): void {
    this.list.push(batch);
    this.total += batch.body.length;
  }

  /** Take the oldest. */
  shift(): WaitingBatch | undefined {
    const batch = this.list.shift();
    if (batch) this.total -= batch.body.length;
    return batch;
  }

  /** Forget them all (lost at close). */
  clear(): void {
    this.list = [];
    this.total = 0;
  }
}
