/**
 * The assembled agent: sampler → ring → aggregation worker → outputs (outputs.ts: the
 * telemetry publisher with its spool, Home Assistant, Sparkplug), which buildParts()
 * (pipeline-parts.ts) builds and the constructor takes, plus the operational extras — health reports, watchdog, status
 * line, metrics — started by agent/ops/operations.ts. `run` and `simulate` differ only in the
 * seams they pass and in who owns the broker; everything here is the same code on hardware
 * and in the simulator.
 */
import { performance } from 'node:perf_hooks';
import type { Config } from './config/schema.js';
import type { RingBuffer } from './queue/ring-buffer.js';
import type { AggregationWorker } from './aggregation/aggregation-worker.js';
import type { SpoolClient } from './publish/spool/spool-client.js';
import type { TelemetryPublisher } from './publish/publisher.js';
import { healthReport, type HealthReport } from './publish/health.js';
import type { Sampler } from './sampling/sampler.js';
import type { SystemdNotifier } from './ops/sd-notify.js';
import { Operations } from './ops/operations.js';
import { residentSetBytes } from './ops/memory.js';
import { discoveredSensors, type HomeAssistantBridge } from './consumers/homeassistant/bridge.js';
import type { SparkplugNode } from './consumers/sparkplug/node.js';
import type { Output } from './publish/output.js';
import type { CommandSet } from './control/command.js';
import type { ReloadOutcome } from './control/agent-control.js';
import { agentCommands } from './control/agent-commands.js';
import { ControlEndpoint } from './control/control-endpoint.js';
import { pipelineControl } from './control/pipeline-control.js';
import { startFleetCommands } from './fleet/fleet.js';
import type { CommandTransport } from './fleet/command-transport.js';
import {
  buildParts,
  reloadedSensors,
  type EventLoopMonitor,
  type PipelineOptions,
  type PipelineParts,
} from './pipeline-parts.js';

/** Default bound for SIGTERM: publish what we can within this, then disconnect. */
export const DEFAULT_DRAIN_MS = 10_000;

export class Pipeline {
  private config: Config;
  private readonly opts: PipelineOptions;
  private readonly notifier: SystemdNotifier;
  private readonly ring: RingBuffer;
  private readonly worker: AggregationWorker;
  private readonly spool: SpoolClient;
  private readonly publisher: TelemetryPublisher;
  private readonly sampler: Sampler;
  private readonly loop: EventLoopMonitor;
  private readonly sensorIndex: Map<string, number>;
  private readonly operations: Operations;
  private readonly outputs: Output[];
  private readonly homeassistant: HomeAssistantBridge | undefined;
  private readonly sparkplug: SparkplugNode | undefined;
  /** Monotonic: uptime is elapsed time, whatever the wall clock did meanwhile. */
  private readonly startedAt = performance.now();
  private stopping: Promise<void> | undefined;
  /**
   * What an operator may ask the running agent (agent/control), whatever the transport: the
   * local control socket and, when fleet.enabled, MQTT.
   */
  readonly commands: CommandSet;
  /** `<stateDir>/control.sock`, serving `commands` to `edge-agent spool …`. */
  private control: ControlEndpoint | undefined;
  private fleet: CommandTransport | undefined;
  private reloader: (() => Promise<ReloadOutcome>) | undefined;

  constructor(parts: PipelineParts) {
    this.config = parts.config;
    this.opts = parts.options;
    this.notifier = parts.notifier;
    this.ring = parts.ring;
    this.worker = parts.worker;
    this.spool = parts.spool;
    this.publisher = parts.publisher;
    this.sampler = parts.sampler;
    this.loop = parts.eventLoop;
    this.sensorIndex = parts.sensorIndex;
    this.outputs = parts.outputs;
    this.homeassistant = parts.homeassistant;
    this.sparkplug = parts.sparkplug;
    this.operations = new Operations({
      config: parts.config,
      logger: parts.options.logger,
      notifier: parts.notifier,
      sink: parts.publisher,
      intervalsMs: parts.intervalsMs,
      pipeline: {
        health: () => this.health(),
        statusLine: () => this.statusLine(),
        workerDraining: () => this.worker.isDraining(),
        samplingProgress: () => this.sampler.progress(),
        sampledSensors: () => this.sampler.health().length,
      },
    });
    this.commands = agentCommands(
      pipelineControl({
        health: () => this.health(),
        config: () => this.config,
        configFile: this.opts.configFile,
        configVersion: () => this.opts.configIdentity?.().version ?? null,
        reloader: () => this.reloader,
        sampler: this.sampler,
        homeassistant: this.homeassistant,
        sparkplug: this.sparkplug,
      }),
      { spool: this.spool, publisher: this.publisher },
    );
  }

  /** Build the pipeline, start sampling, then the operational extras (agent/ops/operations.ts). */
  static async start(opts: PipelineOptions): Promise<Pipeline> {
    const pipeline = new Pipeline(await buildParts(opts));
    await pipeline.run();
    return pipeline;
  }

  private async run(): Promise<void> {
    const { logger, stateDir } = this.opts;
    this.sampler.start();
    try {
      await this.operations.start();
      // After the spool's lock: a second agent on this state directory stops at the lock.
      this.control = await ControlEndpoint.open(stateDir, this.commands, logger);
    } catch (err) {
      // A port in use must not leave a half-started agent running behind the error.
      await this.stop(0);
      throw err;
    }
    this.fleet = startFleetCommands({
      config: this.config,
      commands: this.commands,
      channel: this.publisher,
      logger,
    });
    const enabled = this.config.sensors.filter((s) => s.enabled);
    // One line at info; the list, which runs to thousands of sensors, at debug.
    logger.info(
      {
        sensors: enabled.length,
        drivers: [...new Set(enabled.map((s) => s.driver))].join(', '),
        gateway: this.config.gateway.id,
        stateDir,
      },
      'pipeline running',
    );
    logger.debug({ sensors: enabled.map((s) => ({ id: s.id, driver: s.driver })) }, 'sensors');
  }

  /** SIGHUP: apply a new, already validated config's sensors without restarting the pipeline. */
  async reload(next: Config): Promise<void> {
    const { logger, seams } = this.opts;
    this.notifier.reloading();
    const { sampled, series } = await reloadedSensors(next, this.sensorIndex, seams, logger);
    // The worker must know a new sensor before its first reading arrives.
    await this.worker.updateSensors(series);
    await this.sampler.replace(sampled);
    this.homeassistant?.updateSensors(discoveredSensors(sampled));
    this.config = next;
    logger.info({ sensors: sampled.map((s) => s.id) }, 'configuration reloaded');
    this.notifier.ready();
  }

  /** SIGTERM: stop sampling, close windows, spool them, publish within drainMs, disconnect. */
  stop(drainMs = DEFAULT_DRAIN_MS): Promise<void> {
    this.stopping ??= (async () => {
      const { logger } = this.opts;
      const deadline = performance.now() + drainMs;
      this.notifier.stopping();
      this.fleet?.stop();
      await this.control?.close();
      await this.sampler.stop();
      await this.worker.flush();
      for (const output of this.outputs) {
        await output.stop({ drainMs: Math.max(0, deadline - performance.now()) });
      }
      await this.worker.stop();
      this.loop.stop();
      await this.operations.stop();
      await this.spool.close();
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
    const now = Date.now();
    return healthReport({
      gateway: this.config.gateway.id,
      now,
      startedAt: now - (performance.now() - this.startedAt),
      ring: this.ring.counters(),
      publisher: this.publisher.stats(),
      sparkplug: this.sparkplug?.stats(),
      homeassistant: this.homeassistant?.stats(),
      eventLoop: this.loop.snapshot(),
      sensors: this.sampler.health(),
      workerRestarts: this.worker.restarts,
      rssBytes: residentSetBytes(),
      healthSkipped: this.operations.healthSkipped,
      commands: this.fleet?.counters(),
      config: this.opts.configIdentity?.(),
    });
  }

  /** How the `reload` command reloads: as SIGHUP does (set by the lifecycle, lifecycle.ts). */
  useReloader(reload: () => Promise<ReloadOutcome>): void {
    this.reloader = reload;
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
      rssMb: residentSetBytes() / 2 ** 20,
    };
  }

  /** A retained QoS 1 publish on the telemetry connection; true once acknowledged. */
  publishRetained(topic: string, payload: string): Promise<boolean> {
    return this.publisher.publishRetained(topic, payload).then((o) => o.sent);
  }

  /** The current config (after reloads). */
  get currentConfig(): Config {
    return this.config;
  }
}
