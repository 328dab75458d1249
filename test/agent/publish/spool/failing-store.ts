/**
 * The spool's SQLite store with a switch: on command its writes fail as on a full disk
 * (ENOSPC), its open fails as on a dead card (EIO), or one write reports corruption
 * (SQLITE_CORRUPT). Everything else is the real store on a real file, so the Spool's
 * failover runs as it does on a failing disk, without a mount.
 */
import { SqliteStore } from '../../../../agent/publish/spool/sqlite-store.js';
import type {
  DeadLetter,
  DroppedRow,
  DurableStoreOptions,
  MetaEntry,
  OpenDurableStore,
  OpenResult,
  SpooledBatch,
} from '../../../../agent/publish/spool/store.js';

type Fail = 'nothing' | 'writes' | 'open' | 'corrupt-once';

function fault(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export class FailingStore extends SqliteStore {
  /** What fails from now on. */
  fail: Fail = 'nothing';
  /** Open attempts, failed ones included. */
  opens = 0;
  private readonly report: DurableStoreOptions['failed'];

  constructor(dir: string, options: DurableStoreOptions) {
    super(dir, options);
    this.report = options.failed;
  }

  override open(): OpenResult {
    this.opens++;
    if (this.fail === 'open') throw fault('EIO', 'EIO: i/o error, open spool.sqlite');
    return super.open();
  }

  override write(batches: readonly SpooledBatch[], meta?: readonly MetaEntry[]): boolean {
    if (this.failed('write')) return false;
    return super.write(batches, meta);
  }

  override drop(seq: number): DroppedRow | 'acked' | undefined {
    if (this.failed('drop')) return undefined;
    return super.drop(seq);
  }

  override setAside(
    seq: number,
    reason: string,
    at: number,
    meta?: readonly MetaEntry[],
  ): DeadLetter | 'failed' | undefined {
    if (this.failed('set aside')) return 'failed';
    return super.setAside(seq, reason, at, meta);
  }

  override recordMeta(key: string, value: number | string): void {
    if (this.failed(`write ${key}`)) return;
    super.recordMeta(key, value);
  }

  /** Reports the failure the switch calls for, as the real store would; false for none. */
  private failed(op: string): boolean {
    if (this.fail === 'writes' || this.fail === 'open') {
      this.report(fault('ENOSPC', 'database or disk is full'), op);
      return true;
    }
    if (this.fail === 'corrupt-once') {
      this.fail = 'nothing';
      this.report(fault('SQLITE_CORRUPT', 'database disk image is malformed'), op);
      return true;
    }
    return false;
  }
}

/** An `openStore` for Spool.open that makes FailingStores, starting with `fail`. */
export function failingStores(fail: Fail = 'nothing'): {
  open: OpenDurableStore;
  last(): FailingStore;
} {
  let last: FailingStore | undefined;
  return {
    open: (dir, options) => {
      last = new FailingStore(dir, options);
      last.fail = fail;
      return last;
    },
    last: () => last!,
  };
}
