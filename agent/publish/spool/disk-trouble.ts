/**
 * How the spool tells the operator about a failing disk: the first failure once, as one
 * line with its cause (code and message, never a stack); repeats at most once per
 * REPEAT_MS with how many failures there were since; the recovery once.
 */
import type { Logger } from '../../ops/logger.js';

export const REPEAT_MS = 60_000;

/** `{ code, error }` of a thrown value: what an operator can act on, without the stack. */
export function causeOf(err: unknown): { code: string; error: string } {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : 'UNKNOWN';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return { code, error: message.split('\n')[0] };
}

export class DiskTrouble {
  private failingSince: number | undefined;
  private lastLogged = 0;
  private failures = 0;

  constructor(
    private readonly logger: Logger,
    private readonly what: string,
    private readonly now: () => number = Date.now,
  ) {}

  get failing(): boolean {
    return this.failingSince !== undefined;
  }

  /** A failure: logged with `message` the first time, then rate-limited. */
  failed(err: unknown, fields: Record<string, unknown>, message: string): void {
    const t = this.now();
    this.failures++;
    if (this.failingSince === undefined) {
      this.failingSince = t;
      this.lastLogged = t;
      this.failures = 1;
      this.logger.error({ ...fields, ...causeOf(err) }, message);
      return;
    }
    if (t - this.lastLogged >= REPEAT_MS) {
      this.lastLogged = t;
      this.logger.warn(
        { ...fields, ...causeOf(err), failures: this.failures, sinceMs: t - this.failingSince },
        `${this.what} still failing`,
      );
    }
  }

  /** Works again: logged once. */
  recovered(fields: Record<string, unknown>, message: string): void {
    if (this.failingSince === undefined) return;
    this.logger.warn(
      { ...fields, failures: this.failures, downMs: this.now() - this.failingSince },
      message,
    );
    this.failingSince = undefined;
    this.failures = 0;
  }
}
