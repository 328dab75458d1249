/**
 * The pipeline's parts, built from the configuration (buildParts): the ring, the spool and
 * the publisher on it, the aggregation worker, the outputs and the sampler, each sensor with
 * its driver and series index. A reload rebuilds the sensors the same way (reloadedSensors).
 * The Pipeline (pipeline.ts) takes these parts and runs them.
 */
import type { Config } from './config/schema.js';
import type { Logger } from './ops/logger.js';
import { RingBuffer } from './queue/ring-buffer.js';
import { AggregationWorker, type AggregatorOptions } from './aggregation/aggregation-worker.js';
import type { SensorSpec } from './aggregation/aggregator.js';
import { SpoolClient } from './publish/spool/spool-client.js';
import { reserveSeqsFor } from './publish/spool/reserve.js';
import { TelemetryPublisher } from './publish/publisher.js';
import type { ConfigIdentity } from './publish/health.js';
import { Sampler, type SampledSensor } from './sampling/sampler.js';
import { startEventLoopMonitor } from './sampling/event-loop.js';
import { SystemdNotifier } from './ops/sd-notify.js';
import {
  createDriver,
  temperatureRangeOf,
  touchI2CAddresses,
  type SensorConfig,
} from '../drivers/registry.js';
import type { Seams } from '../drivers/seams.js';
import { quantityCode, type Quantity, type Reading } from '../drivers/types.js';
import { AGENT_VERSION } from './version.js';
import type { HomeAssistantBridge } from './consumers/homeassistant/bridge.js';
import type { SparkplugNode } from './consumers/sparkplug/node.js';
import { outputBatch, type Output } from './publish/output.js';
import { deliver, startConsumers } from './outputs.js';

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

export type EventLoopMonitor = ReturnType<typeof startEventLoopMonitor>;

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

/**
 * A reloaded config's sensors: the enabled ones to sample, and every series the worker keeps.
 * A new sensor takes the next index in `sensorIndex` (updated here); a removed one keeps its
 * index as a `removed` series, so no index is ever reused.
 */
export async function reloadedSensors(
  next: Config,
  sensorIndex: Map<string, number>,
  seams: Seams,
  logger: Logger,
): Promise<{ sampled: SampledSensor[]; series: SensorSpec[] }> {
  const enabled = next.sensors.filter((s) => s.enabled);
  for (const s of enabled) {
    if (!sensorIndex.has(s.id)) sensorIndex.set(s.id, sensorIndex.size);
  }
  const byId = new Map(enabled.map((s) => [s.id, s]));
  await touchI2CAddresses(enabled, seams, logger);
  const sampled = enabled.map((s) => sampledSensor(s, sensorIndex.get(s.id)!, next, seams));
  const quantities = quantitiesById(sampled);
  const series = [...sensorIndex.entries()]
    .sort((a, b) => a[1] - b[1])
    .map(([id]): SensorSpec => {
      const s = byId.get(id);
      return s ? sensorSpec(s, quantities) : { id, driver: 'removed' };
    });
  return { sampled, series };
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
