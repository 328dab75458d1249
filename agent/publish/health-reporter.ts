/**
 * Periodic health on `<prefix>/<gateway>/health`, scheduled with node-cron (config
 * health.schedule). The integrator supplies the counters through a provider callback
 * (readings, drops, spool depth and bytes, faults per sensor, event-loop delay,
 * reconnects, oldest unsent batch age); a throwing provider is logged, never fatal.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from '../ops/logger.js';

export interface HealthSink {
  publishHealth(report: object): boolean;
}

export class HealthReporter {
  private task: ScheduledTask | undefined;
  private skipped = 0;

  constructor(
    private readonly schedule: string,
    private readonly provider: () => object,
    private readonly sink: HealthSink,
    private readonly logger: Logger,
  ) {
    if (!cron.validate(schedule)) {
      throw new Error(`health.schedule: not a valid cron expression: "${schedule}"`);
    }
  }

  start(): void {
    if (this.task) return;
    this.task = cron.schedule(this.schedule, () => this.report(), {
      name: 'health',
      noOverlap: true,
    });
  }

  /** Build and publish one report now; false when it could not be sent (offline). */
  report(): boolean {
    let report: object;
    try {
      report = this.provider();
    } catch (err) {
      this.logger.error({ err }, 'health provider failed');
      return false;
    }
    const sent = this.sink.publishHealth({ ...report, healthSkipped: this.skipped });
    if (!sent) this.skipped++;
    return sent;
  }

  async stop(): Promise<void> {
    const task = this.task;
    this.task = undefined;
    if (task) await task.destroy();
  }
}
