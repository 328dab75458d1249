/**
 * The assembled agent: sampler → ring → aggregation worker → spool → MQTT publisher, plus
 * health, watchdog and metrics. `run` and `simulate` differ only in the seams they pass and
 * in who owns the broker; everything here is the same code on hardware and in the simulator.
 */
import { performance } from 'node:perf_hooks';
import type { Config, SensorConfig } from './config/schema.js';
import type { Logger } from './ops/logger.js';
import { RingBuffer } from './queue/ring-buffer.js';
import { AggregationWorker, type AggregatorOptions } from './aggregation/aggregation-worker.js';
import type { SensorSpec } from './aggregation/aggregator.js';
import { Spool } from './publish/spool.js';
import { TelemetryPublisher } from './publish/publisher.js';
import { HealthReporter } from './publish/health-reporter.js';
import { healthReport, type HealthReport } from './publish/health.js';
import { Sampler, type SampledSensor } from './sampling/sampler.js';
import { startEventLoopMonitor } from './sampling/event-loop.js';
import { SystemdNotifier } from './ops/sd-notify.js';
import { startWatchdog, progressCheck } from './ops/watchdog.js';
import { createDriver, temperatureRangeOf, touchI2CAddresses } from '../drivers/registry.js';
import type { Seams } from '../drivers/seams.js';
import { quantityCode, type Quantity, type Reading } from '../drivers/types.js';
import { AGENT_VERSION } from './version.js';

export interface PipelineOptions {
  config: Config;
  seams: Seams;
  stateDir: string;
  logger: Logger;
  notifier?: SystemdNotifier;
}

/** Default bound for SIGTERM: publish what we can within this, then disconnect. */
export const DEFAULT_DRAIN_MS = 10_000;

export class Pipeline {
  private sensorIndex = new Map<string, number>();
  private nextIndex = 0;
  private readonly startedAt = Date.now();
  private stopping: Promise<void> | undefined;

  private constructor(
    private config: Config,
    private readonly opts: PipelineOptions,
    private readonly ring: RingBuffer,
    private readonly worker: AggregationWorker,
    private readonly spool: Spool,
    private readonly publisher: TelemetryPublisher,
    private readonly sampler: Sampler,
    private readonly loop: ReturnType<typeof startEventLoopMonitor>,
    private readonly closers: Array<() => Promise<void> | void>,
  ) {}

  static async start(opts: PipelineOptions): Promise<Pipeline> {
    const { config, logger } = opts;
    const notifier = opts.notifier ?? SystemdNotifier.fromEnv(process.env, logger);
    const closers: Array<() => Promise<void> | void> = [];
    const enabled = config.sensors.filter((s) => s.enabled);

    const ring = RingBuffer.create(config.buffer.capacity, config.buffer.overflow);
    const spool = Spool.open(opts.stateDir, config.spool, logger);
    const publisher = new TelemetryPublisher({
      gateway: config.gateway.id,
      mqtt: config.mqtt,
      spool,
      logger,
      status: { version: AGENT_VERSION, startedAt: Date.now(), sensors: enabled.map((s) => s.id) },
    });
    try {
      // First, so an unreadable password or TLS file fails before any thread is started.
      publisher.start();
    } catch (err) {
      spool.close();
      throw err;
    }

    // Indices are stable for the life of the process so a reload never renumbers a series.
    const indexOf = new Map<string, number>();
    enabled.forEach((s, i) => indexOf.set(s.id, i));
    await touchI2CAddresses(enabled, opts.seams, logger);
    const sampled = enabled.map((s) => sampledSensor(s, indexOf.get(s.id)!, config, opts.seams));
    // The drivers know their quantities, so every series has windows from the start.
    const worker = AggregationWorker.start(
      workerOptions(config, ring, enabled, quantitiesById(sampled)),
    );
    worker.onBatch((batch) => {
      publisher.submit(batch.body);
    });
    worker.onError((err) => logger.error({ err }, 'aggregation worker failed; restarting it'));

    const emit = emitter(ring, config.buffer.overflow);
    const sampler = new Sampler({
      sensors: sampled,
      emit,
      logger,
      alignToWallClock: config.sampling.alignToWallClock,
      startSpreadMs: config.sampling.startSpreadMs,
    });
    const loop = startEventLoopMonitor();
    const pipeline = new Pipeline(
      config,
      opts,
      ring,
      worker,
      spool,
      publisher,
      sampler,
      loop,
      closers,
    );
    pipeline.sensorIndex = indexOf;
    pipeline.nextIndex = enabled.length;

    sampler.start();

    const health = new HealthReporter(
      config.health.schedule,
      () => pipeline.health(),
      publisher,
      logger,
    );
    pipeline.reporter = health;
    health.start();
    closers.push(() => health.stop());

    const watchdogMs = notifier.watchdogIntervalMs();
    if (watchdogMs !== undefined) {
      const checks = [
        { name: 'aggregation worker draining the ring', healthy: () => worker.isDraining() },
      ];
      // Progress is only expected from interval sensors, and no sooner than three of the
      // slowest one's intervals (cron-scheduled sensors may legitimately be quiet for hours).
      const intervals = sampled.flatMap((s) => (s.intervalMs !== undefined ? [s.intervalMs] : []));
      if (intervals.length > 0) {
        const progress = progressCheck(
          'sampling progressing',
          () => sampler.progress(),
          Math.max(30_000, 3 * Math.max(...intervals)),
        );
        // A reload may leave no sensors at all: nothing to progress then.
        checks.push({
          name: progress.name,
          healthy: () => sampler.health().length === 0 || progress.healthy(),
        });
      }
      const wd = startWatchdog({ notifier, intervalMs: watchdogMs, logger, checks });
      closers.push(() => wd.stop());
    }

    if (config.metrics.enabled) {
      // Loaded only here: prom-client is not needed with metrics off (the default).
      const { startMetricsServer } = await import('./ops/metrics.js');
      const metrics = await startMetricsServer({
        host: config.metrics.host,
        port: config.metrics.port,
        collect: () => pipeline.metrics(),
      }).catch(async (err: unknown) => {
        // A port in use must not leave a half-started agent running behind the error.
        await pipeline.stop(0);
        throw err;
      });
      logger.info({ port: metrics.port, host: config.metrics.host }, 'metrics endpoint listening');
      closers.push(() => metrics.close());
    }

    const statusTimer = setInterval(() => notifier.status(pipeline.statusLine()), 5_000);
    statusTimer.unref();
    closers.push(() => clearInterval(statusTimer));
    notifier.status(pipeline.statusLine());
    notifier.ready();
    closers.push(() => notifier.close());
    pipeline.notifier = notifier;
    logger.info(
      {
        sensors: enabled.map((s) => ({ id: s.id, driver: s.driver })),
        gateway: config.gateway.id,
        stateDir: opts.stateDir,
      },
      'pipeline running',
    );
    return pipeline;
  }

  private notifier: SystemdNotifier | undefined;
  private reporter: HealthReporter | undefined;

  /** SIGHUP: apply a new, already validated config's sensors without restarting the pipeline. */
  async reload(next: Config): Promise<void> {
    const { logger, seams } = this.opts;
    this.notifier?.reloading();
    const enabled = next.sensors.filter((s) => s.enabled);
    for (const s of enabled) {
      if (!this.sensorIndex.has(s.id)) this.sensorIndex.set(s.id, this.nextIndex++);
    }
    const all = [...this.sensorIndex.entries()].sort((a, b) => a[1] - b[1]);
    const byId = new Map(enabled.map((s) => [s.id, s]));
    await touchI2CAddresses(enabled, seams, logger);
    const sampled = enabled.map((s) => sampledSensor(s, this.sensorIndex.get(s.id)!, next, seams));
    const quantities = quantitiesById(sampled);
    // The worker must know a new sensor before its first reading arrives.
    await this.worker.updateSensors(
      all.map(([id]) => {
        const s = byId.get(id);
        return s ? sensorSpec(s, quantities) : { id, driver: 'removed' };
      }),
    );
    await this.sampler.replace(sampled);
    this.config = next;
    logger.info({ sensors: enabled.map((s) => s.id) }, 'configuration reloaded');
    this.notifier?.ready();
  }

  /** SIGTERM: stop sampling, close windows, spool them, publish within drainMs, disconnect. */
  stop(drainMs = DEFAULT_DRAIN_MS): Promise<void> {
    this.stopping ??= (async () => {
      const { logger } = this.opts;
      const deadline = performance.now() + drainMs;
      this.notifier?.stopping();
      await this.sampler.stop();
      await this.worker.flush();
      await this.publisher.stop({ drainMs: Math.max(0, deadline - performance.now()) });
      await this.worker.stop();
      this.loop.stop();
      for (const close of this.closers.reverse()) await close();
      this.spool.close();
      const ring = this.ring.counters();
      logger.info({ readings: ring.written, dropped: ring.dropped }, 'pipeline stopped');
    })();
    return this.stopping;
  }

  statusLine(): string {
    const sensors = this.sampler.health();
    const ok = sensors.filter((s) => s.state === 'ok').length;
    const p = this.publisher.stats();
    return `${ok}/${sensors.length} sensors ok, ${p.connected ? 'broker connected' : 'broker DOWN'}, spool ${p.spool.depth} batches, ring ${this.ring.counters().fill}`;
  }

  /** The health report as published (docs/payload.md, docs/schemas/health.schema.json). */
  health(): HealthReport {
    return healthReport({
      gateway: this.config.gateway.id,
      now: Date.now(),
      startedAt: this.startedAt,
      ring: this.ring.counters(),
      publisher: this.publisher.stats(),
      eventLoop: this.loop.snapshot(),
      sensors: this.sampler.health(),
      workerRestarts: this.worker.restarts,
      rssBytes: process.memoryUsage.rss(),
      healthSkipped: this.reporter?.skipped ?? 0,
    });
  }

  /** The figures the simulate live view shows. */
  liveFigures() {
    const ring = this.ring.counters();
    const sensors = this.sampler.health();
    const lag = this.sampler.schedulingLag({ reset: true });
    const achieved =
      sensors.reduce((sum, s) => sum + s.achievedRateHz, 0) / Math.max(1, sensors.length);
    return {
      written: ring.written,
      sensors: sensors.length,
      achievedHz: achieved,
      lagP50Ms: lag.p50Ms,
      lagP99Ms: lag.p99Ms,
      loopP99Ms: this.loop.snapshot().p99Ms,
      ringFill: ring.fill,
      ringCapacity: ring.capacity,
      ringDropped: ring.dropped,
      spoolDepth: this.publisher.stats().spool.depth,
      rssMb: process.memoryUsage.rss() / 2 ** 20,
    };
  }

  metrics(): HealthReport {
    return this.health();
  }

  /** The current config (after reloads). */
  get currentConfig(): Config {
    return this.config;
  }
}

/** What the aggregation worker is started with (exported for tests). */
export function workerOptions(
  config: Config,
  ring: RingBuffer,
  sensors: SensorConfig[],
  quantities: ReadonlyMap<string, readonly Quantity[]> = new Map(),
): AggregatorOptions {
  return {
    ring: ring.shared,
    sensors: sensors.map((s) => sensorSpec(s, quantities)),
    windowMs: config.aggregation.windowMs,
    stuckCount: config.aggregation.stuckCount,
    spikeZ: config.aggregation.spikeZ,
    spikeHistory: config.aggregation.spikeHistory,
    graceMs: config.aggregation.graceMs,
    coalesceMs: config.aggregation.coalesceMs,
    maxBytes: config.batch.maxBytes,
    maxDelayMs: config.batch.maxDelayMs,
    raw: config.batch.raw,
  };
}

/** What the worker knows of a sensor; its range is the configured one, else its chip's. */
function sensorSpec(
  s: SensorConfig,
  quantities: ReadonlyMap<string, readonly Quantity[]>,
): SensorSpec {
  return {
    id: s.id,
    driver: s.driver,
    range: s.range ?? temperatureRangeOf(s.driver),
    quantities: quantities.get(s.id),
  };
}

function quantitiesById(sampled: SampledSensor[]): Map<string, readonly Quantity[]> {
  return new Map(sampled.map((s) => [s.id, s.driver.quantities]));
}

function sampledSensor(
  s: SensorConfig,
  index: number,
  config: Config,
  seams: Seams,
): SampledSensor {
  return {
    id: s.id,
    index,
    driver: createDriver(s, seams),
    configKey: JSON.stringify(s),
    intervalMs: s.schedule === undefined ? (s.intervalMs ?? config.sampling.intervalMs) : undefined,
    schedule: s.schedule,
    timeoutMs: s.timeoutMs ?? config.sampling.timeoutMs,
    backoffMaxMs: s.backoffMaxMs ?? config.sampling.backoffMaxMs,
  };
}

/** The sampler's emit: into the ring, awaiting space only under the block policy. */
function emitter(ring: RingBuffer, overflow: Config['buffer']['overflow']) {
  if (overflow === 'block') {
    return (r: Reading, index: number) =>
      ring.pushAsync(index, quantityCode(r.quantity), r.t, r.value, r.status);
  }
  return (r: Reading, index: number) => {
    ring.push(index, quantityCode(r.quantity), r.t, r.value, r.status);
  };
}
