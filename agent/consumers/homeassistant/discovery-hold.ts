/**
 * What the bridge does once the broker refused its discovery (an ACL that makes the discovery
 * prefix read-only for the gateway): the automatic announcements — after every connect, and
 * for stale components found on the broker — are held back, because some brokers close the
 * connection after such a refusal and announcing on every connect would make the telemetry
 * connection reconnect forever. Tries that remain: Home Assistant's birth message, the
 * `announce` command, a reload that changes the sensors, and a retry after a backoff that
 * doubles from retryMinMs up to retryMaxMs. The refusal is logged once (at warn), retries that
 * are refused again only at debug; an accepted discovery ends the hold.
 *
 * A refusal is seen in two ways: an MQTT 5 PUBACK reason code, or — under MQTT 3.1.1, where a
 * denied publish is acknowledged as if delivered — the connection closing shortly after the
 * discovery went out, on two connections in a row.
 */
import type { Logger } from '../../ops/logger.js';

/** The connection a discovery went out on: watched for a close right after it. */
export interface WatchedConnection {
  once(event: 'close', listener: () => void): unknown;
}

export interface DiscoveryHoldOptions {
  topic: string;
  logger: Logger;
  /** Asks the bridge for one announcement (the backoff retry). */
  retry(): void;
  /** The connection closed right after the discovery often enough to be taken for a refusal. */
  closedAfterDiscovery(error: string): void;
  /** First retry after a refusal (default one minute), doubling each refusal. */
  retryMinMs?: number;
  /** Longest wait between retries (default one hour). */
  retryMaxMs?: number;
  /** A close this soon after the discovery went out counts as caused by it (default 5 s). */
  closeWindowMs?: number;
}

/** Closes right after the discovery, in a row, that are taken for a refusal (MQTT 3.1.1). */
const CLOSES_FOR_REFUSAL = 2;

export class DiscoveryHold {
  private reason: string | undefined;
  private delayMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private closesInARow = 0;
  private watch = 0;
  private stopped = false;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly windowMs: number;

  constructor(private readonly options: DiscoveryHoldOptions) {
    this.minMs = options.retryMinMs ?? 60_000;
    this.maxMs = options.retryMaxMs ?? 3_600_000;
    this.windowMs = options.closeWindowMs ?? 5000;
    this.delayMs = this.minMs;
  }

  /** Whether the automatic announcements are held back. */
  get holding(): boolean {
    return this.reason !== undefined;
  }

  /**
   * The discovery went out on this connection under MQTT 3.1.1, where an acknowledgement does
   * not say the broker took it. A close within the window counts toward a refusal; a
   * connection that outlives it ends the count and the hold.
   */
  sentUnconfirmed(connection: WatchedConnection): void {
    const watch = ++this.watch;
    let closed = false;
    connection.once('close', () => {
      closed = true;
      if (watch !== this.watch || this.stopped) return;
      this.closesInARow += 1;
      if (this.closesInARow >= CLOSES_FOR_REFUSAL) {
        const error =
          'the broker closed the connection right after the discovery, ' +
          `${this.closesInARow} times in a row (under MQTT 3.1.1 a refusal shows only so)`;
        this.options.closedAfterDiscovery(error);
        this.refused(error);
      }
    });
    const lived = setTimeout(() => {
      if (closed || watch !== this.watch || this.stopped) return;
      this.closesInARow = 0;
      this.accepted();
    }, this.windowMs);
    lived.unref();
  }

  /** The broker refused the discovery: hold back, log it (once), retry after the backoff. */
  refused(error: string): void {
    if (this.stopped) return;
    const first = this.reason === undefined;
    this.reason = error;
    const retryInMs = this.delayMs;
    const fields = { topic: this.options.topic, err: error, retryInMs };
    if (first) {
      this.options.logger.warn(
        fields,
        `Home Assistant discovery refused by the broker: check that its ACL lets this gateway ` +
          `publish ${this.options.topic}. Not announced again on reconnect; tried again on ` +
          `Home Assistant's birth message, the announce command, a reload that changes ` +
          `sensors, or after retryInMs`,
      );
    } else {
      this.options.logger.debug(fields, 'Home Assistant discovery refused again');
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.options.retry();
    }, retryInMs);
    this.retryTimer.unref();
    this.delayMs = Math.min(this.delayMs * 2, this.maxMs);
  }

  /** The broker took the discovery: the hold and its backoff end. */
  accepted(): void {
    if (this.reason !== undefined) {
      this.options.logger.info(
        { topic: this.options.topic },
        'Home Assistant discovery accepted by the broker again',
      );
    }
    this.reason = undefined;
    this.delayMs = this.minMs;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }
}
