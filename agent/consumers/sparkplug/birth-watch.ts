/**
 * Whether the broker keeps a Sparkplug session after its NBIRTH. NBIRTH is QoS 0, never
 * acknowledged, so it alone does not restart the reconnect backoff: a session that stays up
 * settleMs after its NBIRTH does. A broker that closes the connection right after each NBIRTH
 * (an ACL denying the gateway `spBv1.0/…`, on a broker that closes after a denied publish)
 * thus meets a growing backoff instead of a reconnect every half second, and is named once in
 * the log, with the likely cause.
 */
import type { Logger } from '../../ops/logger.js';

export interface BirthWatchOptions {
  /** The NBIRTH topic, for the log. */
  topic: string;
  logger: Logger;
  /** The session outlived its NBIRTH: the reconnect backoff starts over. */
  settled(): void;
  /** The closes right after NBIRTH were taken for a refusal: the error for health. */
  refused(error: string): void;
  /** How long a session must stay up after its NBIRTH (default 5 s). */
  settleMs?: number;
}

/** Closes right after NBIRTH, in a row, that are logged as a likely refusal. */
const CLOSES_FOR_REFUSAL = 2;

export class BirthWatch {
  private timer: NodeJS.Timeout | undefined;
  private closesInARow = 0;
  private warned = false;

  constructor(private readonly options: BirthWatchOptions) {}

  /** An NBIRTH was published on the current connection. */
  born(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.closesInARow = 0;
      this.warned = false;
      this.options.settled();
    }, this.options.settleMs ?? 5000);
    this.timer.unref();
  }

  /** The connection closed: right after an NBIRTH it counts toward a refusal. */
  closed(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.closesInARow += 1;
    if (this.closesInARow < CLOSES_FOR_REFUSAL || this.warned) return;
    this.warned = true;
    const error =
      `the broker closed the Sparkplug connection right after the NBIRTH, ` +
      `${this.closesInARow} times in a row`;
    this.options.refused(error);
    this.options.logger.warn(
      { topic: this.options.topic, closesInARow: this.closesInARow },
      `sparkplug: ${error}: check that its ACL lets this gateway publish ${this.options.topic} ` +
        `and the other spBv1.0 topics of this node. Reconnecting with a growing backoff`,
    );
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
