/**
 * Periodic health on `<prefix>/<gateway>/health`, on the config's health.schedule (a
 * node-cron expression; agent/publish/health-schedule.ts runs it). The integrator builds the
 * report (agent/publish/health.ts) through a provider callback; a throwing provider is
 * logged, never fatal. Reports that could not be sent (offline) are counted in `skipped`,
 * which the provider puts in the next report.
 */
import type { Logger } from '../ops/logger.js';
import { nodeCron } from '../sampling/node-cron.js';
import type { HealthReport } from './health.js';
import { fixedPeriodMs, startHealthSchedule, type HealthSchedule } from './health-schedule.js';

export interface HealthSink {
  publishHealth(report: HealthReport): boolean;
}

export class HealthReporter {
  private task: HealthSchedule | undefined;
  private notSent = 0;

  constructor(
    private readonly schedule: string,
    private readonly provider: () => HealthReport,
    private readonly sink: HealthSink,
    private readonly logger: Logger,
  ) {
    if (fixedPeriodMs(schedule) === undefined && !nodeCron().validate(schedule)) {
      throw new Error(`health.schedule: not a valid cron expression: "${schedule}"`);
    }
  }

  /** Reports that could not be sent because the agent was offline, ever. */
  get skipped(): number {
    return this.notSent;
  }

  start(): void {
    if (this.task) return;
    this.task = startHealthSchedule(this.schedule, () => void this.report());
  }

  /** Build and publish one report now; false when it could not be sent (offline). */
  report(): boolean {
    let report: HealthReport;
    try {
      report = this.provider();
    } catch (err) {
      this.logger.error({ err }, 'health provider failed');
      return false;
    }
    const sent = this.sink.publishHealth(report);
    if (!sent) this.notSent++;
    return sent;
  }

  async stop(): Promise<void> {
    const task = this.task;
    this.task = undefined;
    if (task) await task.stop();
  }
}
