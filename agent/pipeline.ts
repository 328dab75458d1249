/**
 * The assembled agent: sampler → ring → aggregation worker → outputs (outputs.ts: the
 * telemetry publisher with its spool, Home Assistant, Sparkplug), which buildParts() builds
 * and the constructor takes, plus the operational extras — health reports, watchdog, status
 * line, metrics — started by agent/ops/operations.ts. `run` and `simulate` differ only in the
 * seams they pass and in who owns the broker; everything here is the same code on hardware
 * and in the simulator.
 */
import { performance } from 'node:perf_hooks';
import type { Config } from './config/schema.js';
import type { Logger } from './ops/logger.js';
import { RingBuffer } from './queue/ring-buffer.js';
import { AggregationWorker, type AggregatorOptions } from './aggregation/aggregation-worker.js';
import type { SensorSpec } from './aggregation/aggregator.js';
import { SpoolClient } from './publish/spool/spool-client.js';
import { reserveSeqsFor } from './publish/spool/reserve.js';
import { TelemetryPublisher } from './publish/publisher.js';
import { healthReport, type ConfigIdentity, type HealthReport } from './publish/health.js';
import { Sampler, type SampledSensor } from './sampling/sampler.js';
import { startEventLoopMonitor } from './sampling/event-loop.js';
import { SystemdNotifier } from './ops/sd-notify.js';
import { Operations } from './ops/operations.js';
import { residentSetBytes } from './ops/memory.js';
import {
  createDriver,
  temperatureRangeOf,
  touchI2CAddresses,
  type SensorConfig,
} from '../drivers/registry.js';
import type { Seams } from '../drivers/seams.js';
import { quantityCode, type Quantity, type Reading } from '../drivers/types.js';
import { AGENT_VERSION } from './version.js';
import { discoveredSensors, type HomeAssistantBridge } from './consumers/homeassistant/bridge.js';
import type { SparkplugNode } from './consumers/sparkplug/node.js';
import { outputBatch, type Output } from './publish/output.js';
import { deliver, startConsumers } from './outputs.js';
import type { CommandSet } from './control/command.js';
import type { ReloadOutcome } from './control/agent-control.js';
import { agentCommands } from './control/agent-commands.js';
import { ControlSocket } from './control/control-socket.js';
import { pipelineControl } from './control/pipeline-control.js';
import { startFleetCommands } from './fleet/fleet.js';
import type { CommandTransport } from './fleet/command-transport.js';

export interface PipelineOptions {
  config: Config;
  seams: Seams;
  stateDir: string;
  logger: Logger;
  notifier?: SystemdNotifier;
  /** The file `config` was read from (the `config/get` command's hash); none in a scenario. */
  configFile?: string;
  /** The running config file's remote version and hash, for the health report. */
  configIdentity?: () => ConfigIdentity;
}

/** Everything a Pipeline is made of, built by buildParts(); nothing is running yet but the publisher and the worker. */
export interface PipelineParts {
  config: Config;
  options: PipelineOptions;
  notifier: SystemdNotifier;
  ring: RingBuffer;
  worker: AggregationWorker;
  spool: SpoolClient;
  publisher: TelemetryPublisher;
  sampler: Sampler;
  eventLoop: EventLoopMonitor;
  /** Each sensor's series index; stable for the life of the process, so a reload never renumbers a series. */
  sensorIndex: Map<string, number>;
  /** Intervals of the interval-scheduled sensors at start (the watchdog's progress bound). */
  intervalsMs: number[];
  /** Every output a batch goes to (outputs.ts), telemetry first. */
  outputs: Output[];
  /** Home Assistant discovery and state topics, when homeassistant.enabled. */
  homeassistant: HomeAssistantBridge | undefined;
  /** The Sparkplug B edge node on its own connection, when sparkplug.enabled. */
  sparkplug: SparkplugNode | undefined;
}

type EventLoopMonitor = ReturnType<typeof startEventLoopMonitor>;

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
  private control: ControlSocket | undefined;
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
      this.control = await ControlSocket.listen(stateDir, this.commands, logger);
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
    const enabled = next.sensors.filter((s) => s.enabled);
    for (const s of enabled) {
      if (!this.sensorIndex.has(s.id)) this.sensorIndex.set(s.id, this.sensorIndex.size);
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
    this.homeassistant?.updateSensors(discoveredSensors(sampled));
    this.config = next;
    logger.info({ sensors: enabled.map((s) => s.id) }, 'configuration reloaded');
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

/**
 * Build every part of the pipeline from the configuration: the publisher is started first
 * (an unreadable password or TLS file fails before any thread is started), then the
 * aggregation worker; the sampler is created, not started.
 */
export async function buildParts(options: PipelineOptions): Promise<PipelineParts> {
  const { config, logger, seams } = options;
  const notifier = options.notifier ?? SystemdNotifier.fromEnv(process.env, logger);
  const enabled = config.sensors.filter((s) => s.enabled);

  const ring = RingBuffer.create(config.buffer.capacity, config.buffer.overflow);
  // The spool's disk work runs in its own thread: a stalling card never delays sampling.
  const reserveSeqs = reserveSeqsFor(config.aggregation.windowMs);
  const spool = await SpoolClient.open(options.stateDir, { ...config.spool, reserveSeqs }, logger);
  const publisher = new TelemetryPublisher({
    gateway: config.gateway.id,
    mqtt: config.mqtt,
    spool,
    logger,
    status: { version: AGENT_VERSION, startedAt: Date.now(), sensors: enabled.map((s) => s.id) },
  });
  try {
    publisher.start();
  } catch (err) {
    await spool.close();
    throw err;
  }

  const sensorIndex = new Map<string, number>();
  enabled.forEach((s, i) => sensorIndex.set(s.id, i));
  await touchI2CAddresses(enabled, seams, logger);
  const sampled = enabled.map((s) => sampledSensor(s, sensorIndex.get(s.id)!, config, seams));
  // The drivers know their quantities, so every series has windows from the start.
  const worker = AggregationWorker.start(
    workerOptions(config, ring, enabled, quantitiesById(sampled)),
  );
  worker.onError((err) => logger.error({ err }, 'aggregation worker failed; restarting it'));
  // Every batch goes to each output, from the first one on: telemetry is there already.
  const outputs: Output[] = [publisher];
  worker.onBatch((batch) => deliver(outputs, outputBatch(batch.body), logger));
  const consumers = await startConsumers({
    config,
    stateDir: options.stateDir,
    logger,
    telemetry: publisher,
    sampled,
    series: quantitiesById(sampled),
  });
  outputs.push(...consumers.all);

  const sampler = new Sampler({
    sensors: sampled,
    emit: emitter(ring, config.buffer.overflow),
    logger,
    alignToWallClock: config.sampling.alignToWallClock,
    startSpreadMs: config.sampling.startSpreadMs,
  });
  return {
    config,
    options,
    notifier,
    ring,
    worker,
    spool,
    publisher,
    sampler,
    eventLoop: startEventLoopMonitor(),
    sensorIndex,
    intervalsMs: sampled.flatMap((s) => (s.intervalMs !== undefined ? [s.intervalMs] : [])),
    outputs,
    homeassistant: consumers.homeassistant,
    sparkplug: consumers.sparkplug,
  };
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
