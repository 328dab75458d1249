/**
 * Keeps `<prefix>/<gw>/config/state` (retained) equal to the latest state: published at once
 * when connected, else retried every second until the broker acknowledges it; a newer state
 * replaces one still waiting.
 */
import type { Logger } from '../ops/logger.js';
import type { ConfigState } from './config-store.js';

const RETRY_MS = 1000;

export interface RetainedSink {
  publishRetained(topic: string, payload: string): Promise<boolean>;
}

export class StateAnnouncer {
  private pending: { topic: string; state: ConfigState } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sending = false;
  private stopped = false;

  constructor(
    private readonly sink: () => RetainedSink,
    private readonly logger: Logger,
  ) {}

  announce(topic: string, state: ConfigState): void {
    this.pending = { topic, state };
    void this.attempt();
  }

  private async attempt(): Promise<void> {
    if (this.sending || this.stopped || !this.pending) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const sent = this.pending;
    this.sending = true;
    let ok = false;
    try {
      ok = await this.sink().publishRetained(sent.topic, JSON.stringify(sent.state));
    } catch (err) {
      this.logger.debug({ err }, 'config state not published yet');
    } finally {
      this.sending = false;
    }
    if (ok && this.pending === sent) this.pending = undefined;
    if (this.pending && !this.stopped) {
      this.timer = setTimeout(() => void this.attempt(), ok ? 0 : RETRY_MS);
      this.timer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
