/**
 * The pipeline's outputs, each started when built: telemetry (the publisher, on its own broker
 * session), Home Assistant (on the telemetry session, when homeassistant.enabled) and the
 * Sparkplug B node (on a session of its own, when sparkplug.enabled). Every batch the
 * aggregation worker closes goes to each of them, in this order, as one OutputBatch whose
 * windows are decoded once.
 */
import type { Config } from './config/schema.js';
import type { Logger } from './ops/logger.js';
import type { SampledSensor } from './sampling/sampler.js';
import type { Output, OutputBatch } from './publish/output.js';
import type { TelemetryPublisher } from './publish/publisher.js';
import { startHomeAssistant, type HomeAssistantBridge } from './consumers/homeassistant/bridge.js';
import { SparkplugNode } from './consumers/sparkplug/node.js';
import type { Quantity } from '../drivers/types.js';

export interface Consumers {
  /** The outputs beside telemetry. */
  all: Output[];
  homeassistant: HomeAssistantBridge | undefined;
  sparkplug: SparkplugNode | undefined;
}

/** The outputs beside telemetry, as configured, started (Home Assistant on `telemetry`'s session). */
export async function startConsumers(o: {
  config: Config;
  stateDir: string;
  logger: Logger;
  telemetry: TelemetryPublisher;
  sampled: readonly SampledSensor[];
  series: ReadonlyMap<string, readonly Quantity[]>;
}): Promise<Consumers> {
  const { config, logger } = o;
  const homeassistant = startHomeAssistant(config, o.telemetry, o.sampled, logger);
  const sparkplug = config.sparkplug.enabled
    ? await SparkplugNode.start({ config, stateDir: o.stateDir, logger, series: o.series })
    : undefined;
  const all: Output[] = [];
  if (homeassistant) all.push(homeAssistantOutput(homeassistant));
  if (sparkplug) all.push(sparkplug);
  return { all, homeassistant, sparkplug };
}

/** Hands a batch to every output; one output's failure does not keep it from the others. */
export function deliver(outputs: readonly Output[], batch: OutputBatch, logger: Logger): void {
  for (const output of outputs) {
    try {
      output.take(batch);
    } catch (err) {
      logger.warn({ output: output.name, err }, 'an output could not take a batch');
    }
  }
}

/** The Home Assistant bridge as an output: the state topics follow each batch's windows. */
function homeAssistantOutput(bridge: HomeAssistantBridge): Output {
  return {
    name: 'homeassistant',
    start: () => bridge.start(),
    take: (batch) => bridge.onWindows(batch.windows()),
    stop: () => {
      bridge.stop();
      return Promise.resolve();
    },
    stats: () => bridge.stats(),
  };
}
