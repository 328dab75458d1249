/**
 * The operational extras around a running pipeline: the periodic health report, the
 * systemd watchdog and status line, and the Prometheus metrics endpoint. None of them is on
 * the data path; start() runs once the pipeline samples, stop() after it has drained.
 */
import type { Config } from '../config/schema.js';
import { HealthReporter, type HealthSink } from '../publish/health-reporter.js';
import type { HealthReport } from '../publish/health.js';
import type { Logger } from './logger.js';
import type { SystemdNotifier } from './sd-notify.js';
import { progressCheck, startWatchdog, type HealthCheck } from './watchdog.js';

/** What the extras read from the pipeline they watch. */
export interface OperatedPipeline {
  health(): HealthReport;
  statusLine(): string;
  /** The aggregation worker drains the ring. */
  workerDraining(): boolean;
  /** Completed rounds, ever increasing (Sampler.progress()). */
  samplingProgress(): number;
  /** Sensors being sampled now (a reload may leave none). */
  sampledSensors(): number;
}

export interface OperationsOptions {
  config: Config;
  logger: Logger;
  notifier: SystemdNotifier;
  /** Where health reports go (the publisher). */
  sink: HealthSink;
  /** Intervals of the interval-scheduled sensors at start: the watchdog's progress bound. */
  intervalsMs: readonly number[];
  pipeline: OperatedPipeline;
}

/** How often the systemd status line is refreshed (ms). */
const STATUS_EVERY_MS = 5_000;

export class Operations {
  private readonly reporter: HealthReporter;
  private readonly closers: Array<() => Promise<void> | void> = [];

  constructor(private readonly opts: OperationsOptions) {
    this.reporter = new HealthReporter(
      opts.config.health.schedule,
      () => opts.pipeline.health(),
      opts.sink,
      opts.logger,
    );
  }

  /** Health reports that could not be sent (offline), ever. */
  get healthSkipped(): number {
    return this.reporter.skipped;
  }

  /** Start every extra and tell systemd the agent is ready; throws when the metrics port is taken. */
  async start(): Promise<void> {
    const { config, logger, notifier, pipeline } = this.opts;
    this.reporter.start();
    this.closers.push(() => this.reporter.stop());

    const watchdogMs = notifier.watchdogIntervalMs();
    if (watchdogMs !== undefined) {
      const wd = startWatchdog({ notifier, intervalMs: watchdogMs, logger, checks: this.checks() });
      this.closers.push(() => wd.stop());
    }

    if (config.metrics.enabled) {
      // Loaded only here: prom-client is not needed with metrics off (the default).
      const { startMetricsServer } = await import('./metrics.js');
      const metrics = await startMetricsServer({
        host: config.metrics.host,
        port: config.metrics.port,
        collect: () => pipeline.health(),
      });
      logger.info({ port: metrics.port, host: config.metrics.host }, 'metrics endpoint listening');
      this.closers.push(() => metrics.close());
    }

    const statusTimer = setInterval(() => notifier.status(pipeline.statusLine()), STATUS_EVERY_MS);
    statusTimer.unref();
    this.closers.push(() => clearInterval(statusTimer));
    notifier.status(pipeline.statusLine());
    notifier.ready();
    this.closers.push(() => notifier.close());
  }

  /** Stop what start() started, last started first. */
  async stop(): Promise<void> {
    for (const close of this.closers.splice(0).reverse()) await close();
  }

  private checks(): HealthCheck[] {
    const { pipeline, intervalsMs } = this.opts;
    const checks: HealthCheck[] = [
      { name: 'aggregation worker draining the ring', healthy: () => pipeline.workerDraining() },
    ];
    // Progress is only expected from interval sensors, and no sooner than three of the
    // slowest one's intervals (cron-scheduled sensors may legitimately be quiet for hours).
    if (intervalsMs.length > 0) {
      const progress = progressCheck(
        'sampling progressing',
        () => pipeline.samplingProgress(),
        Math.max(30_000, 3 * Math.max(...intervalsMs)),
      );
      // A reload may leave no sensors at all: nothing to progress then.
      checks.push({
        name: progress.name,
        healthy: () => pipeline.sampledSensors() === 0 || progress.healthy(),
      });
    }
    return checks;
  }
}
